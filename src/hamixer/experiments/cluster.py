"""Trainings on a Slurm cluster, or through submitit's local executor, with submitit.

One training (``hamixer train --launcher slurm``) is one job of ``nodes × tasks_per_node``
tasks; srun starts them and each joins the process group from Slurm's variables
(:mod:`hamixer.train.distributed`). A plan (``compare``/``sweep --launcher slurm``) is one job
array, one array task per run, each run in its own run directory. Either way a task trains
resumably from its run directory, so the first attempt and every requeued one run the same
thing:

- **Time-out.** Slurm signals ``USR2`` ``signal_delay_s`` before the limit; every task saves
  its state at the next step (as for SIGTERM) and submitit's checkpointing hook
  (:meth:`SubmittedTraining.checkpoint`) requeues the job, at most ``max_requeues`` times.
- **Preemption, ``scontrol requeue``.** Slurm sends SIGTERM; every task saves and stops, and
  Slurm starts the job again, which resumes bitwise.

Progress comes from ``squeue`` and from the run directories, not from Slurm's accounting
(``sacct``), which many clusters keep from their users.
"""

from __future__ import annotations

import abc
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, HamixerError, Interrupted, closest
from ..train.config import TrainConfig
from .jobs import Job, finished_summary, result_line, run_progress

#: Seconds between looks at the queue and the run directories.
POLL_SECONDS = {"slurm": 5.0, "local": 1.0}
#: Seconds between the time-out signal and the time limit (submitit's ``signal_delay_s``), at
#: most; a fifth of a short limit.
SIGNAL_DELAY_S = 120
#: The time limit of a local run without --timeout (minutes).
LOCAL_TIMEOUT_MIN = 7 * 24 * 60
#: The submitit folder (job scripts, pickled tasks, logs) inside an output directory.
SUBMITIT_DIR = "slurm"
#: What a plan's submission records beside its runs (job id, runs, where their logs are).
SUBMITTED = "submitted.json"
#: squeue's states of a job that has not ended yet.
ACTIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_FED",
                 "REQUEUE_HOLD", "RESIZING", "SUSPENDED", "PREEMPTED", "SIGNALING",
                 "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"}
_MEM = re.compile(r"^\d+[KMGT]?$")


@dataclass(frozen=True)
class ClusterOptions:
    """What a job asks of the cluster; each field is one sbatch option (docs/cluster.md)."""

    partition: str | None = None  # --partition (None: the cluster's default)
    nodes: int = 1  # --nodes
    gpus_per_node: int = 0  # --gpus-per-node
    tasks_per_node: int | None = None  # --ntasks-per-node (default: one per GPU, at least 1)
    cpus_per_task: int | None = None  # --cpus-per-task
    timeout_min: int | None = None  # --time (None: 60 on Slurm, a week locally)
    account: str | None = None  # --account
    qos: str | None = None  # --qos
    constraint: str | None = None  # --constraint
    mem: str | None = None  # --mem (per node: 64G, 500M)
    array_parallelism: int | None = None  # --array=0-N%P (None: every run at once)
    max_requeues: int = 3  # requeues after a time-out (preemptions do not count)
    job_name: str = "hamixer"

    @property
    def tasks(self) -> int:
        return self.nodes * self.per_node

    @property
    def per_node(self) -> int:
        return self.tasks_per_node or max(1, self.gpus_per_node)

    def minutes(self, kind: str) -> int:
        if self.timeout_min is not None:
            return self.timeout_min
        return 60 if kind == "slurm" else LOCAL_TIMEOUT_MIN

    def signal_delay(self, kind: str) -> int:
        return int(min(SIGNAL_DELAY_S, self.minutes(kind) * 60 // 5))

    def validate(self) -> ClusterOptions:
        for value, flag, low in ((self.nodes, "--nodes", 1), (self.gpus_per_node,
                                  "--gpus-per-node", 0), (self.timeout_min, "--timeout", 1),
                                 (self.tasks_per_node, "--tasks-per-node", 1),
                                 (self.cpus_per_task, "--cpus-per-task", 1),
                                 (self.array_parallelism, "--array-parallelism", 1)):
            if value is not None and value < low:
                raise ConfigError(f"{flag} must be >= {low}, got {value}")
        if self.mem is not None and not _MEM.match(self.mem):
            raise ConfigError(f"--mem {self.mem!r}: a size per node as sbatch takes it, e.g. "
                              "64G or 500M")
        return self

    def sbatch_parameters(self, runs: int = 1) -> dict[str, Any]:
        """submitit's SlurmExecutor parameters (its names: ``time``, ``ntasks_per_node``, ...)."""
        given = {"partition": self.partition, "cpus_per_task": self.cpus_per_task,
                 "account": self.account, "qos": self.qos, "constraint": self.constraint,
                 "mem": self.mem,
                 "gpus_per_node": self.gpus_per_node or None}
        params = {k: v for k, v in given.items() if v is not None}
        params.update(job_name=self.job_name, time=self.minutes("slurm"), nodes=self.nodes,
                      ntasks_per_node=self.per_node, signal_delay_s=self.signal_delay("slurm"),
                      array_parallelism=self.array_parallelism or max(1, runs),
                      additional_parameters={"requeue": True})
        return params


# -------------------------------------------------------------------- bad input first
def check_submitit() -> None:
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise ConfigError("--launcher needs submitit: pip install 'hamixer[slurm]' (or "
                          "pip install submitit)") from None


def check_slurm(options: ClusterOptions) -> None:
    """Refuse, before anything is written or submitted, a launch that cannot work here: no
    submitit, no ``sbatch`` on PATH, a partition the cluster does not have."""
    options.validate()
    check_submitit()
    for tool in ("sbatch", "squeue", "sinfo", "srun"):
        if shutil.which(tool) is None:
            raise ConfigError(f"--launcher slurm: no {tool} on PATH (run it where Slurm's "
                              "commands are, a cluster's login node)")
    partitions = cluster_partitions()
    if options.partition is not None and options.partition not in partitions:
        raise ConfigError(f"unknown --partition {options.partition!r}"
                          f"{closest(options.partition, partitions)} (this cluster has: "
                          f"{', '.join(partitions) or 'none'})")


def cluster_partitions() -> list[str]:
    """The partitions ``sinfo`` lists (the default one marked ``*`` there, not here)."""
    res = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True,
                         timeout=60)
    if res.returncode != 0:
        line = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"--launcher slurm: sinfo fails ({line}); is the cluster reachable?")
    return list(dict.fromkeys(p.strip().rstrip("*") for p in res.stdout.split() if p.strip()))


# ----------------------------------------------------------------- what a task runs
class SubmittedTraining(abc.ABC):
    """A training as a submitit task: every attempt resumes from the run directory.

    ``USR2`` (the time-out warning) is turned into the trainer's own stop: the task saves at
    the next step, then submitit's handler calls :meth:`checkpoint` and requeues the job.
    Subclasses define :meth:`train`."""

    @abc.abstractmethod
    def train(self) -> Any:
        """Run the training (each subclass its own way: one command, one run of a plan)."""

    def __call__(self) -> Any:
        from ..train.loop import StopRequest

        _forget_previous_result()
        warning = signal.getsignal(_preemption_signal())
        asked: list[bool] = []

        def on_warning(signum: int, frame: Any) -> None:
            asked.append(True)
            stop = signal.getsignal(signal.SIGTERM)
            if isinstance(stop, StopRequest):  # training: save at the next step, then stop
                stop(signal.SIGTERM, frame)
            elif callable(warning):  # not training (yet or any more): nothing to save
                warning(signum, frame)

        signal.signal(_preemption_signal(), on_warning)
        try:
            return self.train()
        except Interrupted as err:
            if asked and callable(warning):
                print(f"time-limit warning (USR2): {err}; submitit requeues the job",
                      file=sys.stderr, flush=True)
                warning(_preemption_signal(), None)  # rank 0: checkpoint, requeue, exit
                return None  # other ranks: rank 0 requeues the job
            # SIGTERM: scancel, or a preemption or `scontrol requeue` after which Slurm
            # starts the job again; either way the state is saved
            print(f"stopped: {err}", file=sys.stderr, flush=True)
            raise SystemExit(err.exit_code) from None
        except HamixerError as err:  # the user's error: one line in the log, exit 2
            print(f"error: {err}", file=sys.stderr, flush=True)
            raise SystemExit(int(getattr(err, "exit_code", 2))) from None

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's hook on a time-out: the same task again, which resumes from the state
        the run saved."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


def _preemption_signal() -> signal.Signals:
    from submitit.core.job_environment import JobEnvironment

    return JobEnvironment._usr_sig()


def _forget_previous_result() -> None:
    """A requeued attempt removes what the interrupted one reported (its 'error' result),
    so that nothing reads the job as failed while it trains again."""
    try:
        import submitit

        submitit.JobEnvironment().paths.result_pickle.unlink(missing_ok=True)
    except (RuntimeError, KeyError, OSError):
        pass  # not inside a submitit job


@dataclass
class PlanRun(SubmittedTraining):
    """One run of a plan (an array task): ``train_run`` on its config."""

    config: dict[str, Any]
    symmetry: bool = True

    def train(self) -> dict[str, Any]:
        from .training import train_run

        cfg = TrainConfig(**self.config)
        cpus = os.environ.get("SLURM_CPUS_PER_TASK")
        if cfg.threads is None and cpus:
            cfg = replace(cfg, threads=int(cpus))
        return train_run(cfg, self.symmetry)


# ------------------------------------------------------------------------ submission
def make_executor(kind: str, folder: Path, options: ClusterOptions, runs: int = 1) -> Any:
    """submitit's executor writing its scripts and logs into ``folder``."""
    import submitit

    if kind == "local":
        executor = submitit.LocalExecutor(folder=str(folder), max_num_timeout=options.max_requeues)
        executor.update_parameters(timeout_min=options.minutes(kind), tasks_per_node=1,
                                   signal_delay_s=options.signal_delay(kind))
        return executor
    executor = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=options.max_requeues)
    executor.update_parameters(**options.sbatch_parameters(runs))
    return executor


@dataclass
class Tracked:
    """A submitted training followed to its end: where it stands, what it wrote."""

    label: str
    place: str  # "[3/8]"
    run_dir: Path
    epochs: int
    job: Any  # submitit's Job
    state: str = ""
    epoch_said: int = -1
    summary: dict[str, Any] | None = None
    failure: str | None = None
    seen: float = field(default_factory=time.monotonic)  # when it was submitted

    @property
    def job_id(self) -> str:
        return str(self.job.job_id)

    def log_path(self) -> Path:
        return Path(self.job.paths.stderr)


def submit_plan(kind: str, jobs: Sequence[Job], folder: Path, options: ClusterOptions,
                numbers: Sequence[int], plan_size: int, log: Callable[[str], None],
                wait: bool) -> list[dict[str, Any]] | None:
    """Train ``jobs`` as one job array (``kind="slurm"``) or through submitit's local
    executor, ``options.array_parallelism`` at a time; with ``wait``, follow them and return
    their summaries in order, else return None once submitted."""
    executor = make_executor(kind, folder, options, len(jobs))
    tasks = [PlanRun({**job.cfg.to_dict(), "resume": True, "quiet": True}, job.symmetry)
             for job in jobs]
    tracked = [Tracked(job.label, f"[{n}/{plan_size}]", Path(job.cfg.out or ""),
                       job.cfg.epochs, None) for job, n in zip(jobs, numbers, strict=True)]
    if kind == "slurm":
        with executor.batch():
            submitted = [executor.submit(task) for task in tasks]
        for t, job in zip(tracked, submitted, strict=True):
            t.job = job
        array = submitted[0].job_id.split("_")[0]
        _record_submission(folder.parent, array, tracked)
        log(f"submitted {len(jobs)} runs as Slurm job array {array} "
            f"({options.array_parallelism or len(jobs)} at a time, partition "
            f"{options.partition or 'default'}); logs in {folder}")
        if not wait:
            log(f"follow it with `squeue -j {array}`; the same command without --launcher "
                "(or with --wait) makes the table once the runs have finished")
            return None
        return follow(tracked, "slurm", log, cancel=lambda: scancel(array))
    # local: submitit's local executor starts each job at once, so this holds the queue
    queue = list(zip(tracked, tasks, strict=True))
    at_once = options.array_parallelism or 1
    log(f"running {len(jobs)} runs through submitit's local executor, {at_once} at a time; "
        f"logs in {folder}")

    def start_more(running: list[Tracked]) -> None:
        while queue and len(running) < at_once:
            t, task = queue.pop(0)
            t.job, t.seen = executor.submit(task), time.monotonic()
            running.append(t)

    return follow(tracked, "local", log, cancel=lambda: _stop_local(tracked),
                  start_more=start_more)


@dataclass(frozen=True)
class SubmititLauncher:
    """The :class:`~.jobs.Launcher` of ``--launcher slurm|local``: submitit's folder is
    ``OUT/slurm``; with ``wait``, it follows the runs to their end."""

    kind: str  # "slurm" or "local"
    out: Path
    options: ClusterOptions
    wait: bool = True

    def run(self, jobs: Sequence[Job], numbers: Sequence[int], plan_size: int,
            log: Callable[[str], None]) -> list[dict[str, Any]] | None:
        return submit_plan(self.kind, jobs, self.out / SUBMITIT_DIR, self.options, numbers,
                           plan_size, log, self.wait or self.kind == "local")


def _record_submission(out: Path, array: str, tracked: Sequence[Tracked]) -> None:
    from ..io import write_json

    write_json(out / SUBMITTED, {"job": array, "runs": [
        {"label": t.label, "run_dir": str(t.run_dir), "job": t.job_id, "log": str(t.log_path())}
        for t in tracked]})


def check_no_active_submission(out: Path, jobs: Sequence[Job]) -> None:
    """Refuse to train, here or in a new array, the runs of a plan still queued or running in
    the Slurm array it was submitted as (two trainings of one run directory)."""
    path = out / SUBMITTED
    if not path.is_file() or shutil.which("squeue") is None:
        return
    array = str(json.loads(path.read_text()).get("job", ""))
    if not array or not any(finished_summary(j.cfg) is None for j in jobs):
        return
    if any(state in ACTIVE_STATES for state in queue_states([array]).values()):
        raise ConfigError(f"runs of this plan are still queued or running in Slurm job "
                          f"{array} (squeue -j {array}); make the table once they have "
                          f"ended, or scancel {array} first")


# ------------------------------------------------------------------------- following
def queue_states(job_ids: Sequence[str]) -> dict[str, str]:
    """squeue's state of each job (array tasks one by one: ``123_4``), finished ones included
    while the controller remembers them; a job it does not list is missing from the dict."""
    main_ids = sorted({j.split("_")[0] for j in job_ids})
    res = subprocess.run(["squeue", "-h", "-r", "--states=all", "-o", "%i|%T",
                          "-j", ",".join(main_ids)], capture_output=True, text=True, timeout=60)
    states: dict[str, str] = {}
    for line in res.stdout.splitlines():
        job, _, state = line.strip().partition("|")
        if job:
            states[job] = state.strip()
    return states


def follow(tracked: Sequence[Tracked], kind: str, log: Callable[[str], None],
           cancel: Callable[[], None],
           start_more: Callable[[list[Tracked]], None] | None = None
           ) -> list[dict[str, Any]]:
    """One line per change of each job (queued, running epoch k, done, failed with its log)
    until every job has ended; Ctrl-C/SIGTERM cancels them (each saves its state first).
    Returns the summaries in order; raises naming the runs that failed."""
    from ..train.loop import StopRequest

    running: list[Tracked] = []
    pending = list(tracked)
    with StopRequest() as stop:
        try:
            while pending and stop.signum is None:
                if start_more is not None:
                    start_more(running)
                states = (queue_states([t.job_id for t in pending]) if kind == "slurm"
                          else {})
                for t in list(pending):
                    if t.job is None:
                        continue
                    if kind == "slurm":
                        _update(t, states.get(t.job_id), log, grace=True)
                    else:
                        _update(t, _local_state(t), log, grace=False)
                    if t.state in ("done", "failed"):
                        pending.remove(t)
                        if t in running:
                            running.remove(t)
                if pending:
                    _sleep(POLL_SECONDS[kind], stop)
        except BaseException:
            cancel()
            raise
    if stop.signum is not None:
        cancel()
        name = signal.Signals(stop.signum).name
        raise Interrupted(f"stopped by {name}; cancelled the unfinished runs, each saved its "
                          "state; the same command continues them", stop.signum)
    failed = [t for t in tracked if t.state == "failed"]
    if failed:
        raise HamixerError(f"{len(failed)} of {len(tracked)} runs failed: "
                           + "; ".join(f"{t.label} ({t.failure})" for t in failed))
    return [t.summary for t in tracked if t.summary is not None]


def _sleep(seconds: float, stop: Any) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and stop.signum is None:
        time.sleep(0.2)


def _update(t: Tracked, state: str | None, log: Callable[[str], None], grace: bool) -> None:
    """Say what changed for ``t`` given its scheduler state (None: not listed, or ended)."""
    if state is not None and state.split()[0] in ACTIVE_STATES - {"RUNNING", "COMPLETING"}:
        now = "queued" if state != "SUSPENDED" else "suspended"
        if t.state != now:
            again = " again (requeued)" if t.state == "running" else ""
            log(f"{t.place} {t.label}: {now}{again} (job {t.job_id})")
            t.state = now
        return
    if state in ("RUNNING", "COMPLETING"):
        done, acc = run_progress(t.run_dir)
        epoch = int(done)
        if t.state != "running" or epoch > t.epoch_said:
            test = f", test {acc:.2f}% after epoch {epoch}" if acc is not None and epoch else ""
            now = (f"epoch {epoch + 1}/{t.epochs}" if epoch < t.epochs
                   else f"{t.epochs}/{t.epochs} epochs trained, finishing")
            log(f"{t.place} {t.label}: running {now}{test} (job {t.job_id})")
            t.state, t.epoch_said = "running", epoch
        return
    # ended (or forgotten by the controller): the run directory says how
    summary = _finished(t)
    if summary is not None:
        t.state, t.summary = "done", summary
        log(result_line(t.place, t.label, summary))
        return
    if grace and state is None and t.state == "" and time.monotonic() - t.seen < 60:
        return  # just submitted: squeue may not list it yet
    t.state = "failed"
    ended = state or "no longer listed by squeue"
    t.failure = f"{ended}; see {t.log_path()}: {_last_line(t.log_path())}"
    log(f"{t.place} {t.label}: failed ({ended}); log {t.log_path()}")


def _finished(t: Tracked) -> dict[str, Any] | None:
    from ..runs import read_summary

    summary = read_summary(t.run_dir)
    return summary if summary is not None and summary.get("epochs") == t.epochs else None


def _local_state(t: Tracked) -> str | None:
    state = t.job.state
    return "RUNNING" if state == "RUNNING" else None


def _last_line(path: Path) -> str:
    try:
        lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()
                 and "submitit" not in x]
    except OSError:
        return "no log"
    return lines[-1][-200:] if lines else "empty log"


def scancel(job_id: str) -> None:
    subprocess.run(["scancel", job_id], capture_output=True, timeout=60)


def _stop_local(tracked: Sequence[Tracked]) -> None:
    """SIGTERM to each local job's controller, which passes it to its task (saves, stops)."""
    procs = [t.job._process for t in tracked if t.job is not None
             and getattr(t.job, "_process", None) is not None]
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()

