"""Slurm through submitit: ``train --launcher slurm``, ``srun``, plans as job arrays, requeue.

The tests marked ``slurm`` run on a real one-node Slurm that ``.ci/slurm.sh`` starts on
localhost (slurmctld + slurmd, as root); where it cannot be started they skip with its reason.
Everything runs on CPU with gloo, on digits, with tiny models."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from hamixer.cli import main

pytestmark = pytest.mark.integration  # runs the command line end to end
ROOT = Path(__file__).resolve().parents[2]
TIMING = {"seconds", "train_seconds", "images_per_s"}
TINY = ["--model-kwargs", "num_blocks=1", "embed_dim=16", "--dataset", "digits",
        "--threads", "1", "--quiet"]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}


def _rows(out):
    rows = [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def _same_weights(a_dir, b_dir, tol=0.0):
    for name in ("last.safetensors", "best.safetensors"):
        a, b = load_file(str(Path(a_dir) / name)), load_file(str(Path(b_dir) / name))
        assert a.keys() == b.keys(), name
        for k in a:
            assert (a[k] - b[k]).abs().max() <= tol, (name, k)


@pytest.fixture(scope="session")
def slurm():
    """The partition of the local test Slurm (started by .ci/slurm.sh), or a skip saying why."""
    res = subprocess.run(["bash", str(ROOT / ".ci" / "slurm.sh"), "--no-install"],
                         capture_output=True, text=True, timeout=180)
    if res.returncode != 0:
        pytest.skip(f"no local Slurm: {res.stderr.strip() or 'slurm.sh failed'}")
    return res.stdout.strip()


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err, err
    for needle in needles:
        assert needle in err, err
    return err


# ---------------------------------------------------------------- Slurm's variables
def test_slurm_node_lists_expand_as_slurm_writes_them():
    from hamixer.train.distributed import expand_nodelist

    assert expand_nodelist("vm") == ["vm"]
    assert expand_nodelist("gpu[01-03,07],login1") == ["gpu01", "gpu02", "gpu03", "gpu07",
                                                        "login1"]
    assert expand_nodelist("r[1-2]-n[8-9]") == ["r1-n8", "r1-n9", "r2-n8", "r2-n9"]


def test_a_task_of_a_slurm_step_finds_its_group_and_a_batch_shell_does_not():
    from hamixer.train.distributed import slurm_rendezvous

    step = {"SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "8", "SLURM_LOCALID": "1",
            "SLURM_JOB_ID": "4321", "SLURM_STEP_NODELIST": "gpu[07-10]",
            "SLURM_JOB_NODELIST": "gpu[07-10]"}
    meet = slurm_rendezvous(step)
    assert (meet.rank, meet.world, meet.local_rank) == (5, 8, 1)
    assert meet.address == "gpu07" and meet.port == 15000 + 4321
    assert slurm_rendezvous({**step, "MASTER_PORT": "29400"}).port == 29400
    # a batch script's shell: Slurm's job variables but no step of several tasks
    shell = {k: v for k, v in step.items() if k != "SLURM_STEP_NUM_TASKS"}
    assert slurm_rendezvous(shell) is None
    assert slurm_rendezvous({**step, "SLURM_STEP_NUM_TASKS": "1"}) is None


# ---------------------------------------------------------------------- bad input
def test_launcher_without_submitit_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    out = tmp_path / "run"
    assert main(["train", "--model", "paramixer", *TINY, "--out", str(out),
                 "--launcher", "slurm"]) == 2
    _one_line_error(capsys, "pip install 'hamixer[slurm]'")
    assert main(["compare", "--models", "paramixer", *TINY, "--out", str(out),
                 "--launcher", "local"]) == 2
    _one_line_error(capsys, "submitit")
    assert not out.exists()


def test_launcher_without_sbatch_is_one_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "run"
    assert main(["train", "--model", "paramixer", *TINY, "--out", str(out),
                 "--launcher", "slurm"]) == 2
    _one_line_error(capsys, "no sbatch on PATH")
    assert main(["sweep", "--lambdas", "1", *TINY, "--out", str(out),
                 "--launcher", "slurm"]) == 2
    _one_line_error(capsys, "no sbatch on PATH")
    assert not out.exists()


# --------------------------------------------------------------- on a real Slurm
@pytest.mark.slurm
def test_an_unknown_partition_or_a_bad_value_submits_nothing(tmp_path, capsys, slurm):
    out = tmp_path / "run"
    before = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i"], capture_output=True,
                            text=True).stdout.split()
    assert main(["train", "--model", "paramixer", *TINY, "--out", str(out),
                 "--launcher", "slurm", "--partition", f"{slurm}x"]) == 2
    _one_line_error(capsys, f"unknown --partition '{slurm}x'", f"did you mean: {slurm}")
    assert main(["train", "--model", "nosuchmixer", *TINY, "--out", str(out),
                 "--launcher", "slurm", "--partition", slurm]) == 2
    _one_line_error(capsys)
    assert main(["train", "--model", "paramixer", *TINY, "--out", str(out), "--batch-size",
                 "33", "--launcher", "slurm", "--tasks-per-node", "2"]) == 2
    _one_line_error(capsys, "multiple of the 2 tasks")
    assert main(["compare", "--models", "paramixer", *TINY, "--out", str(out),
                 "--launcher", "slurm", "--nodes", "0"]) == 2
    _one_line_error(capsys, "--nodes must be >= 1")
    assert not out.exists()
    after = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i"], capture_output=True,
                           text=True).stdout.split()
    assert sorted(after) == sorted(before)  # nothing was submitted


DDP = ["train", "--model", "paramixer", *TINY, "--epochs", "2", "--limit-train", "128",
       "--limit-test", "64", "--batch-size", "32", "--seed", "1", "--no-symmetry"]


@pytest.mark.slow
@pytest.mark.slurm
def test_two_slurm_tasks_train_as_one_process(tmp_path, capsys, slurm):
    """--launcher slurm with 2 tasks on the one node (gloo, CPU) = 1 process with the same
    global batch, as under torchrun; the command follows the job to its end."""
    assert main([*DDP, "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    assert main([*DDP, "--out", str(tmp_path / "slurm"), "--launcher", "slurm",
                 "--partition", slurm, "--tasks-per-node", "2", "--timeout", "10",
                 "--wait"]) == 0
    said = capsys.readouterr().out
    assert "submitted Slurm job" in said and "2 tasks (1 node × 2)" in said, said
    assert ": queued (job" in said or ": running epoch" in said, said
    assert '"processes": 2' in said
    a, b = _rows(tmp_path / "slurm"), _rows(tmp_path / "one")
    assert [r["epoch"] for r in a] == [1, 2]
    for ra, rb in zip(a, b, strict=True):
        for k, v in rb.items():
            assert ra[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
    _same_weights(tmp_path / "slurm", tmp_path / "one", tol=1e-5)
    summary = json.loads((tmp_path / "slurm" / "summary.json").read_text())
    assert summary["processes"] == 2
    # rank 0 alone wrote the command's records; the command is the one typed
    assert "--launcher slurm" in (tmp_path / "slurm" / "command.txt").read_text()


@pytest.mark.slow
@pytest.mark.slurm
def test_srun_hamixer_train_joins_the_tasks(tmp_path, slurm):
    """``srun -n 2 hamixer train ...``, as with timm: no torchrun, the tasks meet by Slurm's
    variables; only rank 0 reports."""
    loud = [a for a in DDP if a != "--quiet"]
    res = subprocess.run(["srun", "-p", slurm, "-n", "2", "--time", "10", sys.executable, "-m",
                          "hamixer", *loud, "--out", str(tmp_path / "srun")],
                         env=_env(), capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count('"best_test_acc"') == 1, res.stdout  # rank 0's summary alone
    assert json.loads((tmp_path / "srun" / "summary.json").read_text())["processes"] == 2


# -------------------------------------------------------------- plans as job arrays
SWEEP = ["sweep", "--lambdas", "0.1", "--references", "sym", "--seeds", "0", "--epochs", "2",
         "--limit-train", "128", "--limit-test", "64", "--batch-size", "32", *TINY]


def _table(out):
    """sweep.md without its last line, the command that made it."""
    return (Path(out) / "sweep.md").read_text().split("\nCommand:")[0]


@pytest.mark.slow
@pytest.mark.slurm
def test_a_sweep_as_a_slurm_array_gives_the_local_table(tmp_path, capsys, slurm):
    assert main([*SWEEP, "--out", str(tmp_path / "here")]) == 0
    capsys.readouterr()
    out = tmp_path / "array"
    assert main([*SWEEP, "--out", str(out), "--launcher", "slurm", "--partition", slurm,
                 "--array-parallelism", "2", "--timeout", "10", "--wait"]) == 0
    said = capsys.readouterr().out
    assert "submitted 2 runs as Slurm job array" in said, said
    assert "[1/2] symmixer_n2_8 seed 0: best" in said and "[2/2] asymmixer_n2_8-lambda0.1" \
        in said, said
    assert _table(out) == _table(tmp_path / "here")
    for run in ("symmixer_n2_8", "asymmixer_n2_8-lambda0.1"):  # each in its own run directory
        assert _rows(out / run / "seed0") == _rows(tmp_path / "here" / run / "seed0")
    record = json.loads((out / "submitted.json").read_text())
    assert [Path(r["run_dir"]).parent.name for r in record["runs"]] == [
        "symmixer_n2_8", "asymmixer_n2_8-lambda0.1"]
    # the same command without --launcher makes the table from the finished runs alone
    assert main([*SWEEP, "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("(finished run, read)") == 2
    assert _table(out) == _table(tmp_path / "here")


COMPARE = ["compare", "--models", "paramixer,symmixer", "--seeds", "0", "--epochs", "1",
           "--limit-train", "64", "--limit-test", "32", "--batch-size", "32", *TINY]


@pytest.mark.slow
def test_local_launcher_runs_the_plan_and_names_the_failed_run(tmp_path, capsys):
    """--launcher local: the same plan through submitit's local executor, the same numbers as
    in this process; a run that fails is named with its log and the command exits 2."""
    pytest.importorskip("submitit")
    assert main([*COMPARE, "--out", str(tmp_path / "here")]) == 0
    out = tmp_path / "local"
    args = [*COMPARE, "--out", str(out), "--launcher", "local", "--jobs", "2"]
    assert main(args) == 0
    said = capsys.readouterr().out
    assert "through submitit's local executor, 2 at a time" in said, said
    for model in ("paramixer_n2_8", "symmixer_n2_8"):
        assert _rows(out / model / "seed0") == _rows(tmp_path / "here" / model / "seed0")
    # a run directory that now disagrees with the plan fails in its job, not silently
    for model in ("paramixer_n2_8", "symmixer_n2_8"):
        (out / model / "seed0" / "summary.json").unlink()
    last = out / "symmixer_n2_8" / "seed0" / "last.json"
    meta = json.loads(last.read_text())
    meta["config"]["label_smoothing"] = 0.2
    last.write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "symmixer_n2_8 seed 0: failed" in captured.out
    err = captured.err
    assert err.count("\n") == 1 and "1 of 2 runs failed: symmixer_n2_8 seed 0" in err, err
    assert str(out / "slurm") in err and "was trained with label_smoothing" in err, err


# -------------------------------------------------------------------- preemption
REQUEUED = ["train", "--model", "paramixer", *TINY, "--epochs", "3", "--limit-train", "512",
            "--limit-test", "64", "--batch-size", "16", "--seed", "3", "--crop-padding", "1",
            "--reprob", "0.25", "--mixup", "0.8", "--cutmix", "1.0", "--drop-path", "0.1",
            "--hflip", "0.5", "--checkpoint-every-steps", "3", "--no-symmetry"]


def _state(job):
    res = subprocess.run(["squeue", "-h", "--states=all", "-j", job, "-o", "%T"],
                         capture_output=True, text=True)
    return res.stdout.strip()


def _until(what, seconds, poll=0.01):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def _mid_epoch(out):
    try:
        meta = json.loads((out / "last.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return meta if meta.get("step") else None


def _requeued_starts_now(job):
    """A requeued job waits before it may start again; the test's cluster lets it start now."""
    _until(lambda: _state(job) == "PENDING", 120, poll=0.5)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)


@pytest.mark.slow
@pytest.mark.slurm
def test_scontrol_requeue_and_the_time_limit_warning_resume_bitwise(tmp_path, capsys, slurm):
    """A preemption (Slurm's requeue: SIGTERM) and then a time-out warning (USR2, which
    submitit's checkpointing hook answers) of a training in mid-epoch: each time every task
    saves at the next step and stops, the job starts again and resumes where it stopped, and
    the run ends with the numbers and weights of a run never interrupted (every augmentation
    on)."""
    assert main([*REQUEUED, "--out", str(tmp_path / "ref")]) == 0
    out = tmp_path / "run"
    capsys.readouterr()
    assert main([*REQUEUED, "--out", str(out), "--launcher", "slurm", "--partition", slurm,
                 "--timeout", "10"]) == 0
    job = capsys.readouterr().out.split("submitted Slurm job ")[1].split(":")[0]
    first = _until(lambda: _mid_epoch(out), 300)
    subprocess.run(["scontrol", "requeue", job], check=True)
    _requeued_starts_now(job)
    log = out / "slurm" / f"{job}_0_log.err"
    stopped = _until(lambda: "stopped: stopped by SIGTERM" in log.read_text()
                     and _mid_epoch(out), 60)

    def saved_again():  # the second attempt has trained past where the first one stopped
        meta = _mid_epoch(out)
        return meta if meta and (meta["epoch"], meta["step"]) != (
            stopped["epoch"], stopped["step"]) else None

    _until(saved_again, 300)
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    _requeued_starts_now(job)
    _until(lambda: _state(job) in ("COMPLETED", "FAILED", "CANCELLED"), 400, poll=1)
    assert _state(job) == "COMPLETED"
    text = log.read_text()
    assert "stopped: stopped by SIGTERM; state saved" in text, text[-2000:]
    assert "time-limit warning (USR2): stopped by SIGTERM; state saved" in text, text[-2000:]
    for line in (x for x in text.splitlines() if "state saved in" in x):
        assert "(step" in line, line  # both stops were within an epoch
    assert first["epoch"] < 3 and json.loads((out / "summary.json").read_text())["epochs"] == 3
    assert _rows(out) == _rows(tmp_path / "ref")  # bitwise: floats compared with ==
    _same_weights(out, tmp_path / "ref")


@pytest.mark.slow
@pytest.mark.slurm
def test_ctrl_c_cancels_the_array_and_every_run_keeps_its_state(tmp_path, slurm):
    out = tmp_path / "cmp"
    args = [*COMPARE, "--epochs", "40", "--limit-train", "512", "--batch-size", "16",
            "--set", "checkpoint_every_seconds=1"]
    proc = subprocess.Popen([sys.executable, "-m", "hamixer", *args, "--out", str(out),
                             "--launcher", "slurm", "--partition", slurm, "--timeout", "10",
                             "--wait"], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    run = out / "paramixer_n2_8" / "seed0"
    _until(lambda: (run / "last.json").is_file(), 300, poll=0.5)
    proc.send_signal(signal.SIGINT)
    said, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "stopped by SIGINT; cancelled the unfinished runs" in err, err
    array = json.loads((out / "submitted.json").read_text())["job"]
    _until(lambda: "CANCELLED" in _state(array) and "RUNNING" not in _state(array), 60, 0.5)
    assert json.loads((run / "last.json").read_text())["epoch"] < 40  # saved, resumable
