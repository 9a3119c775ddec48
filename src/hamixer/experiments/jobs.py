"""Run a plan of trainings, N at a time, each in its own process and run directory (``--jobs``).

A plan is a list of :class:`Job`: a label and a :class:`TrainConfig` whose ``out`` is the run
directory. :func:`run_jobs` reads back the runs that have finished and hands the others to an
executor: this process and its worker pool (below), or a :class:`Launcher` (a Slurm job array
or submitit's local executor, :mod:`hamixer.experiments.cluster`), which may only submit them.
With one job at a time the runs train in this process, one after the other. With
N, N worker processes train side by side: the CPU threads are split between them, and on a
machine with several GPUs each worker gets one. By default (``n_jobs=None``, ``--jobs
auto``) :func:`parallelism` chooses: on the CPU as many workers as there are cores for,
one thread each at least, because one process's threads that wait for each other while
another process holds a core stall the whole run. Every run resumes from its directory, so a
killed plan continues where each run stopped and a finished run is only read back.

While workers train, one progress line per worker shows its run, epoch and last test
accuracy (redrawn on a terminal; written out once per finished epoch when the output goes to
a file); each worker's own output goes to ``job.log`` in its run directory.

Stopping: Ctrl-C or SIGTERM to the command asks every worker to save its state and stop
(the workers run in their own session, so a terminal's Ctrl-C reaches them only through
the command, once), and the command exits with 128 + the signal. A worker whose command is
gone (``kill -9``, a closed terminal) saves and stops by itself within seconds, so no
orphan keeps training, or holding its run directory's lock, after the command is gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from ..errors import HamixerError, Interrupted
from ..runs import read_checkpoint_record, read_config, read_metrics, read_summary
from ..train.config import TrainConfig

#: Seconds between looks at the workers' run directories.
POLL_SECONDS = 1.0
#: Seconds between a worker's looks at whether the command that started it is still there.
ORPHAN_CHECK_SECONDS = 2.0


class WorkerCrashed(HamixerError):
    """Runs of a plan that ended in a traceback: reported in one line, but as a crash (exit
    status 1), never as the user's error."""

    exit_code = 1


@dataclass(frozen=True)
class Job:
    """One training of a plan: ``label`` names it in logs and tables."""

    label: str
    cfg: TrainConfig
    symmetry: bool = True


class Launcher(Protocol):
    """An executor of the runs of a plan elsewhere than in this process's pool."""

    def run(self, jobs: Sequence[Job], numbers: Sequence[int], plan_size: int,
            log: Callable[[str], None]) -> list[dict[str, Any]] | None:
        """Train ``jobs`` (numbered ``numbers`` in a plan of ``plan_size``); return their
        summaries in order, or None when they were only submitted."""
        ...


@dataclass(frozen=True)
class Parallelism:
    """How a plan trains: ``workers`` runs at a time with ``threads`` CPU threads each."""

    workers: int
    threads: int

    def describe(self, runs: int, cores: int, gpus: int = 0, threads_from: str = "") -> str:
        """The plan's line: ``4 runs, 2 at a time × 1 thread (2 usable cores)``, and where
        the threads came from if not from the command (``threads_from``)."""
        where = f"{_count(gpus, 'GPU')}, " if gpus else ""
        source = f", threads from {threads_from}" if threads_from else ""
        return (f"{_count(runs, 'run')}, {self.workers} at a time × "
                f"{_count(self.threads, 'thread')} ({where}{_count(cores, 'usable core')}"
                f"{source})")


def plan_parallelism(jobs: Sequence[Job], n_jobs: int | None) -> tuple[Parallelism, str]:
    """:func:`parallelism` for ``jobs`` on this process's cores and GPUs, and its line. The
    threads per run are the command's ``--threads`` (the same in every run of a plan), else
    the user's ``OMP_NUM_THREADS``, which torch would take for one process and which a pool
    of them should not exceed either, else chosen."""
    from ..device import omp_threads, usable_cores

    cores, gpus = usable_cores(), _cuda_devices(jobs)
    asked, source = jobs[0].cfg.threads, ""
    if asked is None and (asked := omp_threads()) is not None:
        source = f"OMP_NUM_THREADS={asked}"
    par = parallelism(cores, len(jobs), n_jobs, asked, gpus)
    return par, par.describe(len(jobs), cores, gpus, source)


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'s' if n != 1 else ''}"


def parallelism(cores: int, runs: int, jobs: int | None = None, threads: int | None = None,
                gpus: int = 0) -> Parallelism:
    """Workers and threads per worker for a plan of ``runs`` trainings on ``cores`` usable
    cores (:func:`hamixer.device.usable_cores`) and ``gpus`` GPUs; ``jobs`` and ``threads``
    are the user's ``--jobs``/``--threads`` (None: choose), which always win.

    Chosen: one worker per GPU, or on the CPU as many workers as the cores allow at the
    threads asked for (one each by default), never more than the runs; the threads are the
    cores split evenly between the workers, so together they never ask for more cores than
    this process may use. The choice depends on the plan's size, not on how many of its
    runs are finished, so that a resumed run trains with the threads it started with."""
    if cores < 1 or runs < 0:
        raise ValueError(f"cores {cores} and runs {runs} must be >= 1 and >= 0")
    if jobs is not None and jobs < 1:
        raise HamixerError(f"--jobs must be >= 1, got {jobs}")
    if threads is not None and threads < 1:
        raise HamixerError(f"--threads must be >= 1, got {threads}")
    runs = max(1, runs)
    if jobs is not None:
        workers = min(jobs, runs)
    elif gpus:
        workers = min(gpus, runs)
    else:
        workers = min(runs, max(1, cores // (threads or 1)))
    return Parallelism(workers, threads or max(1, cores // workers))


def run_jobs(jobs: Sequence[Job], n_jobs: int | None = None, log: Callable[[str], None] = print,
             progress: bool = True, launcher: Launcher | None = None
             ) -> list[dict[str, Any]] | None:
    """Train every job (resuming each from its run directory); return the summaries in plan
    order, or None when ``launcher`` only submitted the unfinished ones. ``n_jobs`` runs
    train at a time (None: :func:`parallelism` chooses). Raises :class:`HamixerError` naming
    the runs that failed, after the others end."""
    if n_jobs is not None and n_jobs < 1:
        raise HamixerError(f"--jobs must be >= 1, got {n_jobs}")
    done = {k: s for k, job in enumerate(jobs) if (s := finished_summary(job.cfg)) is not None}
    for k, summary in done.items():
        log(_result_line(k + 1, len(jobs), jobs[k].label, summary) + "  (finished run, read)")
    todo = [k for k in range(len(jobs)) if k not in done]
    check_plan_data([jobs[k].cfg for k in todo])
    if launcher is not None and todo:
        ran = launcher.run([jobs[k] for k in todo], [k + 1 for k in todo], len(jobs), log)
        if ran is None:
            return None
        trained = dict(zip(todo, ran, strict=True))
    elif todo:
        par, line = plan_parallelism(jobs, n_jobs)
        log(line)
        with_threads = [replace(jobs[k], cfg=replace(
            jobs[k].cfg, threads=jobs[k].cfg.threads or par.threads)) for k in todo]
        if par.workers == 1 or len(todo) == 1:
            trained = {k: _train_here(k + 1, job, len(jobs), log)
                       for k, job in zip(todo, with_threads, strict=True)}
        else:
            ran = _Pool(with_threads, par.workers, log, progress, numbers=[k + 1 for k in todo],
                        plan_size=len(jobs), threads=par.threads).run()
            trained = dict(zip(todo, ran, strict=True))
    else:
        trained = {}
    return [done[k] if k in done else trained[k] for k in range(len(jobs))]


def check_plan_data(cfgs: Sequence[TrainConfig]) -> None:
    """Check that the data fits each run of a plan (:func:`hamixer.train.setup.check_data`)
    and that its model builds for it (:func:`~hamixer.train.setup.check_model`) before any
    run directory exists: a bad data set or model argument is one line, not a failure per
    run in its worker. Runs that read the same data with the same head are checked once."""
    from ..train.setup import check_data, check_model

    inputs: dict[tuple[Any, ...], tuple[int, int, int]] = {}
    models = set()
    for cfg in cfgs:
        key = (cfg.dataset, cfg.data_dir, cfg.img_size, json.dumps(cfg.model_kwargs,
                                                                   sort_keys=True, default=str))
        if key not in inputs:
            inputs[key] = check_data(cfg)
        if (cfg.model, cfg.drop_path, key) not in models:
            models.add((cfg.model, cfg.drop_path, key))
            check_model(cfg, *inputs[key])


def finished_summary(cfg: TrainConfig) -> dict[str, Any] | None:
    """The summary of the run in ``cfg.out`` if it has trained all of ``cfg``'s epochs with
    ``cfg``'s settings (read from its ``config.yaml``); None if it has not finished.

    This is what lets a table be made again from the records of finished runs alone
    (``config.yaml``, ``metrics.jsonl``, ``summary.json``), without their checkpoints.
    Raises :class:`HamixerError` for a finished run trained with other settings."""
    from ..train.run import check_same_config
    from .training import settle_init

    # what the run was trained with: a tied model of a plan without its shared --init
    cfg = settle_init(cfg, in_plan=True)
    summary = read_summary(cfg.out or "")
    if summary is None or summary.get("epochs") != cfg.epochs:
        return None
    config = read_config(cfg.out or "")
    if config is None:
        return None
    check_same_config(config, cfg, cfg.out or "")
    return summary


def _result_line(k: int, total: int, label: str, s: dict[str, Any]) -> str:
    return result_line(f"[{k}/{total}]", label, s)


def result_line(place: str, label: str, s: dict[str, Any]) -> str:
    """What a finished run is in one line: ``[3/8] label: best ...% final ...%``."""
    return (f"{place} {label}: best {s['best_test_acc']:.2f}%  final "
            f"{s['final_test_acc']:.2f}%  {s['total_seconds']:.0f}s  "
            f"{s['train_images_per_s']:.0f} img/s")


def _train_here(k: int, job: Job, total: int, log: Callable[[str], None]) -> dict[str, Any]:
    from .training import train_run

    summary = train_run(job.cfg, job.symmetry)
    log(_result_line(k, total, job.label, summary))
    return summary


def _cuda_devices(jobs: Sequence[Job]) -> int:
    """How many GPUs the workers can take turns on (0: CPU only, or the runs ask for CPU)."""
    if all(j.cfg.device == "cpu" for j in jobs):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class _Pool:
    """Worker processes over a queue of jobs, with one progress bar per worker slot."""

    def __init__(self, jobs: Sequence[Job], n_jobs: int, log: Callable[[str], None],
                 progress: bool, numbers: Sequence[int] | None = None,
                 plan_size: int | None = None, threads: int | None = None) -> None:
        self.jobs, self.n_jobs, self.log, self.show = list(jobs), n_jobs, log, progress
        # each job is named by its place in the whole plan, finished runs included
        self.numbers = list(numbers or range(1, len(self.jobs) + 1))
        self.plan_size = plan_size or len(self.jobs)
        self.terminal = sys.stderr.isatty()  # bars redrawn in place; else one line an epoch
        self.gpus = _cuda_devices(self.jobs)
        from ..device import usable_cores

        # each worker's threads, unless its run sets them: never more than this process's
        # cores split between the workers
        self.threads = threads or max(1, usable_cores() // n_jobs)
        self.summaries: list[dict[str, Any] | None] = [None] * len(self.jobs)
        self.failed: list[str] = []  # user errors (exit 2)
        self.crashed: list[str] = []  # anything else: a traceback in job.log
        self.running: dict[int, tuple[int, subprocess.Popen, Any]] = {}  # slot → (job, p, bar)

    def run(self) -> list[dict[str, Any]]:
        from ..train.loop import StopRequest

        queue = list(range(len(self.jobs)))
        try:
            with StopRequest() as stop:  # the first Ctrl-C/SIGTERM: stop the workers cleanly
                while (queue or self.running) and stop.signum is None:
                    for slot in range(self.n_jobs):
                        if slot not in self.running and queue:
                            self._start(slot, queue.pop(0))
                    time.sleep(POLL_SECONDS)
                    self._poll()
                if stop.signum is not None:
                    self._stop_all()
        except BaseException:  # a second signal (the workers stop at once), or a bug
            self._stop_all()
            raise
        if stop.signum is not None:
            name = signal.Signals(stop.signum).name
            raise Interrupted(f"stopped by {name}; every unfinished run saved its state; the "
                              "same command continues them", stop.signum)
        if self.crashed:  # a bug, not the user's input: not exit status 2
            raise WorkerCrashed(f"{len(self.crashed)} of {len(self.jobs)} runs crashed (a "
                                "bug; the traceback is in each job.log): "
                                + "; ".join(self.crashed + self.failed))
        if self.failed:
            raise HamixerError(f"{len(self.failed)} of {len(self.jobs)} runs failed: "
                               + "; ".join(self.failed))
        return [s for s in self.summaries if s is not None]

    def _start(self, slot: int, index: int) -> None:
        job = self.jobs[index]
        cfg = job.cfg
        threads = cfg.threads or self.threads
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        if self.gpus > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(slot % self.gpus)
        spec = {"config": {**cfg.to_dict(), "threads": threads, "quiet": True,
                           "resume": True}, "symmetry": job.symmetry, "parent": os.getpid()}
        out = Path(cfg.out or "")
        out.mkdir(parents=True, exist_ok=True)
        logfile = open(out / "job.log", "a")  # noqa: SIM115 - closed when the worker ends
        proc = subprocess.Popen([sys.executable, "-m", __name__, json.dumps(spec)], env=env,
                                stdout=logfile, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        logfile.close()  # the worker holds its own copy
        self.running[slot] = (index, proc, self._bar(slot, index))

    def _place(self, index: int) -> str:
        return f"[{self.numbers[index]}/{self.plan_size}]"

    def _bar(self, slot: int, index: int) -> Any:
        from tqdm import tqdm

        job = self.jobs[index]
        # A resumed run starts its bar where it stopped, so that the rate and the time left
        # count only the epochs trained now (tqdm measures the rate from `initial`).
        done = min(run_progress(Path(job.cfg.out or ""))[0], job.cfg.epochs)
        if not self.terminal:
            return _EpochLines(f"{self._place(index)} {job.label}", job.cfg.epochs,
                               done, self.show)
        return tqdm(total=job.cfg.epochs, initial=done, position=slot, leave=False,
                    unit="epoch", desc=f"{self._place(index)} {job.label}",
                    disable=not self.show, dynamic_ncols=True,
                    bar_format="{desc}: {n:.1f}/{total} epochs |{bar}| {elapsed}<{remaining}"
                    "{postfix}")

    def _poll(self) -> None:
        from tqdm import tqdm

        for slot, (index, proc, bar) in list(self.running.items()):
            job = self.jobs[index]
            done, acc = run_progress(Path(job.cfg.out or ""))
            bar.n = min(done, job.cfg.epochs)
            if acc is not None:
                bar.set_postfix_str(f"test {acc:.2f}%", refresh=False)
            bar.refresh()
            rc = proc.poll()
            if rc is None:
                continue
            bar.close()
            del self.running[slot]
            summary = read_summary(job.cfg.out or "") if rc == 0 else None
            if summary is not None:
                self.summaries[index] = summary
                tqdm.write(_result_line(self.numbers[index], self.plan_size, job.label,
                                        summary))
            else:
                # exit 2: the worker's one-line user error; anything else is a crash
                (self.failed if rc == 2 else self.crashed).append(
                    f"{job.label} (exit {rc}; see {job.cfg.out}/job.log: "
                    f"{_last_line(Path(job.cfg.out or '') / 'job.log')})")
                tqdm.write(f"{self._place(index)} {job.label}: failed, exit {rc}")

    def _stop_all(self) -> None:
        """Ask every worker to save and stop (SIGTERM), then wait for them."""
        for _, proc, bar in self.running.values():
            if proc.poll() is None:
                proc.terminate()
            bar.close()
        for _, proc, _ in self.running.values():
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.running.clear()


class _EpochLines:
    """A worker's progress written to a file: one line per finished epoch, where a redrawn
    bar would fill the file with carriage returns and cursor moves. Has the part of tqdm's
    interface that :class:`_Pool` uses."""

    def __init__(self, desc: str, total: int, initial: float, show: bool) -> None:
        self.desc, self.total, self.n, self.show = desc, total, initial, show
        self.postfix = ""
        self._said = int(initial)  # the last whole epoch written out
        self._start = time.monotonic()

    def set_postfix_str(self, text: str, refresh: bool = False) -> None:
        self.postfix = text

    def refresh(self) -> None:
        if not self.show or int(self.n) <= self._said:
            return
        self._said = int(self.n)
        minutes, seconds = divmod(int(time.monotonic() - self._start), 60)
        after = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: epoch {self._said}/{self.total}{after} ({minutes}:{seconds:02d} "
              "since this command started it)", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def run_progress(run_dir: Path) -> tuple[float, float | None]:
    """Epochs done in ``run_dir`` (fractional from the last mid-epoch save) and the last
    test accuracy, read from what the run has written so far."""
    rows = read_metrics(run_dir)
    done = float(rows[-1]["epoch"]) if rows else 0.0
    acc = rows[-1]["test_acc"] if rows else None
    meta = read_checkpoint_record(run_dir) or {}
    try:
        if meta.get("step") and meta.get("steps_per_epoch") and meta["epoch"] == done:
            done += meta["step"] / meta["steps_per_epoch"]
    except (KeyError, TypeError):
        pass  # no mid-epoch save yet (its record lacks the fields), or one being replaced
    return done, acc


def _last_line(path: Path) -> str:
    try:
        lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return "no log"
    return lines[-1][-200:] if lines else "empty log"


def _worker(spec_json: str) -> int:
    """One job in a worker process: train (resumably), then exit 0; a user error exits 2."""
    from .training import train_run

    spec = json.loads(spec_json)
    cfg = TrainConfig(**spec["config"])
    if spec.get("parent"):
        _stop_when_orphaned(int(spec["parent"]))
    try:
        train_run(cfg, spec["symmetry"])
    except HamixerError as err:
        print(f"error: {err}", file=sys.stderr)
        return int(getattr(err, "exit_code", 2))
    return 0


def _stop_when_orphaned(parent: int) -> None:
    """Once the command that started this worker is gone, stop the run as SIGTERM does (its
    state saved): the worker is re-parented, so its parent id changes."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_CHECK_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


if __name__ == "__main__":
    raise SystemExit(_worker(sys.argv[1]))
