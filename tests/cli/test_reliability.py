"""A training run that is killed, interrupted, diverges or gets bad input loses nothing and
writes nothing broken: real subprocesses are killed with SIGKILL/SIGTERM and resumed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hamixer.cli import main

pytestmark = pytest.mark.integration  # runs the command line end to end

ROOT = Path(__file__).resolve().parents[2]
# 256 images in batches of 16: 16 steps an epoch, with every source of randomness switched on
RUN = ["train", "--model", "paramixer", "--dataset", "digits", "--epochs", "2",
       "--model-kwargs", "num_blocks=1", "embed_dim=16", "--limit-train", "256",
       "--limit-test", "64", "--batch-size", "16", "--threads", "1", "--seed", "3",
       "--crop-padding", "1", "--reprob", "0.25", "--mixup", "0.8", "--cutmix", "1.0",
       "--drop-path", "0.1", "--hflip", "0.5", "--checkpoint-every-steps", "3"]
TIMING = {"seconds", "train_seconds", "images_per_s"}


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}


def _rows(out):
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run (in-process: same code, same single thread)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main([*RUN, "--out", str(out), "--quiet"]) == 0
    return out


def _start(out, *extra):
    return subprocess.Popen([sys.executable, "-m", "hamixer", *RUN, "--out", str(out),
                             "--quiet", *extra], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_mid_epoch_checkpoint(proc, out, epoch):
    """Poll until ``last.json`` is a save from within epoch ``epoch + 1`` (0-based ``epoch``)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run finished before it could be interrupted"
        try:
            meta = json.loads((out / "last.json").read_text())
        except (OSError, json.JSONDecodeError):
            meta = {}
        if meta.get("step") and meta["epoch"] >= epoch:
            return meta
        time.sleep(0.002)
    raise AssertionError("no mid-epoch checkpoint appeared")


@pytest.mark.slow  # killed subprocesses, resumed
def test_sigterm_then_sigkill_mid_epoch_then_resume_is_bitwise_identical(tmp_path, reference,
                                                                         capsys):
    out = tmp_path / "run"
    # 1. SIGTERM within epoch 1: the step finishes, `last` is saved, exit status 143
    proc = _start(out)
    _wait_for_mid_epoch_checkpoint(proc, out, epoch=0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.count("\n") == 1 and "stopped by SIGTERM" in err and "--resume" in err
    meta = json.loads((out / "last.json").read_text())
    assert meta["epoch"] == 0 and 0 < meta["step"] < 16, meta.get("step")
    assert f"(step {meta['step']} of epoch 1)" in err, err
    # 2. resumed, then SIGKILLed within epoch 2 (any moment: even during a save)
    proc = _start(out, "--resume")
    meta = _wait_for_mid_epoch_checkpoint(proc, out, epoch=1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert meta["step"] % 3 == 0 and 0 < meta["step"] < 16
    (out / ".last.json.abc.tmp").write_text("{")  # what a kill during a save leaves
    # 3. resumed to the end: the same numbers and weights as the uninterrupted run
    assert main([*RUN, "--out", str(out), "--resume"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert _rows(out) == _rows(reference)  # bitwise: floats compared with ==
    for name in ("last.safetensors", "best.safetensors"):
        a, b = load_file(str(out / name)), load_file(str(reference / name))
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), name
    assert not list(out.glob(".*.tmp"))  # the resumed run cleaned up after the killed one


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    # an absurd learning rate: the first update is finite, the next loss overflows
    assert main(["train", "--model", "paramixer", "--dataset", "digits", "--epochs", "2",
                 "--model-kwargs", "num_blocks=1", "embed_dim=16", "--limit-train", "64",
                 "--limit-test", "32", "--batch-size", "16", "--threads", "1", "--quiet",
                 "--lr", "1e30", "--set", "warmup_epochs=0", "clip_grad=null",
                 "--checkpoint-every-steps", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "loss became nan at epoch 1 step 2 (global step 2)" in err
    assert f"last good checkpoint: {out / 'last.json'} (step 1 of epoch 1)" in err, err
    meta = json.loads((out / "last.json").read_text())
    assert meta["epoch"] == 0 and meta["step"] == 1
    assert not (out / "metrics.jsonl").exists() and not (out / "best.json").exists()


SMALL = ["--model", "paramixer", "--dataset", "digits", "--epochs", "1", "--model-kwargs",
         "num_blocks=1", "embed_dim=16", "--limit-train", "32", "--limit-test", "32",
         "--batch-size", "16", "--threads", "1", "--quiet"]


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hamixer "), err
    for needle in needles:
        assert needle in err, err
    return err


def test_a_second_run_into_a_locked_directory_fails_at_once(tmp_path, capsys):
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "a+") as held:  # another run holds the directory
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["train", *SMALL, "--out", str(out)]) == 2
        _one_line_error(capsys, "in use by another run")
        assert sorted(p.name for p in out.iterdir()) == [".lock"]
    assert main(["train", *SMALL, "--out", str(out)]) == 0  # released: the run goes ahead


def test_an_output_dir_that_cannot_be_written(tmp_path, capsys):
    assert main(["train", *SMALL, "--out", "/dev/null/run"]) == 2
    _one_line_error(capsys, "cannot write to output directory /dev/null/run")
    if os.geteuid() == 0:
        pytest.skip("running as root: a read-only directory does not stop root")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    assert main(["train", *SMALL, "--out", str(ro / "run")]) == 2
    _one_line_error(capsys, "cannot write to output directory")


@pytest.mark.parametrize("bad", [
    ["--dataset", "mnist", "--data-dir", "{tmp}/missing"],
    ["--dataset", "imagefolder", "--data-dir", "{tmp}/empty"],
    ["--dataset", "fashion-mnist", "--data-dir", "{tmp}/empty"],
    ["--dataset", "cifar10", "--data-dir", "{tmp}/empty"],
    ["--model", "nosuchmixer"],
    ["--model-kwargs", "num_layers=3"],
    ["--config", "{tmp}/bad.yaml"],
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, bad):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.yaml").write_text("epochs: [1, 2\nlr: 0.1\n")
    bad = [x.replace("{tmp}", str(tmp_path)) for x in bad]
    out = tmp_path / "run"
    assert main(["train", *SMALL, *bad, "--out", str(out)]) == 2
    _one_line_error(capsys)
    assert not out.exists()


def test_checkpoints_of_another_architecture_or_corrupt_are_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--out", str(out)]) == 0
    meta = json.loads((out / "best.json").read_text())
    # a corrupt tensor file: the checksum catches it before anything is loaded
    state = out / "last.state.safetensors"
    data = bytearray(state.read_bytes())
    data[-1] ^= 0xFF
    state.write_bytes(bytes(data))
    assert main(["train", *SMALL, "--epochs", "2", "--out", str(out), "--resume"]) == 2
    _one_line_error(capsys, "checksum mismatch for last.state.safetensors")
    # the JSON describes another architecture than the weights hold
    meta["model_kwargs"]["embed_dim"] = 24
    (out / "best.json").write_text(json.dumps(meta))
    assert main(["eval", "--checkpoint", str(out / "best.json")]) == 2
    _one_line_error(capsys, "weights of paramixer_n2_8 do not fit this model")
    # resuming with another architecture
    assert main(["train", *SMALL, "--epochs", "2", "--out", str(out), "--resume",
                 "--model-kwargs", "num_blocks=2", "embed_dim=16"]) == 2
    _one_line_error(capsys)


@pytest.mark.slow  # torchrun
@pytest.mark.parametrize("model", [
    ["paramixer", "--model-kwargs", "num_blocks=1", "embed_dim=16"],
    ["vit_tiny_patch16_224", "--model-kwargs", "img_size=8", "patch_size=2", "embed_dim=16",
     "depth=1", "num_heads=2"],  # a timm model trains data-parallel the same way
], ids=["paramixer", "timm-vit"])
def test_torchrun_two_processes_matches_one_process(tmp_path, model):
    """2 CPU processes (gloo) with a global batch of 32 = 1 process with a batch of 32.

    Augmentation and drop-path are off: with them each rank draws its own random numbers, so
    the two runs would be equally valid but not equal."""
    from hamixer.cli import main as cli

    args = ["train", "--model", *model, "--dataset", "digits", "--epochs", "2",
            "--limit-train", "128",
            "--limit-test", "64", "--batch-size", "32", "--threads", "1", "--seed", "1",
            "--quiet"]
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", "-m", "hamixer", *args,
                          "--out", str(tmp_path / "ddp")],
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert cli([*args, "--out", str(tmp_path / "one")]) == 0
    a, b = _rows(tmp_path / "ddp"), _rows(tmp_path / "one")
    assert [r["epoch"] for r in a] == [1, 2]
    for ra, rb in zip(a, b, strict=True):
        for k, v in rb.items():
            assert ra[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
    wa = load_file(str(tmp_path / "ddp" / "last.safetensors"))
    wb = load_file(str(tmp_path / "one" / "last.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert (wa[k] - wb[k]).abs().max() < 1e-5, k
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["train_images"] == 128


def test_a_launched_single_process_joins_a_process_group(monkeypatch):
    """torchrun --nproc_per_node=1 sets the launcher's variables with WORLD_SIZE=1: the run joins
    a (gloo) group of one, so the backend is exercised; without them nothing is initialised."""
    import socket

    import torch.distributed as dist

    from hamixer.train.distributed import init_distributed, shutdown_distributed

    ctx, device = init_distributed("cpu")
    assert not ctx.enabled and device is None and not dist.is_initialized()
    with socket.socket() as s:  # a free port for the group's rendezvous store
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name, value in dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                            MASTER_PORT=str(port)).items():
        monkeypatch.setenv(name, value)
    ctx, device = init_distributed("cpu")
    try:
        assert ctx.enabled and ctx.world == 1 and ctx.is_main and device is None
        assert dist.is_initialized() and dist.get_backend() == "gloo"
        assert ctx.sum([2.0, 3.0], torch.device("cpu")) == [2.0, 3.0]
    finally:
        shutdown_distributed(ctx)
    assert not dist.is_initialized()
