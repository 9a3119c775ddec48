"""A timm model through the same commands as the Mixers: train, resume, eval, compare."""

import json
import statistics

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
    assert main(["eval", "--checkpoint", str(out / "last.json"), "--limit", "64",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
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


def test_compare_puts_a_vit_beside_a_mixer_with_symmetry_logged(tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "--dataset", "digits", "--models", "paramixer,vit", "--epochs", "1",
                 "--out", str(out), *SMALL]) == 0
    table = (out / "results.md").read_text()
    assert "| paramixer_n2_8 |" in table and "| vit_n2_8 |" in table
    rows = [json.loads(x) for x in
            (out / "vit_n2_8" / "seed0" / "metrics.jsonl").read_text().splitlines()]
    assert {"sym/mean.mlp.cosine", "sym/mean.attn.qk_sym", "sym/3.attn.vo_antisym"} <= set(rows[0])
    refs = json.loads((out / "vit_n2_8" / "seed0" / "init_metrics.json").read_text())
    assert 0.5 < refs["symref/0.attn.qk_sym"] < 0.9  # an untrained head: about 1/√2


def test_a_vit_starts_symmetric_with_init_symmetric(tmp_path, capsys):
    out = tmp_path / "sym"
    assert main(["train", "--dataset", "digits", "--model", "vit", "--init", "symmetric",
                 "--epochs", "1", "--out", str(out), *SMALL]) == 0
    start = json.loads((out / "init_metrics.json").read_text())
    assert start["sym/mean.mlp.cosine"] == pytest.approx(1.0)
    assert start["sym/mean.attn.qk_antisym"] == pytest.approx(0.0, abs=1e-6)
    # the tied value–output map W_O^h W_V^h = W_Q^hᵀ W_K^h, and Saponati et al.'s score
    assert start["sym/mean.attn.vo_qk_cosine"] == pytest.approx(1.0)
    assert start["sym/mean.attn.qk_symmetry_score"] == pytest.approx(1.0)
    model, meta = load_model(out, prefer="last")
    assert meta["model_kwargs"]["init"] == "symmetric"

    capsys.readouterr()
    assert main(["symmetry", str(out), "--prefer", "last", "--json", "--no-reference"]) == 0
    res = json.loads(capsys.readouterr().out)
    scores = [r["qk_symmetry_score"] for r in res["attention"]]
    assert len(scores) == len(model.blocks) and all(-1 <= s <= 1 for s in scores)
    assert res["layer_scores"]["qk_symmetry_score"]["median"] == pytest.approx(
        statistics.median(scores))
    assert main(["symmetry", str(out), "--prefer", "last"]) == 0
    text = capsys.readouterr().out
    assert "Attention, per layer (Saponati et al.'s scores)" in text
    assert f"| median [q25, q75] | {len(scores)} layers |" in text
    report = tmp_path / "report.md"
    assert main(["report", str(out), "--out", str(report)]) == 0
    text = report.read_text()
    assert "| block | attention | symmetry score | directionality score |" in text
    assert "cos(VO, QK) attn" in text and "| cos(VO, QK) | ‖VO − QK‖/‖QK‖ |" in text


def test_sweep_takes_the_vit_as_a_reference(tmp_path):
    out = tmp_path / "sweep"
    assert main(["sweep", "--dataset", "digits", "--lambdas", "0", "--references", "para,vit",
                 "--epochs", "1", "--out", str(out), *SMALL]) == 0
    data = json.loads((out / "sweep.json").read_text())
    assert sorted(r["model"] for r in data["records"]) == ["asymmixer_n2_8", "paramixer_n2_8",
                                                           "vit_n2_8"]
    assert "| ViT |" in (out / "sweep.md").read_text()


def test_sweep_of_the_transformer_family(tmp_path):
    out = tmp_path / "sweep"
    assert main(["sweep", "--family", "former", "--dataset", "digits", "--lambdas", "1,0",
                 "--references", "sym,para", "--epochs", "1", "--out", str(out), *SMALL]) == 0
    data = json.loads((out / "sweep.json").read_text())
    assert data["family"] == "former"
    assert sorted(r["model"] for r in data["records"]) == [
        "asymformer_n2_8", "asymformer_n2_8", "paraformer_n2_8", "symformer_n2_8"]
    free_end = next(r for r in data["records"] if r.get("lambda") == 0)
    for form in ("mlp.breaking_ratio", "attn.value_breaking_ratio", "attn.out_breaking_ratio",
                 "attn.key_out_breaking_ratio"):
        assert free_end[form] > 0
    md = (out / "sweep.md").read_text()
    assert "| SymFormer |" in md and "| AsymFormer |" in md and "| ParaFormer |" in md
    assert "‖Ṽ‖/‖W_K‖" in md and "‖K̃‖/‖W_Kᵀ‖" in md
    assert main(["sweep", "--family", "former", "--dataset", "digits", "--references",
                 "vanilla", "--out", str(tmp_path / "bad"), *SMALL]) == 2
