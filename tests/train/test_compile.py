"""``--compile`` (timm's ``--torchcompile``): the setting, the flag on train/compare/sweep, and a
compiled training run on CPU.

The run compiles with Dynamo's ``aot_eager`` backend: the same graph capture and AOTAutograd
as the default ``inductor``, without inductor's C++ code generation, whose first (uncached)
compile of even the tiny model takes about 50 s on a 2-core CPU. ``tests/test_cuda.py`` trains
with the default backend on CUDA.
"""

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from hamixer.cli import main
from hamixer.errors import ConfigError
from hamixer.train import TrainConfig, load_model
from hamixer.train.config import merge

TINY = ["--model", "paramixer", "--dataset", "digits", "--model-kwargs", "num_blocks=1",
        "embed_dim=16", "--limit-train", "96", "--limit-test", "64", "--batch-size", "32",
        "--quiet", "--threads", "1", "--no-symmetry", "--seed", "3"]


def test_compile_is_a_yaml_setting():
    assert TrainConfig().compile is False
    assert merge(TrainConfig(), {"compile": True}, "x.yaml").compile is True
    with pytest.raises(ConfigError, match="compile must be true or false"):
        merge(TrainConfig(), {"compile": "yes"}, "x.yaml")


@pytest.mark.parametrize("command", ["train", "compare", "sweep"])
def test_every_training_command_takes_the_flag(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "--compile" in text and "--torchcompile" in text


def _rows(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow  # torch.compile: about 50 s
def test_compiled_training_matches_eager_and_saves_plain_keys(tmp_path, monkeypatch):
    compiled = []
    real_compile = torch.compile

    def aot_eager_compile(model, **kwargs):
        compiled.append(type(model).__name__)
        return real_compile(model, **{**kwargs, "backend": "aot_eager"})

    monkeypatch.setattr(torch, "compile", aot_eager_compile)
    out, eager = tmp_path / "compiled", tmp_path / "eager"
    assert main(["train", *TINY, "--epochs", "1", "--torchcompile", "--out", str(out)]) == 0
    assert compiled == ["HamMixer"]  # the training step only, once
    assert yaml.safe_load((out / "config.yaml").read_text())["compile"] is True
    for name in ("last.safetensors", "best.safetensors"):
        keys = load_file(str(out / name)).keys()
        assert keys and not any("_orig_mod" in k for k in keys), name
    load_model(out)  # the plain model reads them strictly
    # the compiled graph computes what the eager module computes
    assert main(["train", *TINY, "--epochs", "1", "--out", str(eager)]) == 0
    (a,), (b,) = _rows(out), _rows(eager)
    for key in ("train_loss", "test_loss", "test_acc"):
        assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key
    # compile does not change what is computed, so a resumed run may switch it off (this one
    # has nothing left to train; the settings check comes first)
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out), "--resume"]) == 0
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out), "--resume",
                 "--weight-decay", "0.01"]) == 2
