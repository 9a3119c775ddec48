"""A training run: :func:`run_training` turns a :class:`TrainConfig` into a trained model,
per-epoch metrics, checkpoints and a summary in ``cfg.out``.

A run resumes bitwise: every RNG is re-seeded at the start of each epoch from
``(seed, epoch)`` and a mid-epoch checkpoint carries the RNG state, so a resumed run repeats
exactly what an uninterrupted run does. Under ``torchrun`` every rank computes the same
thing and only rank 0 writes. Per-epoch measures come from hooks (:data:`EpochHook`); the
trainer itself knows nothing of what they measure.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..device import usable_cores
from ..errors import ConfigError, HamixerError, Interrupted
from ..io import as_read_back, write_json
from ..provenance import versions
from ..runs import read_metrics, write_metrics
from .checkpoint import (
    load_checkpoint,
    load_weights,
    restore_training_state,
    save_checkpoint,
    split_ema_weights,
)
from .config import TrainConfig, save_config
from .distributed import DistContext, init_distributed, shutdown_distributed
from .loop import Diverged, StopRequest, evaluate, progress_bar, train_one_epoch
from .setup import (
    TrainingParts,
    build_parts,
    epoch_seed,
    peak_memory_mb,
    seed_everything,
    tf32_mode,
)

#: A per-epoch hook: called with the model and the finished epoch (1-based) after
#: evaluation; the dict it returns is merged into that epoch's ``metrics.jsonl`` row. A fresh
#: run also calls it once with epoch 0 before training (written to ``init_metrics.json``).
EpochHook = Callable[[nn.Module, int], "dict[str, Any] | None"]
#: What the hooks return for the untrained model (epoch 0), kept out of metrics.jsonl whose
#: rows are all trained epochs.
INIT_METRICS = "init_metrics.json"
#: Settings a resumed run may change: they change where and how fast the same function is
#: computed, not which (a device, TF32 or compiled kernels round differently, as a device does).
RESUMABLE_CHANGES = frozenset({"out", "resume", "quiet", "threads", "device", "data_dir",
                               "download", "checkpoint_every_steps",
                               "checkpoint_every_seconds", "compile", "compile_mode", "tf32",
                               "channels_last"})


#: Receives every finished epoch's ``metrics.jsonl`` row on rank 0 (an experiment tracker).
EpochSink = Callable[["dict[str, Any]"], None]


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
        state = _resume(cfg, out, parts, ctx, log) if cfg.resume else RunState()
        state.start_files = _start(cfg, out, parts, state, hooks, ctx)
        _train_epochs(cfg, out, parts, state, hooks, log, ctx, on_epoch)
        summary = _write_summary(cfg, out, parts, state, ctx)
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
    from ..runs import refuse_existing_run, run_records

    found = run_records(out)
    training = found.pop("training run", [])
    if found:
        refuse_existing_run(out)
    if training and "last.json" not in training:
        raise HamixerError(f"{out} already holds a run ({', '.join(training)}) without the "
                           "checkpoint where its training stopped (last.json), so it cannot "
                           "be resumed; choose another --out")
    if training and not resume:
        raise HamixerError(f"{out} already holds a run ({', '.join(training)}); pass --resume "
                           "to continue it or choose another --out")


# ------------------------------------------------------------------------ run state
@dataclass
class RunState:
    """Where a run stands: the epochs done, the best so far, a mid-epoch resume point."""

    start_epoch: int = 0
    start_step: int = 0
    partial: dict[str, float] | None = None  # running sums of the interrupted epoch
    rows: list[dict[str, Any]] = field(default_factory=list)
    best_acc: float = -1.0
    best_epoch: int = 0
    finished: bool = False  # a resumed run with no epochs left (a table re-made)
    # writes config.yaml and the epoch-0 measures: with the first checkpoint, so that a run
    # failing before it leaves no files (None once written)
    start_files: Callable[[], None] | None = None


def _resume(cfg: TrainConfig, out: Path, parts: TrainingParts, ctx: DistContext,
            log: Callable[[str], None]) -> RunState:
    """Load ``out``'s last checkpoint into ``parts``, if there is one; return where it was."""
    if not (out / "last.json").is_file():
        return RunState()
    weights, saved, meta = load_checkpoint(out, prefer="last")
    if meta["model"] != cfg.model or meta["dataset"]["name"] != cfg.dataset:
        raise HamixerError(f"{out}: holds {meta['model']} on {meta['dataset']['name']}, "
                           f"not {cfg.model} on {cfg.dataset}")
    check_same_config(meta.get("config", {}), cfg, out)
    weights, ema_weights = split_ema_weights(weights, saved, meta)
    if (parts.ema is None) != (ema_weights is None):
        raise HamixerError(f"{out} was trained {'with' if parts.ema is None else 'without'} "
                           "a weight EMA; resume with the same --model-ema setting")
    load_weights(parts.model, weights, meta)
    if parts.ema is not None:
        load_weights(parts.ema.module, ema_weights, meta)
    restore_training_state(meta, saved, parts.optimizer, parts.scheduler, parts.scaler)
    steps = len(parts.train_batches)
    state = RunState(start_epoch=int(meta["epoch"]), start_step=int(meta.get("step", 0)),
                     best_acc=float(meta["best_acc"]), best_epoch=int(meta.get("best_epoch", 0)),
                     # rank 0 carries the (already summed over ranks) running sums
                     partial=meta.get("partial") if ctx.is_main else None)
    if not 0 <= state.start_step <= steps:
        raise HamixerError(f"{out}: checkpoint step {state.start_step} does not fit an epoch "
                           f"of {steps} steps")
    state.rows = read_metrics(out, upto_epoch=state.start_epoch)
    if [r["epoch"] for r in state.rows] != list(range(1, state.start_epoch + 1)):
        raise HamixerError(f"{out}: the checkpoint is after epoch {state.start_epoch} but "
                           f"metrics.jsonl holds {len(state.rows)} of those epochs; continuing "
                           "would lose their history: restore metrics.jsonl or choose another "
                           "--out")
    state.finished = state.start_epoch >= cfg.epochs
    where = (f" step {state.start_step}/{steps} of epoch {state.start_epoch + 1}"
             if state.start_step else "")
    log(f"{out} has finished all {cfg.epochs} epochs; nothing left to train" if state.finished
        else f"resuming {out} after epoch {state.start_epoch}{where}")
    return state


def check_same_config(saved: dict[str, Any], cfg: TrainConfig, out: str | os.PathLike) -> None:
    """Refuse to continue (or re-use) the run in ``out``, trained with the settings ``saved``,
    under ``cfg`` when a setting that changes what is computed differs (lists and tuples
    alike: YAML and JSON give lists back)."""
    for key, value in cfg.to_dict().items():
        if key in RESUMABLE_CHANGES or key not in saved:
            continue
        if as_read_back(saved[key]) == as_read_back(value):
            continue
        if key == "model_kwargs" and _same_model(cfg.model, saved[key], value):
            continue  # arguments spelled out at their defaults build the same model
        # trainer settings are spelled KEY=VALUE (a YAML key, `--set KEY=VALUE`); the flag of
        # each is its name with dashes, which the command line knows, not the trainer
        same = f"set {key}={saved[key]!r} again"
        if saved[key] is None:
            same = f"leave {key} unset"
            if key == "lr" and all(k in saved for k in ("base_lr", "batch_size", "lr_base_size")):
                lr = saved["base_lr"] * saved["batch_size"] / saved["lr_base_size"]
                same += (f" (the run's lr, {lr:.3g}, is base_lr {saved['base_lr']:g} × batch "
                         f"{saved['batch_size']} / {saved['lr_base_size']})")
        raise HamixerError(f"{out} was trained with {key}={saved[key]!r}, not {value!r}; "
                           f"{same} or choose another --out")


def _same_model(name: str, saved: Any, kwargs: dict[str, Any]) -> bool:
    from ..models.registry import builds_same_model

    return isinstance(saved, dict) and builds_same_model(name, saved, kwargs)


def _start(cfg: TrainConfig, out: Path, parts: TrainingParts, state: RunState,
           hooks: Sequence[EpochHook], ctx: DistContext) -> Callable[[], None] | None:
    """Measure a fresh run's untrained model with the hooks; return what writes
    ``config.yaml`` and those measures (rank 0; called with the first checkpoint)."""
    init_row: dict[str, Any] | None = None
    if ctx.is_main and state.start_epoch == 0 and state.start_step == 0 and hooks:
        init_row = {"epoch": 0}
        for hook in hooks:
            init_row.update(hook(parts.model, 0) or {})
    ctx.barrier()  # every rank has read what it needs before rank 0 writes checkpoints
    if not ctx.is_main:
        return None

    def write() -> None:
        save_config(cfg, out / "config.yaml")
        if init_row is not None:
            write_json(out / INIT_METRICS, init_row)

    return write


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


# ---------------------------------------------------------------------- checkpoints
class Checkpointer:
    """Saves ``last`` after every epoch and within one when due (every N steps or seconds)
    or when the run is asked to stop, ``best`` when the test accuracy improves; remembers
    where the last save was, which an interruption or a divergence reports."""

    def __init__(self, cfg: TrainConfig, out: Path, parts: TrainingParts, state: RunState,
                 ctx: DistContext) -> None:
        self.cfg, self.out, self.parts, self.state, self.ctx = cfg, out, parts, state, ctx
        self.steps = len(parts.train_batches)
        self.time = time.monotonic()
        self.row = state.rows[-1] if state.rows else None  # the last finished epoch's row
        self.where: str | None = None
        if (out / "last.json").is_file():
            # epochs counted from 1 in every message: "after epoch 3", "step 40 of epoch 4"
            self.where = (f"step {state.start_step} of epoch {state.start_epoch + 1}"
                          if state.start_step else f"after epoch {state.start_epoch}")

    def meta(self, epoch_done: int, step: int, sums: dict[str, float] | None) -> dict[str, Any]:
        meta = {"model": self.cfg.model, "model_source": self.parts.model_source,
                "model_kwargs": self.parts.model_kwargs, "dataset": self.parts.dataset_meta,
                "epoch": epoch_done,
                "best_acc": self.state.best_acc, "best_epoch": self.state.best_epoch,
                "metrics": self.row, "config": self.cfg.to_dict()}
        if step:
            meta.update(step=step, steps_per_epoch=self.steps, partial=sums)
        return meta

    def _save(self, name: str, meta: dict[str, Any]) -> None:
        if self.state.start_files is not None:
            self.state.start_files()
            self.state.start_files = None
        p = self.parts
        save_checkpoint(self.out, name, p.model, meta, p.optimizer, p.scheduler, p.scaler,
                        ema=p.ema.module if p.ema is not None else None)

    def after_step(self, epoch: int, step: int, sums: dict[str, float], stop: StopRequest
                   ) -> None:
        """Within an epoch: save ``last`` when due or stopping; then stop if asked to."""
        cfg, ctx, device = self.cfg, self.ctx, self.parts.device
        due = step < self.steps and bool(
            (cfg.checkpoint_every_steps and step % cfg.checkpoint_every_steps == 0)
            or (cfg.checkpoint_every_seconds
                and time.monotonic() - self.time >= cfg.checkpoint_every_seconds))
        stopping = ctx.any(stop.signum is not None, device)
        if ctx.any(due, device) or stopping:
            if ctx.enabled:
                keys = ("loss_sum", "correct", "n")
                summed = ctx.sum([sums[k] for k in keys], device)
                sums = {**sums, **dict(zip(keys, summed, strict=True))}
            if ctx.is_main:
                self._save("last", self.meta(epoch, step, sums))
            self.where, self.time = f"step {step} of epoch {epoch + 1}", time.monotonic()
        if stopping:
            raise self.stopped(stop.signum or signal.SIGTERM)

    def after_epoch(self, epoch_done: int, row: dict[str, Any], improved: bool) -> None:
        self.row = row
        meta = self.meta(epoch_done, 0, None)
        if self.ctx.is_main:
            self._save("last", meta)
            if improved and self.cfg.save_best:
                self._save("best", meta)
            write_metrics(self.out, self.state.rows)
        self.where, self.time = f"after epoch {epoch_done}", time.monotonic()

    def stopped(self, signum: int) -> Interrupted:
        name = signal.Signals(signum).name
        return Interrupted(f"stopped by {name}; state saved in {self.out / 'last.json'} "
                           f"({self.where}); continue with --resume", signum)

    def diverged(self, err: Diverged) -> HamixerError:
        good = f"{self.out / 'last.json'} ({self.where})" if self.where else "none was written"
        return HamixerError(f"{err}; last good checkpoint: {good}; lower the learning rate "
                            "or turn off --amp")


# ---------------------------------------------------------------------------- epochs
def _train_epochs(cfg: TrainConfig, out: Path, parts: TrainingParts, state: RunState,
                  hooks: Sequence[EpochHook], log: Callable[[str], None],
                  ctx: DistContext, on_epoch: EpochSink | None = None) -> None:
    """Train the epochs that are left, logging one line per epoch.

    With a weight EMA the test accuracy (and the choice of ``best``) is the EMA's; the raw
    model's is logged beside it.
    """
    train_model = parts.model
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        device = parts.device
        train_model = DistributedDataParallel(
            parts.model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:  # the training step only: evaluation, hooks and checkpoints use the model
        train_model = torch.compile(train_model, mode=cfg.compile_mode)
    log(_describe(cfg, parts, ctx))
    ckpt = Checkpointer(cfg, out, parts, state, ctx)
    steps = len(parts.train_batches)
    # no bar for a finished run: a full bar would read as training
    bar = progress_bar(cfg.epochs * steps, state.start_epoch * steps + state.start_step,
                       cfg.quiet or not ctx.is_main or state.finished, cfg.model)
    with tf32_mode(cfg.tf32, parts.device), StopRequest() as stop:
        try:
            for epoch in range(state.start_epoch, cfg.epochs):
                row = _train_epoch(cfg, parts, state, ckpt, train_model, epoch, bar, stop,
                                   hooks, ctx)
                bar.clear()
                log(_fmt_row(row, cfg.epochs, state.best_acc))
                if on_epoch is not None and ctx.is_main:
                    on_epoch(row)
                bar.refresh()
                if ctx.any(stop.signum is not None, parts.device) and epoch + 1 < cfg.epochs:
                    raise ckpt.stopped(stop.signum or signal.SIGTERM)
        finally:
            bar.close()


def _train_epoch(cfg: TrainConfig, parts: TrainingParts, state: RunState, ckpt: Checkpointer,
                 train_model: nn.Module, epoch: int, bar: Any, stop: StopRequest,
                 hooks: Sequence[EpochHook], ctx: DistContext) -> dict[str, Any]:
    """Train epoch ``epoch`` (0-based) from where the run stands, evaluate, measure, save."""
    first_step = state.start_step if epoch == state.start_epoch else 0
    partial = state.partial if first_step else None
    if first_step == 0:  # other ranks draw other augmentations/drop-path masks
        seed_everything(epoch_seed(cfg.seed, epoch) + ctx.rank)
    # else: the RNG state saved after step `first_step` was restored on load
    p = parts
    t0 = time.perf_counter()
    try:
        tr = train_one_epoch(
            train_model, p.train_batches, p.criterion, p.optimizer, p.scheduler, p.scaler,
            cfg, p.device, p.amp_dtype, epoch, bar, start_step=first_step, partial=partial,
            after_step=lambda step, sums: ckpt.after_step(epoch, step, sums, stop),
            ctx=ctx, ema=p.ema, core=p.model)
    except Diverged as err:
        raise ckpt.diverged(err) from None
    if p.scheduler is not None:
        p.scheduler.step(epoch + 1)
    evaluated = p.model if p.ema is None else p.ema.module
    te = evaluate(evaluated, p.test_batches, p.device, p.amp_dtype, cfg.channels_last)
    seconds = time.perf_counter() - t0 + (partial or {}).get("seconds", 0.0)
    row = {"epoch": epoch + 1, "train_loss": tr["loss"], "train_acc": tr["acc"],
           "test_loss": te["loss"], "test_acc": te["top1"], "test_top5": te["top5"],
           "lr": p.optimizer.param_groups[0]["lr"], "seconds": seconds,
           "train_seconds": tr["seconds"], "images_per_s": tr["images_per_s"]}
    if p.ema is not None:
        raw = evaluate(p.model, p.test_batches, p.device, p.amp_dtype, cfg.channels_last)
        row.update(raw_test_loss=raw["loss"], raw_test_acc=raw["top1"],
                   raw_test_top5=raw["top5"])
    for hook in hooks:
        row.update(hook(p.model, epoch + 1) or {})
    state.rows.append(row)
    improved = te["top1"] > state.best_acc
    if improved:
        state.best_acc, state.best_epoch = te["top1"], epoch + 1
    ckpt.after_epoch(epoch + 1, row, improved)
    return row


def _describe(cfg: TrainConfig, parts: TrainingParts, ctx: DistContext) -> str:
    p = parts
    amp = f", amp {str(p.amp_dtype).replace('torch.', '')}" if p.amp_dtype else ""
    return (f"{cfg.model} ({p.n_params / 1e6:.3f} M params) on {cfg.dataset}: "
            f"{p.train_batches.num_images} train / {p.test_batches.num_images} test images, "
            f"{p.img_size}px, {cfg.epochs} epochs, batch {cfg.batch_size}, "
            f"lr {cfg.resolved_lr:.2e}, device {p.device}{amp}"
            f"{f', {ctx.world} processes' if ctx.enabled else ''}"
            f"{', compiled' if cfg.compile else ''}"
            f"{f' ({cfg.compile_mode})' if cfg.compile and cfg.compile_mode else ''}"
            f"{', TF32' if cfg.tf32 and p.device.type == 'cuda' else ''}"
            f"{', channels-last' if cfg.channels_last else ''}"
            f"{f', weight EMA {cfg.model_ema_decay}' if p.ema is not None else ''}")


def _fmt_row(row: dict[str, Any], epochs: int, best: float) -> str:
    raw = f" raw {row['raw_test_acc']:5.2f}" if "raw_test_acc" in row else ""
    return (f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:5.2f}  test loss {row['test_loss']:.4f} "
            f"acc {row['test_acc']:5.2f}{raw} (best {best:5.2f})  lr {row['lr']:.2e}  "
            f"{row['seconds']:.1f}s  {row['images_per_s']:.0f} img/s")


def _write_summary(cfg: TrainConfig, out: Path, parts: TrainingParts, state: RunState,
                   ctx: DistContext) -> dict[str, Any]:
    rows, p = state.rows, parts
    if not rows:
        raise HamixerError(f"{out}: no epochs recorded")
    train_images = sum(r["images_per_s"] * r["train_seconds"] for r in rows)
    train_seconds = sum(r["train_seconds"] for r in rows)
    summary = {
        "model": cfg.model, "model_source": p.model_source, "model_kwargs": p.model_kwargs,
        "params": p.n_params,
        "dataset": cfg.dataset, "train_images": p.train_batches.num_images,
        "test_images": p.test_batches.num_images, "epochs": len(rows),
        "best_test_acc": state.best_acc, "best_epoch": state.best_epoch,
        "final_test_acc": rows[-1]["test_acc"], "final_test_top5": rows[-1]["test_top5"],
        "final_train_acc": rows[-1]["train_acc"],
        "model_ema": cfg.model_ema_decay if cfg.model_ema else None,
        "total_seconds": sum(r["seconds"] for r in rows),
        "train_images_per_s": train_images / train_seconds if train_seconds else math.nan,
        "peak_memory_mb": peak_memory_mb(p.device),
        "peak_memory_kind": ("cuda_max_allocated" if p.device.type == "cuda"
                             else "process_max_rss"),
        "device": str(p.device), "threads": torch.get_num_threads(), "processes": ctx.world,
        "amp": str(p.amp_dtype).replace("torch.", "") if p.amp_dtype else None,
        "seed": cfg.seed, "lr": cfg.resolved_lr, "out": str(out), "versions": versions(),
    }
    if "raw_test_acc" in rows[-1]:
        summary.update(final_raw_test_acc=rows[-1]["raw_test_acc"],
                       best_raw_test_acc=max(r["raw_test_acc"] for r in rows))
    if ctx.is_main:
        write_json(out / "summary.json", summary)
    return summary
