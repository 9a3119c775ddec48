"""``--launcher slurm|local``: the flags of ``train``, ``compare`` and ``sweep`` that run them
on a Slurm cluster through submitit (:mod:`hamixer.experiments.cluster`), and the submission
of one training."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..experiments.cluster import SubmittedTraining
from ..runs import LAST_CHECKPOINT, has_checkpoint, read_record


def add_launcher_arguments(p: argparse.ArgumentParser, plan: bool) -> None:
    group = p.add_argument_group(
        "cluster (with --launcher; each flag is the sbatch option of its name, docs/cluster.md)")
    kinds = ["slurm", "local"] if plan else ["slurm"]
    group.add_argument("--launcher", choices=kinds, default=None,
                       help="slurm: submit " + ("every run as one Slurm job array" if plan
                                                else "one Slurm job of nodes × tasks") +
                            " through submitit" + ("; local: the same plan through "
                                                   "submitit's local executor" if plan else ""))
    group.add_argument("--partition", default=None, help="Slurm partition (default: the "
                       "cluster's default)")
    group.add_argument("--nodes", type=int, default=1, help="nodes per training (default 1)")
    group.add_argument("--gpus-per-node", type=int, default=0, metavar="G",
                       help="GPUs per node, one task per GPU (default 0: CPU)")
    group.add_argument("--tasks-per-node", type=int, default=None, metavar="T",
                       help="processes per node (default: --gpus-per-node, at least 1)")
    group.add_argument("--cpus-per-task", type=int, default=None, metavar="C",
                       help="CPU cores per process (also its torch threads)")
    group.add_argument("--timeout", type=int, default=None, metavar="MIN",
                       help="time limit of a job in minutes (default 60" + (
                           "; with --launcher local, a week" if plan else "") + "); a run cut "
                       "by it is requeued and resumes")
    group.add_argument("--max-requeues", type=int, default=3, metavar="N",
                       help="requeues after a time-out before a run counts as failed "
                            "(preemptions do not count; default 3)")
    group.add_argument("--slurm-account", default=None, metavar="ACCOUNT",
                       help="Slurm account to charge (sbatch --account)")
    group.add_argument("--qos", default=None, help="Slurm quality of service")
    group.add_argument("--constraint", default=None, help="Slurm node features, e.g. a100")
    group.add_argument("--mem", default=None, help="memory per node, e.g. 64G")
    if plan:
        group.add_argument("--array-parallelism", type=int, default=None, metavar="N",
                           help="runs of the array at a time (default: all; with --launcher "
                                "local: --jobs)")
    group.add_argument("--wait", action="store_true",
                       help="follow the job" + ("s" if plan else "") + " to the end (one "
                            "line per change) and " + ("make the table" if plan else
                                                       "exit with its status") +
                            "; without it the command returns once submitted")


def cluster_options(args: argparse.Namespace, job_name: str) -> Any:
    from ..experiments.cluster import ClusterOptions

    parallel = getattr(args, "array_parallelism", None)
    if args.launcher == "local" and parallel is None:
        from .flags import check_jobs

        parallel = check_jobs(args.jobs)  # auto: submitit's local executor, one at a time
    return ClusterOptions(
        partition=args.partition, nodes=args.nodes, gpus_per_node=args.gpus_per_node,
        tasks_per_node=args.tasks_per_node, cpus_per_task=args.cpus_per_task,
        timeout_min=args.timeout, account=args.slurm_account, qos=args.qos,
        constraint=args.constraint, mem=args.mem, array_parallelism=parallel,
        max_requeues=args.max_requeues, job_name=job_name).validate()


def plan_launcher(args: argparse.Namespace, out: Path, name: str) -> Any:
    """The launcher of ``compare``/``sweep``'s plan, checked (None without ``--launcher``)."""
    from ..errors import ConfigError
    from ..experiments.cluster import SubmititLauncher, check_slurm, check_submitit

    if args.launcher is None:
        return None
    options = cluster_options(args, f"hamixer-{name}")
    if args.launcher == "slurm":
        check_slurm(options)
    else:
        check_submitit()
        if options.nodes != 1:
            raise ConfigError("--launcher local runs on this machine: --nodes 1 only")
    if options.tasks != 1:
        raise ConfigError(f"a run of a plan is one process ({options.tasks} tasks asked for: "
                          "use hamixer train --launcher slurm for a run on several)")
    return SubmititLauncher(args.launcher, out, options, wait=args.wait)


def submit_training(args: argparse.Namespace, cfg: Any) -> int:
    """``train --launcher slurm``: check, submit one job whose tasks train ``cfg`` together,
    and (with ``--wait``) follow it to its end."""
    import json
    import shlex

    from ..errors import ConfigError, HamixerError
    from ..experiments.cluster import (
        SUBMITIT_DIR,
        Tracked,
        check_slurm,
        follow,
        make_executor,
        scancel,
    )
    from ..models.registry import model_args
    from ..provenance import command_line
    from ..train.run import check_same_config

    options = cluster_options(args, f"hamixer-{cfg.model}")
    check_slurm(options)
    if cfg.batch_size % options.tasks:
        raise ConfigError(f"batch_size {cfg.batch_size} (the global batch) must be a "
                          f"multiple of the {options.tasks} tasks")
    model_args(cfg.model, **cfg.model_kwargs)  # a bad name or argument fails here, not there
    out = Path(cfg.out)
    if has_checkpoint(out, LAST_CHECKPOINT):
        if not cfg.resume:
            raise HamixerError(f"{out} already holds a run; pass --resume to continue it or "
                               "choose another --out")
        check_same_config(read_record(out / LAST_CHECKPOINT).get("config", {}), cfg, out)
    given = {k: v for k, v in vars(args).items() if k not in ("func", "command_parser")}
    if not isinstance(given.get("resume"), str):
        given["resume"] = True  # every attempt, the first and each requeued one, resumes
    command = command_line()
    task = TrainCommand(given, shlex.split(command)[1:] if command else [])
    job = make_executor("slurm", out / SUBMITIT_DIR, options).submit(task)
    gpus = f", {options.gpus_per_node} GPUs per node" if options.gpus_per_node else ""
    print(f"submitted Slurm job {job.job_id}: {_count(options.tasks, 'task')} "
          f"({_count(options.nodes, 'node')} × {options.per_node}){gpus}, partition "
          f"{options.partition or 'default'}, {options.minutes('slurm')} min -> {out}; log "
          f"{job.paths.stderr}")
    if not args.wait:
        print(f"follow it with `squeue -j {job.job_id}` and {out}/metrics.jsonl")
        return 0
    tracked = Tracked(cfg.model, "[1/1]", out, cfg.epochs, job)
    (summary,) = follow([tracked], "slurm", print, cancel=lambda: scancel(str(job.job_id)))
    keys = ("model", "dataset", "epochs", "best_test_acc", "final_test_acc",
            "train_images_per_s", "total_seconds", "processes")
    print(json.dumps({k: summary.get(k) for k in keys}))
    return 0


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'s' if n != 1 else ''}"


class TrainCommand(SubmittedTraining):
    """``hamixer train`` with the submitted flags, in every task of the job (the launcher's
    flags off, ``--resume`` on)."""

    def __init__(self, args: dict[str, Any], argv: list[str]) -> None:
        self.args, self.argv = args, argv

    def train(self) -> int:
        from ..provenance import set_command_line
        from . import train as command

        set_command_line(self.argv)  # command.txt: what the user typed
        args = {**self.args, "launcher": None}
        if args.get("resume") is True:  # the first attempt starts, every later one resumes
            out = args.get("out")
            args["resume"] = bool(out) and has_checkpoint(out, LAST_CHECKPOINT)
        return command.run(argparse.Namespace(**args))
