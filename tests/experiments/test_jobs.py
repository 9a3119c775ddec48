"""``--jobs N``: several trainings at a time in worker processes, resumable, one table."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hamixer.cli import main
from hamixer.experiments.jobs import run_progress

pytestmark = pytest.mark.integration  # runs the command line end to end

TINY = ["--model-kwargs", "num_blocks=1", "embed_dim=16", "--limit-train", "64",
        "--limit-test", "32", "--batch-size", "32", "--quiet", "--dataset", "digits"]


@pytest.mark.slow  # a pool of worker processes
def test_compare_with_two_jobs_matches_one_job(tmp_path, capsys):
    args = ["compare", "--models", "paramixer,symmixer", "--seeds", "0", "--epochs", "2",
            *TINY]
    assert main([*args, "--jobs", "2", "--out", str(tmp_path / "two")]) == 0
    assert main([*args, "--jobs", "1", "--threads", "1", "--out", str(tmp_path / "one")]) == 0
    for model in ("paramixer_n2_8", "symmixer_n2_8"):
        run = tmp_path / "two" / model / "seed0"
        assert (run / "job.log").is_file() and run_progress(run)[0] == 2.0
        two = json.loads((run / "summary.json").read_text())
        one = json.loads((tmp_path / "one" / model / "seed0" / "summary.json").read_text())
        # a worker trains the same run as this process does: same numbers
        assert two["final_test_acc"] == one["final_test_acc"]
        assert two["threads"] == 1
    table = (tmp_path / "two" / "results.md").read_text()
    assert "| paramixer_n2_8 |" in table and "| symmixer_n2_8 |" in table


@pytest.mark.slow  # a pool of worker processes
def test_failed_worker_is_named(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--models", "paramixer,symmixer", "--seeds", "0", "--epochs", "1",
            "--jobs", "2", "--out", str(out), *TINY]
    assert main(args) == 0
    # a run directory that now disagrees with the plan fails in its worker, not silently
    for model in ("paramixer_n2_8", "symmixer_n2_8"):  # neither counts as finished now
        (out / model / "seed0" / "summary.json").unlink()
    last = out / "symmixer_n2_8" / "seed0" / "last.json"
    meta = json.loads(last.read_text())
    meta["config"]["label_smoothing"] = 0.2
    last.write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "1 of 2 runs failed: symmixer_n2_8 seed 0" in err and "job.log" in err


def test_bad_jobs_value(tmp_path, capsys):
    assert main(["compare", "--jobs", "0", "--out", str(tmp_path / "x"), *TINY]) == 2
    assert "--jobs must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_finished_runs_tabulate_from_their_records_alone(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--models", "paramixer", "--seeds", "0,1", "--epochs", "1",
            "--out", str(out), *TINY]
    assert main(args) == 0
    table = (out / "results.md").read_text()
    for run in (out / "paramixer_n2_8").iterdir():  # keep config, metrics and summary only
        for f in run.iterdir():
            if f.name not in ("config.yaml", "metrics.jsonl", "summary.json"):
                f.unlink()
    capsys.readouterr()
    assert main([*args, "--jobs", "2"]) == 0
    assert "(finished run, read)" in capsys.readouterr().out
    assert (out / "results.md").read_text() == table
    assert not (out / "paramixer_n2_8" / "seed0" / "last.json").exists()  # nothing trained
    # the same directory asked for other settings is refused, not silently re-used
    assert main([*args, "--label-smoothing", "0.2"]) == 2
    assert "was trained with label_smoothing=0.1" in capsys.readouterr().err


def test_a_tied_model_of_a_symmetric_start_comparison_is_read_back(tmp_path, capsys):
    # --init symmetric applies to the free models only: SymMixer trains (and records its
    # config) without it, and a finished comparison is re-tabulated, not refused
    args = ["compare", "--models", "paramixer,symmixer", "--init", "symmetric", "--seeds", "0",
            "--epochs", "1", "--out", str(tmp_path / "cmp"), *TINY]
    assert main(args) == 0
    table = (tmp_path / "cmp" / "results.md").read_text()
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count("(finished run, read)") == 2
    assert (tmp_path / "cmp" / "results.md").read_text() == table


def test_arguments_at_their_defaults_name_the_same_run(tmp_path, capsys):
    # the n_iter study's n_iter = 1 is the model as registered: its run is that of a
    # comparison without n_iter, and is read, not trained again; another n_iter is refused
    out = tmp_path / "cmp"
    args = ["compare", "--models", "paramixer", "--seeds", "0", "--epochs", "1",
            "--out", str(out), *TINY]
    assert main(args) == 0
    kwargs = args.index("embed_dim=16") + 1
    capsys.readouterr()
    assert main([*args[:kwargs], "n_iter=1", *args[kwargs:]]) == 0
    assert "(finished run, read)" in capsys.readouterr().out
    assert main([*args[:kwargs], "n_iter=2", *args[kwargs:]]) == 2
    assert "was trained with model_kwargs=" in capsys.readouterr().err


# ------------------------------------------------------------------ stopping a plan
LINUX_PROC = pytest.mark.skipif(not Path("/proc/self/cmdline").is_file(),
                                reason="finds the worker processes through /proc (Linux)")
MODELS = ("paramixer_n2_8", "symmixer_n2_8")


def _live_workers(out: Path) -> list[int]:
    """The worker processes training under ``out`` (a finished one has no command line)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "hamixer.experiments.jobs" in cmd and str(out) in cmd:
            pids.append(int(proc.name))
    return pids


def _wait(condition, seconds: float = 120.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.2)


@pytest.fixture
def plan_out(tmp_path):
    """The plan's output directory; any worker still training there is killed at the end,
    so that a failing test leaves no process behind."""
    out = tmp_path / "cmp"
    yield out
    for pid in _live_workers(out):
        os.kill(pid, signal.SIGKILL)


def _start_long_plan(out: Path) -> subprocess.Popen:
    """A two-job comparison long enough to be stopped while both workers train."""
    args = ["compare", "--models", "paramixer,symmixer", "--seeds", "0", "--epochs", "500",
            "--jobs", "2", "--out", str(out), *TINY]
    proc = subprocess.Popen([sys.executable, "-m", "hamixer", *args], text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait(lambda: all(run_progress(out / m / "seed0")[0] >= 1 for m in MODELS))
    return proc


def _stopped_with_state_saved(out: Path) -> None:
    _wait(lambda: not _live_workers(out), 60)
    for m in MODELS:
        run = out / m / "seed0"
        assert 1 <= run_progress(run)[0] < 500  # stopped part-way, with its state saved
        assert (run / "last.json").is_file() and not (run / "summary.json").exists()
        assert not (run / ".lock").exists()  # released: the same command can continue it
        assert "stopped by SIGTERM" in (run / "job.log").read_text()


@pytest.mark.slow  # killed worker processes
@LINUX_PROC
def test_sigterm_stops_every_worker_cleanly(plan_out):
    out = plan_out
    proc = _start_long_plan(out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines()[-1].startswith("hamixer compare: stopped: stopped by "
                                                   "SIGTERM; every unfinished run saved")
    assert not _live_workers(out)  # the command waited for them
    _stopped_with_state_saved(out)


@pytest.mark.slow  # killed worker processes
@LINUX_PROC
def test_workers_of_a_killed_command_stop_by_themselves(plan_out):
    out = plan_out
    proc = _start_long_plan(out)
    proc.kill()  # SIGKILL: the command cannot stop its workers; they notice and stop
    proc.wait(timeout=30)
    _stopped_with_state_saved(out)


def test_resumed_run_bar_counts_only_new_epochs(tmp_path):
    """A run resumed at epoch 3.5 of 10 starts its bar there: the time left is measured from
    the epochs trained now, not from all 3.5 as if they had taken no time."""
    from hamixer.experiments.jobs import Job, _Pool
    from hamixer.train.config import TrainConfig

    run = tmp_path / "run"
    run.mkdir()
    rows = [{"epoch": e, "test_acc": 80.0 + e} for e in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "last.json").write_text(json.dumps({"epoch": 3, "step": 50, "steps_per_epoch": 100}))
    pool = _Pool([Job("m", TrainConfig(epochs=10, out=str(run)))], 2, print, progress=True)
    pool.terminal = True
    bar = pool._bar(0, 0)
    assert bar.initial == bar.n == 3.5 and bar.total == 10
    bar.close()


def test_progress_to_a_file_is_one_line_per_epoch(tmp_path, capsys):
    """With the output going to a file (a sweep under nohup), each worker writes a line per
    finished epoch instead of redrawing a bar with carriage returns and cursor moves."""
    from hamixer.experiments.jobs import Job, _Pool
    from hamixer.train.config import TrainConfig

    # the fifth run of a plan of 24, the others finished: named by its place in the plan
    pool = _Pool([Job("m seed 0", TrainConfig(epochs=10, out=str(tmp_path / "run")))], 2,
                 print, progress=True, numbers=[5], plan_size=24)
    pool.terminal = False
    bar = pool._bar(0, 0)
    for n, acc in ((0.4, None), (1.0, "test 80.00%"), (1.7, "test 80.00%"),
                   (2.1, "test 81.50%")):
        bar.n = n
        if acc:
            bar.set_postfix_str(acc, refresh=False)
        bar.refresh()
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert [x.split(" (")[0] for x in lines] == ["[5/24] m seed 0: epoch 1/10, test 80.00%",
                                                 "[5/24] m seed 0: epoch 2/10, test 81.50%"]
    assert "\r" not in "".join(lines) and "\x1b" not in "".join(lines)


def test_workers_share_the_cores_this_process_may_use(monkeypatch):
    """A process given 2 of 8 cores (a container's share, ``taskset``) splits those 2, not
    the machine's 8, between its workers."""
    from hamixer import device
    from hamixer.experiments.jobs import Job, _Pool
    from hamixer.train.config import TrainConfig

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {2, 5}, raising=False)
    monkeypatch.setattr(device, "cgroup_cpu_quota", lambda: None)  # whatever the host's
    jobs = [Job(f"j{k}", TrainConfig(out=f"unused{k}", device="cpu")) for k in range(2)]
    assert _Pool(jobs, 2, print, progress=False).threads == 1
    assert _Pool(jobs[:1], 1, print, progress=False).threads == 2
