"""A training run: :func:`run_training` turns a :class:`TrainConfig` into a trained model,
per-epoch metrics, checkpoints and a summary in ``cfg.out``.

This module prepares the run (its processes, its output folder and the lock on it, its
parts) and hands it to a :class:`~hamixer.train.trainer.Trainer`, which trains it and
resumes it bitwise. Under ``torchrun`` every rank computes the same thing and only rank 0
writes. Per-epoch measures come from hooks (:data:`EpochHook`); the trainer itself knows
nothing of what they measure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..device import usable_cores
from ..errors import ConfigError, HamixerError
from ..runs import INIT_METRICS
from .config import TrainConfig
from .distributed import DistContext, init_distributed, shutdown_distributed
from .setup import build_parts
from .trainer import (
    RESUMABLE_CHANGES,
    EpochHook,
    EpochSink,
    Trainer,
    check_same_config,
)

# what other modules take from here: the entry point and what a run folder's resume checks
__all__ = ["INIT_METRICS", "RESUMABLE_CHANGES", "EpochHook", "EpochSink", "check_out_dir",
           "check_same_config", "run_training"]


def run_training(cfg: TrainConfig, hooks: Sequence[EpochHook] = (),
                 log: Callable[[str], None] | None = None,
                 on_epoch: EpochSink | None = None) -> dict[str, Any]:
    """Train ``cfg.model`` on ``cfg.dataset``, evaluating every epoch; return the summary.

    Writes into ``cfg.out``: ``config.yaml``, ``metrics.jsonl`` (one row per epoch),
    ``last.*`` and ``best.*`` checkpoints and ``summary.json``. Under ``torchrun`` (several
    processes) it trains data-parallel; only rank 0 writes and logs. ``cfg.threads`` holds
    for the run only: the process's thread count is restored at the end; by default torch's,
    but never more than the cores this process may use (:func:`hamixer.device.usable_cores`).
    ``on_epoch`` gets each epoch's row once it is saved.
    """
    cfg.validate()
    if not cfg.out:
        raise ConfigError("an output directory is required (--out DIR)")
    threads = torch.get_num_threads()
    ctx, rank_device = init_distributed(cfg.device)
    try:
        if ctx.enabled and cfg.batch_size % ctx.world:
            raise ConfigError(f"batch_size {cfg.batch_size} (the global batch) must be a "
                              f"multiple of the {ctx.world} processes")
        if log is None:
            log = (lambda s: None) if (cfg.quiet or not ctx.is_main) else print
        elif not ctx.is_main:
            log = lambda s: None  # noqa: E731
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        elif threads > usable_cores():  # torch counts the machine's cores, not this share
            torch.set_num_threads(usable_cores())
        return _run(cfg, hooks, log, ctx, rank_device, on_epoch)
    finally:
        torch.set_num_threads(threads)
        shutdown_distributed(ctx)


def _run(cfg: TrainConfig, hooks: Sequence[EpochHook], log: Callable[[str], None],
         ctx: DistContext, rank_device: torch.device | None,
         on_epoch: EpochSink | None = None) -> dict[str, Any]:
    out = Path(cfg.out or "")
    check_out_dir(out, cfg.resume)
    parts = build_parts(cfg, ctx, rank_device)
    # inputs are valid: the lock is the first thing written (rank 0 only)
    created = not out.exists()
    lock = _lock_out_dir(out) if ctx.is_main else None
    finished = False
    try:
        run = Trainer(cfg, out, parts, ctx, hooks, log, on_epoch)
        if cfg.resume:
            run.resume()
        run.measure_start()
        run.fit()
        summary = run.write_summary()
        finished = True
        return summary
    finally:
        if lock is not None:
            lock.close()
            (out / ".lock").unlink(missing_ok=True)
            if created and not finished and not any(out.iterdir()):
                out.rmdir()  # a run that failed before its first save leaves no folder


def check_out_dir(out: Path, resume: bool) -> None:
    """Refuse an output folder whose run would be overwritten: another command's run, a
    training run unless resuming it, or one without the checkpoint a resume continues from
    (``last.json``); a new or empty folder starts a run."""
    from ..runs import LAST_CHECKPOINT, refuse_existing_run, run_records

    found = run_records(out)
    training = found.pop("training run", [])
    if found:
        refuse_existing_run(out)
    if training and LAST_CHECKPOINT not in training:
        raise HamixerError(f"{out} already holds a run ({', '.join(training)}) without the "
                           f"checkpoint where its training stopped ({LAST_CHECKPOINT}), so it "
                           "cannot be resumed; choose another --out")
    if training and not resume:
        raise HamixerError(f"{out} already holds a run ({', '.join(training)}); pass --resume "
                           "to continue it or choose another --out")


def _lock_out_dir(out: Path):
    """Create ``out`` and hold an exclusive lock on ``out/.lock`` for the run (POSIX only)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK):
            raise PermissionError(13, "Permission denied")
        handle = open(out / ".lock", "a+")  # noqa: SIM115 - held until the run ends
    except OSError as err:
        raise HamixerError(f"cannot write to output directory {out}: "
                           f"{err.strerror or err}") from None
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise HamixerError(f"{out} is in use by another run (locked: {out / '.lock'})") \
            from None
    for stale in out.glob(".*.tmp"):  # left by a run killed during a save; we hold the lock
        stale.unlink(missing_ok=True)
    return handle
