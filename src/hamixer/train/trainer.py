"""The training of one run: a :class:`Trainer` holds what the run trains with (its parts),
where it stands (:class:`RunState`), where it writes and which process it is; the epoch
loop, the step loop, resuming and the summary are its methods, and its
:class:`Checkpointer` decides when ``last`` and ``best`` are saved.

Reproducibility: every RNG is re-seeded at the start of epoch *e* from :func:`epoch_seed`
``(seed, e)`` (the batches are drawn from it too) and a mid-epoch checkpoint carries the RNG
state, so an epoch does not depend on how the run got there and a resumed run repeats
exactly what an uninterrupted run does.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ..device import autocast
from ..errors import HamixerError, Interrupted
from ..io import as_read_back, write_json
from ..provenance import versions
from ..runs import CONFIG, INIT_METRICS, LAST_CHECKPOINT, SUMMARY, read_metrics, write_metrics
from .checkpoint import (
    load_checkpoint,
    load_weights,
    restore_training_state,
    save_checkpoint,
    split_ema_weights,
)
from .config import TrainConfig, save_config
from .distributed import DistContext
from .loop import Diverged, StopRequest, backward_and_step, evaluate, memory_format, progress_bar
from .setup import TrainingParts, epoch_seed, peak_memory_mb, seed_everything, tf32_mode

#: A per-epoch hook: called with the model and the finished epoch (1-based) after
#: evaluation; the dict it returns is merged into that epoch's ``metrics.jsonl`` row. A fresh
#: run also calls it once with epoch 0 before training (written to ``init_metrics.json``).
EpochHook = Callable[[nn.Module, int], "dict[str, Any] | None"]
#: Receives every finished epoch's ``metrics.jsonl`` row on rank 0 (an experiment tracker).
EpochSink = Callable[["dict[str, Any]"], None]
#: Settings a resumed run may change: they change where and how fast the same function is
#: computed, not which (a device, TF32 or compiled kernels round differently, as a device does).
RESUMABLE_CHANGES = frozenset({"out", "resume", "quiet", "threads", "device", "data_dir",
                               "download", "checkpoint_every_steps",
                               "checkpoint_every_seconds", "compile", "compile_mode", "tf32",
                               "channels_last"})


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


@dataclass
class Trainer:
    """One run of ``cfg`` into ``out``: :meth:`resume` (if asked), :meth:`measure_start`,
    :meth:`fit`, :meth:`write_summary`. Under ``torchrun`` every rank holds one and computes
    the same thing; only rank 0 writes."""

    cfg: TrainConfig
    out: Path
    parts: TrainingParts
    ctx: DistContext
    hooks: Sequence[EpochHook] = ()
    log: Callable[[str], None] = print
    on_epoch: EpochSink | None = None
    state: RunState = field(default_factory=RunState)
    # while :meth:`fit` runs: the module the steps call (the model, or its data-parallel or
    # compiled wrapper), the checkpointer, the progress bar and the stop request
    step_model: nn.Module = field(init=False, repr=False)
    checkpointer: Checkpointer = field(init=False, repr=False)
    bar: Any = field(init=False, repr=False)
    stop: StopRequest = field(init=False, repr=False)

    # ------------------------------------------------------------------ before training
    def resume(self) -> None:
        """Load ``out``'s last checkpoint into the parts, if there is one, and continue from
        where it was."""
        cfg, out, parts, ctx = self.cfg, self.out, self.parts, self.ctx
        if not (out / LAST_CHECKPOINT).is_file():
            return
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
        if parts.ema is not None and ema_weights is not None:  # both or neither, checked above
            load_weights(parts.ema.module, ema_weights, meta)
        restore_training_state(meta, saved, parts.optimizer, parts.scheduler, parts.scaler)
        steps = len(parts.train_batches)
        state = RunState(start_epoch=int(meta["epoch"]), start_step=int(meta.get("step", 0)),
                         best_acc=float(meta["best_acc"]),
                         best_epoch=int(meta.get("best_epoch", 0)),
                         # rank 0 carries the (already summed over ranks) running sums
                         partial=meta.get("partial") if ctx.is_main else None)
        if not 0 <= state.start_step <= steps:
            raise HamixerError(f"{out}: checkpoint step {state.start_step} does not fit an "
                               f"epoch of {steps} steps")
        state.rows = read_metrics(out, upto_epoch=state.start_epoch)
        if [r["epoch"] for r in state.rows] != list(range(1, state.start_epoch + 1)):
            raise HamixerError(f"{out}: the checkpoint is after epoch {state.start_epoch} but "
                               f"metrics.jsonl holds {len(state.rows)} of those epochs; "
                               "continuing would lose their history: restore metrics.jsonl "
                               "or choose another --out")
        state.finished = state.start_epoch >= cfg.epochs
        where = (f" step {state.start_step}/{steps} of epoch {state.start_epoch + 1}"
                 if state.start_step else "")
        self.log(f"{out} has finished all {cfg.epochs} epochs; nothing left to train"
                 if state.finished else f"resuming {out} after epoch {state.start_epoch}{where}")
        self.state = state

    def measure_start(self) -> None:
        """Measure a fresh run's untrained model with the hooks; keep what writes
        ``config.yaml`` and those measures (rank 0) for the first checkpoint."""
        state, ctx = self.state, self.ctx
        init_row: dict[str, Any] | None = None
        if ctx.is_main and state.start_epoch == 0 and state.start_step == 0 and self.hooks:
            init_row = {"epoch": 0}
            for hook in self.hooks:
                init_row.update(hook(self.parts.model, 0) or {})
        ctx.barrier()  # every rank has read what it needs before rank 0 writes checkpoints
        if not ctx.is_main:
            state.start_files = None
            return

        def write() -> None:
            save_config(self.cfg, self.out / CONFIG)
            if init_row is not None:
                write_json(self.out / INIT_METRICS, init_row)

        state.start_files = write

    # ---------------------------------------------------------------------- training
    def fit(self) -> None:
        """Train the epochs that are left, logging one line per epoch.

        With a weight EMA the test accuracy (and the choice of ``best``) is the EMA's; the
        raw model's is logged beside it.
        """
        cfg, parts, ctx, state = self.cfg, self.parts, self.ctx, self.state
        self.step_model = parts.model
        if ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel

            device = parts.device
            self.step_model = DistributedDataParallel(
                parts.model, device_ids=[device.index] if device.type == "cuda" else None)
        if cfg.compile:  # the training step only: evaluation, hooks and checkpoints use the model
            # compiling a Module gives a Module (an OptimizedModule): the step calls .train()
            self.step_model = cast(nn.Module, torch.compile(self.step_model, mode=cfg.compile_mode))
        self.log(_describe(cfg, parts, ctx))
        self.checkpointer = Checkpointer(self)
        steps = len(parts.train_batches)
        # no bar for a finished run: a full bar would read as training
        self.bar = progress_bar(cfg.epochs * steps, state.start_epoch * steps + state.start_step,
                                cfg.quiet or not ctx.is_main or state.finished, cfg.model)
        with tf32_mode(cfg.tf32, parts.device), StopRequest() as self.stop:
            try:
                for epoch in range(state.start_epoch, cfg.epochs):
                    row = self.train_epoch(epoch)
                    self.bar.clear()
                    self.log(_fmt_row(row, cfg.epochs, state.best_acc))
                    if self.on_epoch is not None and ctx.is_main:
                        self.on_epoch(row)
                    self.bar.refresh()
                    if (ctx.any(self.stop.signum is not None, parts.device)
                            and epoch + 1 < cfg.epochs):
                        raise self.checkpointer.stopped(self.stop.signum or signal.SIGTERM)
            finally:
                self.bar.close()

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """Train epoch ``epoch`` (0-based) from where the run stands, evaluate, measure, save;
        return its ``metrics.jsonl`` row."""
        cfg, p, state = self.cfg, self.parts, self.state
        first_step = state.start_step if epoch == state.start_epoch else 0
        partial = state.partial if first_step else None
        if first_step == 0:  # other ranks draw other augmentations/drop-path masks
            seed_everything(epoch_seed(cfg.seed, epoch) + self.ctx.rank)
        # else: the RNG state saved after step `first_step` was restored on load
        t0 = time.perf_counter()
        try:
            tr = self.train_steps(epoch, first_step, partial)
        except Diverged as err:
            raise self.checkpointer.diverged(err) from None
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
        for hook in self.hooks:
            row.update(hook(p.model, epoch + 1) or {})
        state.rows.append(row)
        improved = te["top1"] > state.best_acc
        if improved:
            state.best_acc, state.best_epoch = te["top1"], epoch + 1
        self.checkpointer.after_epoch(epoch + 1, row, improved)
        return row

    def train_steps(self, epoch: int, start_step: int,
                    partial: dict[str, float] | None) -> dict[str, float]:
        """The steps of epoch ``epoch`` from batch ``start_step`` on, continuing the running
        sums in ``partial``; return the epoch's training loss, accuracy and speed.

        The EMA is updated after every optimiser step and follows the plain model (as does
        its auxiliary loss) when the steps call a wrapper of it. The loss is checked before
        the update: a non-finite loss raises :class:`Diverged` with the weights and optimiser
        still as they were after the last good step.
        """
        cfg, p, ctx, device = self.cfg, self.parts, self.ctx, self.parts.device
        model, core = self.step_model, p.model
        model.train()
        updates = epoch * len(p.train_batches) + start_step
        partial = partial or {}
        loss_sum, correct, n = (float(partial.get("loss_sum", 0.0)),
                                int(partial.get("correct", 0)), int(partial.get("n", 0)))
        done_seconds = float(partial.get("seconds", 0.0))
        start = time.perf_counter()
        # a model's own penalty (AsymMixer's λ‖W̃‖²); models without one (timm's) add nothing
        aux_loss = getattr(core, "aux_loss", None)
        for step, (x, y, target) in enumerate(
                p.train_batches.batches(epoch_seed(cfg.seed, epoch), start=start_step),
                start=start_step):
            x = memory_format(x, cfg.channels_last)
            with autocast(device, p.amp_dtype):
                logits = model(x)
                loss = p.criterion(logits.float(), target)
                if aux_loss is not None:
                    loss = loss + aux_loss()
            if ctx.any(not bool(torch.isfinite(loss)), device):  # every rank stops together
                raise Diverged(loss.item(), epoch, step, updates)
            backward_and_step(model, loss, p.optimizer, p.scaler, cfg.clip_grad)
            updates += 1
            if p.ema is not None:
                p.ema.update(core, step=updates)
            if p.scheduler is not None:
                p.scheduler.step_update(num_updates=updates)
            b = len(y)
            loss_sum += loss.item() * b
            correct += int((logits.argmax(dim=1) == y).sum().item())
            n += b
            elapsed = done_seconds + time.perf_counter() - start
            self.bar.set_postfix(epoch=f"{epoch + 1}/{cfg.epochs}", loss=f"{loss_sum / n:.3f}",
                                 acc=f"{100.0 * correct / n:.1f}", ips=f"{n / elapsed:.0f}",
                                 refresh=False)
            self.bar.update(1)
            self.checkpointer.after_step(epoch, step + 1, {
                "loss_sum": loss_sum, "correct": correct, "n": n, "seconds": elapsed})
        seconds = done_seconds + time.perf_counter() - start
        if ctx.enabled:
            loss_sum, total_correct, total_n = ctx.sum([loss_sum, correct, n], device)
            correct, n = int(total_correct), int(total_n)
        if n == 0:
            raise HamixerError(f"epoch {epoch + 1}: no training batches")
        return {"loss": loss_sum / n, "acc": 100.0 * correct / n, "seconds": seconds,
                "images_per_s": n / seconds, "n": n}

    # ----------------------------------------------------------------------- the end
    def write_summary(self) -> dict[str, Any]:
        """The run's ``summary.json`` (written by rank 0), returned on every rank."""
        cfg, out, p, ctx, rows = self.cfg, self.out, self.parts, self.ctx, self.state.rows
        if not rows:
            raise HamixerError(f"{out}: no epochs recorded")
        train_images = sum(r["images_per_s"] * r["train_seconds"] for r in rows)
        train_seconds = sum(r["train_seconds"] for r in rows)
        summary = {
            "model": cfg.model, "model_source": p.model_source, "model_kwargs": p.model_kwargs,
            "params": p.n_params,
            "dataset": cfg.dataset, "train_images": p.train_batches.num_images,
            "test_images": p.test_batches.num_images, "epochs": len(rows),
            "best_test_acc": self.state.best_acc, "best_epoch": self.state.best_epoch,
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
            write_json(out / SUMMARY, summary)
        return summary


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


# ---------------------------------------------------------------------- checkpoints
class Checkpointer:
    """Saves ``last`` after every epoch and within one when due (every N steps or seconds)
    or when the run is asked to stop, ``best`` when the test accuracy improves; remembers
    where the last save was, which an interruption or a divergence reports."""

    def __init__(self, run: Trainer) -> None:
        self.run = run
        self.steps = len(run.parts.train_batches)
        self.time = time.monotonic()
        state = run.state
        self.row = state.rows[-1] if state.rows else None  # the last finished epoch's row
        self.where: str | None = None
        if (run.out / LAST_CHECKPOINT).is_file():
            # epochs counted from 1 in every message: "after epoch 3", "step 40 of epoch 4"
            self.where = (f"step {state.start_step} of epoch {state.start_epoch + 1}"
                          if state.start_step else f"after epoch {state.start_epoch}")

    def meta(self, epoch_done: int, step: int, sums: dict[str, float] | None) -> dict[str, Any]:
        run = self.run
        meta = {"model": run.cfg.model, "model_source": run.parts.model_source,
                "model_kwargs": run.parts.model_kwargs, "dataset": run.parts.dataset_meta,
                "epoch": epoch_done,
                "best_acc": run.state.best_acc, "best_epoch": run.state.best_epoch,
                "metrics": self.row, "config": run.cfg.to_dict()}
        if step:
            meta.update(step=step, steps_per_epoch=self.steps, partial=sums)
        return meta

    def _save(self, name: str, meta: dict[str, Any]) -> None:
        state, p = self.run.state, self.run.parts
        if state.start_files is not None:
            state.start_files()
            state.start_files = None
        save_checkpoint(self.run.out, name, p.model, meta, p.optimizer, p.scheduler, p.scaler,
                        ema=p.ema.module if p.ema is not None else None)

    def after_step(self, epoch: int, step: int, sums: dict[str, float]) -> None:
        """Within an epoch, after ``step`` steps: save ``last`` when due or stopping; then
        stop if asked to."""
        cfg, ctx, device, stop = self.run.cfg, self.run.ctx, self.run.parts.device, self.run.stop
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
        if self.run.ctx.is_main:
            self._save("last", meta)
            if improved and self.run.cfg.save_best:
                self._save("best", meta)
            write_metrics(self.run.out, self.run.state.rows)
        self.where, self.time = f"after epoch {epoch_done}", time.monotonic()

    def stopped(self, signum: int) -> Interrupted:
        name = signal.Signals(signum).name
        return Interrupted(f"stopped by {name}; state saved in {self.run.out / LAST_CHECKPOINT} "
                           f"({self.where}); continue with --resume", signum)

    def diverged(self, err: Diverged) -> HamixerError:
        good = (f"{self.run.out / LAST_CHECKPOINT} ({self.where})" if self.where
                else "none was written")
        return HamixerError(f"{err}; last good checkpoint: {good}; lower the learning rate "
                            "or turn off --amp")


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
