"""How many runs of a plan train at a time, with how many threads each (``--jobs auto``),
and how many cores this process may use."""

import json

import pytest

from hamixer.cli import main
from hamixer.device import cgroup_cpu_quota
from hamixer.errors import HamixerError
from hamixer.experiments.jobs import Parallelism, parallelism

TINY = ["--model-kwargs", "num_blocks=1", "embed_dim=16", "--limit-train", "64",
        "--limit-test", "32", "--batch-size", "32", "--quiet", "--dataset", "digits",
        "--epochs", "1"]


@pytest.mark.parametrize(("cores", "runs", "expected"), [
    (2, 4, (2, 1)),    # make run on 2 cores: side by side, one thread each
    (16, 4, (4, 4)),   # more cores than runs: every run at once, the cores split
    (16, 3, (3, 5)),   # split evenly, the rest left idle rather than oversubscribed
    (1, 4, (1, 1)),    # one core: one after the other
    (8, 1, (1, 8)),    # one run takes every core
    (4, 0, (1, 4)),    # nothing to train still plans one worker
])
def test_cpu_default_runs_side_by_side_one_thread_each_at_least(cores, runs, expected):
    assert parallelism(cores, runs) == Parallelism(*expected)


def test_workers_times_threads_never_exceed_the_cores():
    for cores in range(1, 33):
        for runs in range(1, 20):
            p = parallelism(cores, runs)
            assert p.workers * p.threads <= cores and 1 <= p.workers <= runs


def test_explicit_jobs_and_threads_win():
    assert parallelism(2, 4, jobs=1) == Parallelism(1, 2)  # the old default: here, all cores
    assert parallelism(2, 4, jobs=1, threads=1) == Parallelism(1, 1)
    assert parallelism(16, 4, jobs=2) == Parallelism(2, 8)
    assert parallelism(16, 4, jobs=8) == Parallelism(4, 4)  # never more workers than runs
    assert parallelism(2, 4, jobs=4, threads=3) == Parallelism(4, 3)  # asked for: given
    # --threads alone: as many workers as the cores hold at that many threads
    assert parallelism(16, 8, threads=4) == Parallelism(4, 4)
    assert parallelism(2, 8, threads=4) == Parallelism(1, 4)


def test_one_worker_per_gpu():
    assert parallelism(16, 4, gpus=1) == Parallelism(1, 16)
    assert parallelism(16, 4, gpus=2) == Parallelism(2, 8)
    assert parallelism(16, 2, gpus=8) == Parallelism(2, 8)
    assert parallelism(16, 4, jobs=4, gpus=1) == Parallelism(4, 4)  # --jobs still wins


def test_bad_counts_are_refused():
    with pytest.raises(HamixerError, match="--jobs must be >= 1"):
        parallelism(2, 4, jobs=0)
    with pytest.raises(HamixerError, match="--threads must be >= 1"):
        parallelism(2, 4, threads=0)


def test_the_plan_line_names_workers_threads_and_cores():
    assert parallelism(2, 4).describe(4, 2) == "4 runs, 2 at a time × 1 thread (2 usable cores)"
    assert parallelism(16, 1, gpus=1).describe(1, 16, 1) == \
        "1 run, 1 at a time × 16 threads (1 GPU, 16 usable cores)"


# ------------------------------------------------------------------ the cores one may use
def test_cgroup_quota(tmp_path):
    cpu_max, quota, period = tmp_path / "cpu.max", tmp_path / "quota", tmp_path / "period"
    none = (tmp_path / "no-quota", tmp_path / "no-period")
    cpu_max.write_text("250000 100000\n")
    assert cgroup_cpu_quota(cpu_max, none) == 2.5
    cpu_max.write_text("max 100000\n")
    assert cgroup_cpu_quota(cpu_max, none) is None
    assert cgroup_cpu_quota(tmp_path / "absent", none) is None
    quota.write_text("100000\n")  # cgroup v1, where there is no cpu.max
    period.write_text("100000\n")
    assert cgroup_cpu_quota(tmp_path / "absent", (quota, period)) == 1.0
    quota.write_text("-1\n")
    assert cgroup_cpu_quota(tmp_path / "absent", (quota, period)) is None
    cpu_max.write_text("garbage\n")
    assert cgroup_cpu_quota(cpu_max, none) is None


def test_usable_cores_take_the_affinity_and_the_quota(monkeypatch):
    import os

    from hamixer import device

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(device, "cgroup_cpu_quota", lambda: None)
    assert device.usable_cores() == 4
    monkeypatch.setattr(device, "cgroup_cpu_quota", lambda: 2.5)  # docker run --cpus 2.5
    assert device.usable_cores() == 2
    monkeypatch.setattr(device, "cgroup_cpu_quota", lambda: 0.5)
    assert device.usable_cores() == 1
    monkeypatch.setattr(device, "cgroup_cpu_quota", lambda: 8.0)  # the mask is smaller
    assert device.usable_cores() == 4


def test_omp_num_threads_sets_the_threads_per_run_unless_the_command_does(monkeypatch):
    """A user's OMP_NUM_THREADS is the threads one torch process takes; a pool of runs keeps
    to it too (more runs side by side instead), and says where the number came from."""
    from dataclasses import replace

    from hamixer import device
    from hamixer.experiments import jobs as jobs_mod
    from hamixer.experiments.jobs import Job, plan_parallelism
    from hamixer.train.config import TrainConfig

    monkeypatch.setattr(device, "usable_cores", lambda: 16)
    monkeypatch.setattr(jobs_mod, "_cuda_devices", lambda jobs: 0)
    plan = [Job(f"run{k}", TrainConfig(seed=k)) for k in range(4)]
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert plan_parallelism(plan, None) == (
        Parallelism(4, 4), "4 runs, 4 at a time × 4 threads (16 usable cores)")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert plan_parallelism(plan, None) == (
        Parallelism(4, 1),
        "4 runs, 4 at a time × 1 thread (16 usable cores, threads from OMP_NUM_THREADS=1)")
    monkeypatch.setenv("OMP_NUM_THREADS", "8,2")  # one count per nesting level: the first
    assert plan_parallelism(plan, None)[0] == Parallelism(2, 8)
    assert plan_parallelism(plan, 1)[0] == Parallelism(1, 8)  # --jobs still wins
    threaded = [replace(job, cfg=replace(job.cfg, threads=2)) for job in plan]
    assert plan_parallelism(threaded, None) == (  # and --threads over the variable
        Parallelism(4, 2), "4 runs, 4 at a time × 2 threads (16 usable cores)")
    for unusable in ("", " ", "0", "-3", "x", "2.5"):
        monkeypatch.setenv("OMP_NUM_THREADS", unusable)
        assert device.omp_threads() is None, unusable


# ------------------------------------------------------------------ end to end
def test_compare_says_and_uses_its_choice(tmp_path, capsys, monkeypatch):
    """On one usable core two runs train here, one after the other, with one thread each,
    and the plan's line says so."""
    from hamixer import device

    monkeypatch.setattr(device, "usable_cores", lambda: 1)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the choice, not the user's
    out = tmp_path / "cmp"
    assert main(["compare", "--models", "paramixer", "--seeds", "0,1", "--out", str(out),
                 *TINY]) == 0
    assert "2 runs, 1 at a time × 1 thread (1 usable core)" in capsys.readouterr().out
    for seed in (0, 1):
        summary = json.loads((out / "paramixer_n2_8" / f"seed{seed}" / "summary.json")
                             .read_text())
        assert summary["threads"] == 1


def test_train_never_takes_more_threads_than_usable_cores(tmp_path, monkeypatch):
    """torch counts the machine's cores; a process given fewer trains with those."""
    import torch

    from hamixer.train import run

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(run, "usable_cores", lambda: 1)
        out = tmp_path / "run"
        assert main(["train", "--model", "paramixer", "--out", str(out), *TINY]) == 0
        assert json.loads((out / "summary.json").read_text())["threads"] == 1
        assert torch.get_num_threads() == 2  # for the run only
    finally:
        torch.set_num_threads(before)


def test_jobs_must_be_a_count_or_auto(tmp_path, capsys):
    assert main(["compare", "--jobs", "many", "--out", str(tmp_path / "x"), *TINY]) == 2
    err = capsys.readouterr().err
    assert "--jobs must be a number or auto, got 'many'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()
