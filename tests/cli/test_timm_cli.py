"""A timm model through the same commands as the Mixers: train, resume, eval, compare."""

import json

import pytest

from hamixer.cli import main
from hamixer.train import load_model

pytestmark = pytest.mark.integration  # runs the command line end to end

SMALL = ["--limit-train", "96", "--limit-test", "64", "--batch-size", "32", "--quiet",
         "--threads", "1"]
VIT = ["--model-kwargs", "img_size=8", "patch_size=2", "embed_dim=16", "depth=1",
       "num_heads=2"]


def test_a_timm_vit_trains_resumes_and_evaluates(tmp_path, capsys):
    out = tmp_path / "vit"
    args = ["train", "--dataset", "digits", "--model", "vit_tiny_patch16_224", *VIT,
            "--epochs", "2", "--out", str(out), *SMALL]
    assert main(args) == 0
    meta = json.loads((out / "last.json").read_text())
    assert meta["model"] == "vit_tiny_patch16_224" and meta["model_source"] == "timm"
    assert meta["model_kwargs"]["in_chans"] == 1  # the data's channels, as for the Mixers
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model_source"] == "timm" and summary["epochs"] == 2
    model, _ = load_model(out, prefer="last")  # rebuilt from its name and arguments
    assert type(model).__name__ == "VisionTransformer" and len(model.blocks) == 1
    assert main(["eval", "--checkpoint", str(out), "--prefer", "last", "--limit", "64",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["top1"] == pytest.approx(summary["final_test_acc"])
    mtime = (out / "last.json").stat().st_mtime
    assert main([*args, "--resume"]) == 0  # finished: nothing trained again
    assert (out / "last.json").stat().st_mtime == mtime


def test_bad_timm_model_arguments_write_nothing(tmp_path, capsys):
    out = tmp_path / "bad"
    assert main(["train", "--dataset", "digits", "--model", "vit_tiny_patch16_224",
                 "--model-kwargs", "depth=two", "--out", str(out), *SMALL]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["hamixer train: error: model argument 'depth' of vit_tiny_patch16_224 "
                   "must be an integer, got 'two'"]
    assert not out.exists()
