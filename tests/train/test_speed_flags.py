"""The speed settings a timm user brings: ``--tf32``/``--no-tf32``, ``--compile-mode`` (timm's
``--torchcompile-mode``) and ``--channels-last``: parsed on every training command, recorded in
``config.yaml`` and ``args.yaml``, acting where they apply, and free to change on ``--resume``
(they change how fast, not what, is computed).

Runs compile with Dynamo's ``aot_eager`` backend (as tests/train/test_compile.py explains);
TF32 on CUDA is checked by the flags it sets, which need no device.
"""

import json

import pytest
import torch
import yaml

from hamixer.cli import main
from hamixer.train import TrainConfig, run_training
from hamixer.train.run import check_same_config
from hamixer.train.setup import tf32_mode

pytestmark = pytest.mark.integration  # runs the command line end to end

TINY = ["--dataset", "digits", "--limit-train", "96", "--limit-test", "64", "--batch-size",
        "32", "--quiet", "--threads", "1", "--no-symmetry", "--seed", "3", "--epochs", "1"]
MIXER = ["--model", "paramixer", "--model-kwargs", "num_blocks=1", "embed_dim=16"]
# timm's ViT on 3-channel images: a convolution stem, where the memory order is a real change
VIT = ["--model", "vit", "--in-chans", "3", "--model-kwargs", "depth=1"]


def _rows(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def _written(out):
    return (yaml.safe_load((out / "config.yaml").read_text()),
            yaml.safe_load((out / "args.yaml").read_text()))


@pytest.mark.parametrize("command", ["train", "compare", "sweep"])
def test_every_training_command_takes_the_flags(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    for flag in ("--tf32", "--no-tf32", "--compile-mode", "--torchcompile-mode",
                 "--channels-last"):
        assert flag in text, flag


def test_defaults_and_what_a_run_records(tmp_path):
    assert TrainConfig().tf32 is True and TrainConfig().channels_last is False
    assert TrainConfig().compile_mode is None
    out = tmp_path / "run"
    assert main(["train", *MIXER, *TINY, "--no-tf32", "--channels-last", "--out",
                 str(out)]) == 0
    config, args = _written(out)
    assert config["tf32"] is False and config["channels_last"] is True
    assert args["tf32"] is False and args["channels_last"] is True
    assert config["compile"] is False and config["compile_mode"] is None
    assert _rows(out)[0]["train_loss"] > 0


def test_tf32_is_set_for_a_cuda_run_only_and_restored():
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    try:
        matmul.allow_tf32 = cudnn.allow_tf32 = False
        with tf32_mode(True, torch.device("cuda")):  # the flags need no device to be set
            assert matmul.allow_tf32 and cudnn.allow_tf32
        assert not matmul.allow_tf32 and not cudnn.allow_tf32
        matmul.allow_tf32 = True
        with tf32_mode(False, torch.device("cuda")):
            assert not matmul.allow_tf32 and not cudnn.allow_tf32
        assert matmul.allow_tf32 and not cudnn.allow_tf32
        with tf32_mode(False, torch.device("cpu")):  # a CPU has no TF32: left alone
            assert matmul.allow_tf32
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def test_a_cpu_run_leaves_the_tf32_settings_alone(tmp_path):
    matmul = torch.backends.cuda.matmul
    saved, seen = matmul.allow_tf32, []
    try:
        matmul.allow_tf32 = True
        cfg = TrainConfig(model="paramixer_n2_8", dataset="digits", epochs=1, batch_size=32,
                          limit_train=64, limit_test=32, quiet=True, threads=1, device="cpu",
                          tf32=False, model_kwargs=dict(num_blocks=1, embed_dim=16),
                          out=str(tmp_path / "run"))
        run_training(cfg, hooks=[lambda model, epoch: seen.append(matmul.allow_tf32)])
    finally:
        matmul.allow_tf32 = saved
    assert seen and all(seen)  # during the epochs too


def test_compile_mode_reaches_torch_compile_and_implies_compile(tmp_path, monkeypatch):
    calls = []
    real_compile = torch.compile

    def aot_eager_compile(model, **kwargs):
        calls.append(kwargs)
        return real_compile(model, **{**kwargs, "backend": "aot_eager"})

    monkeypatch.setattr(torch, "compile", aot_eager_compile)
    out = tmp_path / "run"
    assert main(["train", *MIXER, *TINY, "--torchcompile-mode", "max-autotune",
                 "--out", str(out)]) == 0
    assert [c.get("mode") for c in calls] == ["max-autotune"]
    config, args = _written(out)
    assert config["compile"] is True and config["compile_mode"] == "max-autotune"
    assert args["compile_mode"] == "max-autotune"
    assert _rows(out)[0]["train_loss"] > 0


def test_channels_last_changes_the_memory_order_not_the_result(tmp_path, monkeypatch):
    seen = []
    real_conv = torch.nn.Conv2d._conv_forward

    def watch(self, x, weight, bias):
        seen.append(x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1)
        return real_conv(self, x, weight, bias)

    monkeypatch.setattr(torch.nn.Conv2d, "_conv_forward", watch)
    plain, nhwc = tmp_path / "plain", tmp_path / "nhwc"
    assert main(["train", *VIT, *TINY, "--out", str(plain)]) == 0
    assert seen and not any(seen)
    seen.clear()
    assert main(["train", *VIT, *TINY, "--channels-last", "--out", str(nhwc)]) == 0
    assert seen and all(seen)  # training and evaluation
    (a,), (b,) = _rows(nhwc), _rows(plain)
    for key in ("train_loss", "test_loss", "test_acc"):
        assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key


def test_resume_may_change_the_speed_settings_only(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *MIXER, *TINY, "--out", str(out)]) == 0
    # nothing left to train; the settings check comes first
    assert main(["train", *MIXER, *TINY, "--out", str(out), "--resume", "--no-tf32",
                 "--channels-last"]) == 0
    assert main(["train", *MIXER, *TINY, "--out", str(out), "--resume", "--no-tf32",
                 "--label-smoothing", "0.2"]) == 2
    # a run recorded before these settings existed resumes under any of them
    saved = TrainConfig().to_dict()
    for key in ("tf32", "compile_mode", "channels_last"):
        del saved[key]
    check_same_config(saved, TrainConfig(tf32=False, channels_last=True), out)


@pytest.mark.parametrize("argv, needle", [
    (["--compile-mode", "fastest"], "compile_mode must be one of default, reduce-overhead"),
    (["--set", "compile_mode=reduce-overhead"], "needs compile: true"),
    (["--set", "compile_mode=fast", "compile=true"], "compile_mode must be one of"),
    (["--set", "tf32=maybe"], "tf32 must be true or false"),
])
def test_bad_settings_are_one_line_and_status_2(tmp_path, capsys, argv, needle):
    out = tmp_path / "run"
    assert main(["train", *MIXER, *TINY, *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and not out.exists(), err
