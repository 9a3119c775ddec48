"""The training loop: :func:`run_training` turns a :class:`TrainConfig` into a trained model,
per-epoch metrics, checkpoints and a summary. ``train``, ``compare`` (and later sweeps)
all call it.

Reproducibility: every RNG (python, numpy, torch) is re-seeded at the start of each epoch from
``(seed, epoch)``, so data order, augmentation, dropout and drop-path of epoch *e* do not
depend on how the run got there; a resumed run repeats exactly what an uninterrupted run does.
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import dataset_info, load_split
from ..data.pipeline import AugmentSpec, ImageBatches
from ..errors import ConfigError, HamixerError, Interrupted
from ..io import write_json, write_text
from ..provenance import versions
from .checkpoint import (
    load_checkpoint,
    load_weights,
    restore_training_state,
    save_checkpoint,
    split_ema_weights,
)
from .config import TrainConfig, save_config
from .distributed import DistContext, init_distributed, shutdown_distributed

#: A per-epoch hook: called with the model and the finished epoch (1-based) after
#: evaluation; the dict it returns is merged into that epoch's ``metrics.jsonl`` row. A fresh
#: run also calls it once with epoch 0 before training (written to ``init_metrics.json``).
EpochHook = Callable[[nn.Module, int], "dict[str, Any] | None"]
#: What the hooks return for the untrained model (epoch 0), kept out of metrics.jsonl whose
#: rows are all trained epochs.
INIT_METRICS = "init_metrics.json"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` (0-based) of a run seeded ``seed``."""
    return (seed * 1_000_003 + epoch * 7919 + 17) % 2**63


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    return torch.device(name)


def amp_settings(cfg: TrainConfig, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether a GradScaler is needed)."""
    if not cfg.amp:
        return None, False
    if cfg.amp_dtype == "auto":
        dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    else:
        dtype = getattr(torch, cfg.amp_dtype)
    if device.type == "cpu" and dtype == torch.float16:
        raise ConfigError("float16 autocast needs CUDA; use amp_dtype bfloat16 on CPU")
    return dtype, dtype == torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated (CUDA), else the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB else


# ----------------------------------------------------------------------------- building
def model_kwargs_for(cfg: TrainConfig, num_classes: int, in_chans: int,
                     img_size: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(num_classes=num_classes, in_chans=in_chans, img_size=img_size)
    if cfg.drop_path:
        kwargs["drop_path_rate"] = cfg.drop_path
    kwargs.update(cfg.model_kwargs)
    return kwargs


def model_img_size(cfg: TrainConfig) -> int:
    from ..models.registry import model_args

    if cfg.img_size:
        return int(cfg.img_size)
    return int(cfg.model_kwargs.get("img_size") or model_args(cfg.model)["img_size"])


def load_data(cfg: TrainConfig, img_size: int):
    info = dataset_info(cfg.dataset)
    in_chans = cfg.model_kwargs.get("in_chans")
    train = load_split(cfg.dataset, True, cfg.data_dir, cfg.download, img_size, in_chans)
    test = load_split(cfg.dataset, False, cfg.data_dir, False, img_size, in_chans)
    return info, train, test


def make_criterion(cfg: TrainConfig) -> nn.Module:
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if (cfg.mixup > 0 or cfg.cutmix > 0) and cfg.mixup_prob > 0:
        return SoftTargetCrossEntropy()  # mixup already smooths the soft targets
    if cfg.label_smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=cfg.label_smoothing)
    return nn.CrossEntropyLoss()


def augment_spec(cfg: TrainConfig) -> AugmentSpec:
    return AugmentSpec(crop_padding=cfg.crop_padding, hflip=cfg.hflip,
                       randaugment_n=cfg.randaugment_n, randaugment_m=cfg.randaugment_m,
                       randaugment_mstd=cfg.randaugment_mstd, reprob=cfg.reprob,
                       mixup=cfg.mixup, cutmix=cfg.cutmix, mixup_prob=cfg.mixup_prob,
                       mixup_switch_prob=cfg.mixup_switch_prob,
                       label_smoothing=cfg.label_smoothing)


def norm_gain_names(model: nn.Module) -> set[str]:
    """Names of the multiplicative parameters (gains) of every normalisation layer."""
    from torch.nn.modules.batchnorm import _NormBase

    from ..models.norm import JointLayerNorm

    kinds = (JointLayerNorm, nn.LayerNorm, nn.GroupNorm, _NormBase)  # TokenLayerNorm: LayerNorm
    return {f"{name}.weight" for name, mod in model.named_modules()
            if isinstance(mod, kinds) and isinstance(getattr(mod, "weight", None), nn.Parameter)}


def matrix_param_names(model: nn.Module) -> set[str]:
    """Names of the weight matrices of the network body: the 2-D parameters of every mixing
    MLP (tied ``weight`` and ``breaking`` included) and of every ``nn.Linear`` except the
    classifier head. Norm gains and shifts of a joint norm are 2-D ([S, C]) but not matrices."""
    from ..models.mlp import MixingMLP

    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    names: set[str] = set()
    for mod_name, mod in model.named_modules():
        if mod is head or not isinstance(mod, (MixingMLP, nn.Linear)):
            continue
        prefix = f"{mod_name}." if mod_name else ""
        names |= {prefix + n for n, p in mod.named_parameters(recurse=False) if p.ndim == 2}
    return names


def is_hybrid_optimizer(opt: str) -> bool:
    """Whether timm's ``opt`` is Muon-like: orthogonalised updates for matrices, AdamW for the
    rest (parameter groups marked ``use_fallback``)."""
    from timm.optim import Muon, get_optimizer_class

    try:
        cls = get_optimizer_class(opt, bind_defaults=False)
    except (ValueError, AssertionError, KeyError):
        return False  # unknown names are reported by create_optimizer_v2
    return isinstance(cls, type) and issubclass(cls, Muon)


def make_optimizer_and_scheduler(cfg: TrainConfig, model: nn.Module, updates_per_epoch: int):
    from timm.optim import create_optimizer_v2, param_groups_weight_decay
    from timm.scheduler import create_scheduler_v2

    params: nn.Module | list[dict[str, Any]] = model
    skip = set(getattr(model, "no_weight_decay", set)())
    if not cfg.norm_weight_decay:
        skip |= norm_gain_names(model)
    hybrid = is_hybrid_optimizer(cfg.opt)
    if hybrid:
        # timm's Muon treats every parameter of 2+ dims as a matrix; the stem, the head and
        # the joint norms' [S, C] gains and shifts go to its AdamW fallback instead.
        fallback = {n for n, _ in model.named_parameters()} - matrix_param_names(model)
        params = param_groups_weight_decay(model, cfg.weight_decay, no_weight_decay_list=skip,
                                           fallback_list=fallback)
    elif not cfg.norm_weight_decay and cfg.weight_decay:
        params = param_groups_weight_decay(model, cfg.weight_decay, no_weight_decay_list=skip)
    try:
        optimizer = create_optimizer_v2(params, opt=cfg.opt, lr=cfg.resolved_lr,
                                        weight_decay=cfg.weight_decay, eps=cfg.opt_eps)
    except (ValueError, AssertionError, TypeError) as err:
        raise ConfigError(f"optimizer {cfg.opt!r}: {err}") from None
    if hybrid and next(model.parameters()).device.type == "cpu":
        from .muon import newton_schulz_in_float32

        newton_schulz_in_float32(optimizer)
    if cfg.sched == "none":
        return optimizer, None
    scheduler, _ = create_scheduler_v2(
        optimizer, sched=cfg.sched, num_epochs=cfg.epochs, min_lr=cfg.min_lr,
        warmup_lr=cfg.warmup_lr, warmup_epochs=cfg.warmup_epochs, step_on_epochs=False,
        updates_per_epoch=updates_per_epoch)
    return optimizer, scheduler


def make_ema(cfg: TrainConfig, model: nn.Module) -> Any:
    """timm's ModelEmaV3 of ``model`` when ``cfg.model_ema``, else None."""
    if not cfg.model_ema:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=cfg.model_ema_decay, use_warmup=cfg.model_ema_warmup)


# ------------------------------------------------------------------------------- loops
@torch.no_grad()
def evaluate(model: nn.Module, batches: ImageBatches, device: torch.device,
             amp_dtype: torch.dtype | None = None) -> dict[str, float]:
    """Mean cross-entropy and top-1/top-5 accuracy (percent) over ``batches``."""
    model.eval()
    loss_sum, top1, top5, n = 0.0, 0, 0, 0
    for x, y, _ in batches.batches():
        with autocast(device, amp_dtype):
            logits = model(x)
        logits = logits.float()
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        k = min(5, logits.shape[1])
        topk = logits.topk(k, dim=1).indices
        top1 += (topk[:, 0] == y).sum().item()
        top5 += (topk == y[:, None]).any(dim=1).sum().item()
        n += len(y)
    return {"loss": loss_sum / n, "top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n, "n": n}


def _progress(total: int, initial: int, disable: bool, desc: str):
    from tqdm.auto import tqdm

    tty = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, disable=disable, desc=desc, unit="batch",
                dynamic_ncols=True, leave=False, mininterval=0.2 if tty else 30.0,
                file=sys.stderr)


class Diverged(HamixerError):
    """The training loss became NaN or infinite; nothing of that step was applied."""

    def __init__(self, value: float, epoch: int, step: int, global_step: int) -> None:
        super().__init__(f"loss became {value} at epoch {epoch + 1} step {step + 1} "
                         f"(global step {global_step + 1})")
        self.value, self.epoch, self.step, self.global_step = value, epoch, step, global_step


#: Called after every optimiser step with (steps done this epoch, running sums); may save a
#: mid-epoch checkpoint or stop the run.
StepHook = Callable[[int, "dict[str, float]"], None]


def train_one_epoch(model: nn.Module, batches: ImageBatches, criterion: nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
                    cfg: TrainConfig, device: torch.device, amp_dtype: torch.dtype | None,
                    epoch: int, bar: Any, start_step: int = 0,
                    partial: dict[str, float] | None = None,
                    after_step: StepHook | None = None,
                    ctx: DistContext | None = None, ema: Any = None) -> dict[str, float]:
    """One epoch of training from batch ``start_step`` on, continuing the sums in ``partial``.

    ``ema`` (a timm ModelEmaV3) is updated after every optimiser step.

    The loss is checked before the update: a non-finite loss raises :class:`Diverged` with
    the weights and optimiser still as they were after the last good step.
    """
    ctx = ctx or DistContext()
    core = getattr(model, "_orig_mod", model)  # the module inside torch.compile's wrapper
    core = getattr(core, "module", core)  # the model inside DistributedDataParallel
    model.train()
    steps = len(batches)
    updates = epoch * steps + start_step
    partial = partial or {}
    loss_sum, correct, n = (float(partial.get("loss_sum", 0.0)), int(partial.get("correct", 0)),
                            int(partial.get("n", 0)))
    done_seconds = float(partial.get("seconds", 0.0))
    start = time.perf_counter()
    for step, (x, y, target) in enumerate(
            batches.batches(epoch_seed(cfg.seed, epoch), start=start_step), start=start_step):
        with autocast(device, amp_dtype):
            logits = model(x)
            loss = criterion(logits.float(), target) + core.aux_loss()
        if ctx.any(not bool(torch.isfinite(loss)), device):  # every rank stops together
            raise Diverged(loss.item(), epoch, step, updates)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if cfg.clip_grad:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if cfg.clip_grad:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            optimizer.step()
        updates += 1
        if ema is not None:
            ema.update(core, step=updates)
        if scheduler is not None:
            scheduler.step_update(num_updates=updates)
        b = len(y)
        loss_sum += loss.item() * b
        correct += int((logits.argmax(dim=1) == y).sum().item())
        n += b
        elapsed = done_seconds + time.perf_counter() - start
        bar.set_postfix(epoch=f"{epoch + 1}/{cfg.epochs}", loss=f"{loss_sum / n:.3f}",
                        acc=f"{100.0 * correct / n:.1f}", ips=f"{n / elapsed:.0f}",
                        refresh=False)
        bar.update(1)
        if after_step is not None:
            after_step(step + 1, {"loss_sum": loss_sum, "correct": correct, "n": n,
                                  "seconds": elapsed})
    seconds = done_seconds + time.perf_counter() - start
    if ctx.enabled:
        loss_sum, correct, n = ctx.sum([loss_sum, correct, n], device)
        correct, n = int(correct), int(n)
    if n == 0:
        raise HamixerError(f"epoch {epoch + 1}: no training batches")
    return {"loss": loss_sum / n, "acc": 100.0 * correct / n, "seconds": seconds,
            "images_per_s": n / seconds, "n": n}


class _StopRequest:
    """SIGINT/SIGTERM handler: the first signal asks the loop to stop after the current step
    (and a checkpoint); a second one stops at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


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


# ---------------------------------------------------------------------------- the run
def _read_metrics(path: Path, upto_epoch: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["epoch"] <= upto_epoch]


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


#: Settings a resumed run may change (they do not change what is computed).
RESUMABLE_CHANGES = frozenset({"out", "resume", "quiet", "threads", "device", "data_dir",
                               "download", "checkpoint_every_steps",
                               "checkpoint_every_seconds", "compile"})


def _check_same_config(saved: dict[str, Any], cfg: TrainConfig, out: Path) -> None:
    for key, value in cfg.to_dict().items():
        if key not in RESUMABLE_CHANGES and key in saved and saved[key] != value:
            raise HamixerError(f"{out} was trained with {key}={saved[key]!r}, not {value!r}; "
                               "resume with the same settings or choose another --out")


def _fmt_row(row: dict[str, Any], epochs: int, best: float) -> str:
    raw = f" raw {row['raw_test_acc']:5.2f}" if "raw_test_acc" in row else ""
    return (f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:5.2f}  test loss {row['test_loss']:.4f} "
            f"acc {row['test_acc']:5.2f}{raw} (best {best:5.2f})  lr {row['lr']:.2e}  "
            f"{row['seconds']:.1f}s  {row['images_per_s']:.0f} img/s")


def _train_epochs(cfg: TrainConfig, out: Path, model: nn.Module, kwargs: dict[str, Any],
                  dataset_meta: dict[str, Any], train_batches: ImageBatches,
                  test_batches: ImageBatches, criterion: nn.Module,
                  optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
                  device: torch.device, amp_dtype: torch.dtype | None,
                  hooks: Sequence[EpochHook], log: Callable[[str], None], n_params: int,
                  img_size: int, ctx: DistContext, ema: Any = None
                  ) -> tuple[list[dict[str, Any]], float, int]:
    """Resume if asked, then train the remaining epochs; returns (rows, best acc, best epoch).

    Under torchrun every rank computes the same thing; only rank 0 writes. With ``ema`` the
    test accuracy (and the choice of ``best``) is the EMA's; the raw model's is logged too.
    """
    if (out / "last.json").is_file() and not cfg.resume:
        raise HamixerError(f"{out} already holds a run; pass --resume to continue it or "
                           "choose another --out")
    start_epoch, start_step, partial = 0, 0, None
    finished = False  # only a resumed run can have nothing left (compare re-tabulating)
    best_acc, best_epoch = -1.0, 0
    metrics_path = out / "metrics.jsonl"
    rows: list[dict[str, Any]] = []
    steps = len(train_batches)
    if cfg.resume and (out / "last.json").is_file():
        weights, state, meta = load_checkpoint(out, prefer="last")
        if meta["model"] != cfg.model or meta["dataset"]["name"] != cfg.dataset:
            raise HamixerError(f"{out}: holds {meta['model']} on {meta['dataset']['name']}, "
                               f"not {cfg.model} on {cfg.dataset}")
        _check_same_config(meta.get("config", {}), cfg, out)
        weights, ema_weights = split_ema_weights(weights, state, meta)
        if (ema is None) != (ema_weights is None):
            raise HamixerError(f"{out} was trained {'with' if ema is None else 'without'} a "
                               "weight EMA; resume with the same --model-ema setting")
        load_weights(model, weights, meta)
        if ema is not None:
            load_weights(ema.module, ema_weights, meta)
        restore_training_state(meta, state, optimizer, scheduler, scaler)
        start_epoch, best_acc = int(meta["epoch"]), float(meta["best_acc"])
        best_epoch = int(meta.get("best_epoch", 0))
        start_step, partial = int(meta.get("step", 0)), meta.get("partial")
        if not ctx.is_main:
            partial = None  # rank 0 carries the (already summed over ranks) running sums
        if not 0 <= start_step <= steps:
            raise HamixerError(f"{out}: checkpoint step {start_step} does not fit an epoch of "
                               f"{steps} steps")
        rows = _read_metrics(metrics_path, start_epoch)
        where = f" step {start_step}/{steps} of epoch {start_epoch + 1}" if start_step else ""
        finished = start_epoch >= cfg.epochs
        log(f"{out} has finished all {cfg.epochs} epochs; nothing left to train"
            if finished else f"resuming {out} after epoch {start_epoch}{where}")
    if ctx.is_main:
        save_config(cfg, out / "config.yaml")
        if start_epoch == 0 and start_step == 0 and hooks:
            # per-epoch hooks (e.g. the symmetry measures) also see the initial state, "epoch 0"
            init_row: dict[str, Any] = {"epoch": 0}
            for hook in hooks:
                init_row.update(hook(model, 0) or {})
            write_json(out / INIT_METRICS, init_row)
    ctx.barrier()  # every rank has read what it needs before rank 0 writes checkpoints
    train_model: nn.Module = model
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:  # only the training step; `model` stays plain for checkpoints and hooks
        train_model = torch.compile(train_model)
    log(f"{cfg.model} ({n_params / 1e6:.3f} M params) on {cfg.dataset}: "
        f"{train_batches.num_images} train / {test_batches.num_images} test images, "
        f"{img_size}px, {cfg.epochs} epochs, batch {cfg.batch_size}, lr {cfg.resolved_lr:.2e}, "
        f"device {device}{', amp ' + str(amp_dtype).replace('torch.', '') if amp_dtype else ''}"
        f"{f', {ctx.world} processes' if ctx.enabled else ''}"
        f"{', compiled' if cfg.compile else ''}"
        f"{f', weight EMA {cfg.model_ema_decay}' if ema is not None else ''}")

    def checkpoint_meta(epoch_done: int, step: int, row: dict[str, Any] | None,
                        sums: dict[str, float] | None) -> dict[str, Any]:
        meta = {"model": cfg.model, "model_kwargs": kwargs, "dataset": dataset_meta,
                "epoch": epoch_done, "best_acc": best_acc, "best_epoch": best_epoch,
                "metrics": row, "config": cfg.to_dict()}
        if step:
            meta.update(step=step, steps_per_epoch=steps, partial=sums)
        return meta

    last_saved: dict[str, Any] = {"where": None, "time": time.monotonic(),
                                  "row": rows[-1] if rows else None}
    if (out / "last.json").is_file():
        last_saved["where"] = f"epoch {start_epoch} step {start_step}" if start_step \
            else f"epoch {start_epoch}"

    def stopped(signum: int) -> Interrupted:
        name = signal.Signals(signum).name
        return Interrupted(f"stopped by {name}; state saved in {out / 'last.json'} "
                           f"({last_saved['where']}); continue with --resume", signum)

    ema_module = ema.module if ema is not None else None
    evaluated = model if ema_module is None else ema_module
    # no bar for a finished run: a full bar would read as training
    bar = _progress(cfg.epochs * steps, start_epoch * steps + start_step,
                    cfg.quiet or not ctx.is_main or finished, cfg.model)
    with _StopRequest() as stop:
        try:
            for epoch in range(start_epoch, cfg.epochs):
                first_step = start_step if epoch == start_epoch else 0
                if first_step == 0:  # other ranks draw other augmentations/drop-path masks
                    seed_everything(epoch_seed(cfg.seed, epoch) + ctx.rank)
                # else: the RNG state saved after step `first_step` was restored on load

                def after_step(step: int, sums: dict[str, float], epoch: int = epoch) -> None:
                    due = step < steps and bool(
                        (cfg.checkpoint_every_steps and step % cfg.checkpoint_every_steps == 0)
                        or (cfg.checkpoint_every_seconds and time.monotonic()
                            - last_saved["time"] >= cfg.checkpoint_every_seconds))
                    stopping = ctx.any(stop.signum is not None, device)
                    if ctx.any(due, device) or stopping:
                        if ctx.enabled:
                            keys = ("loss_sum", "correct", "n")
                            sums = {**sums, **dict(zip(keys, ctx.sum(
                                [sums[k] for k in keys], device), strict=True))}
                        if ctx.is_main:
                            save_checkpoint(out, "last", model, checkpoint_meta(
                                epoch, step, last_saved["row"], sums), optimizer, scheduler,
                                scaler, ema=ema_module)
                        last_saved.update(where=f"epoch {epoch} step {step}",
                                          time=time.monotonic())
                    if stopping:
                        raise stopped(stop.signum or signal.SIGTERM)

                t0 = time.perf_counter()
                try:
                    tr = train_one_epoch(train_model, train_batches, criterion, optimizer,
                                         scheduler, scaler, cfg, device, amp_dtype, epoch, bar,
                                         start_step=first_step,
                                         partial=partial if first_step else None,
                                         after_step=after_step, ctx=ctx, ema=ema)
                except Diverged as err:
                    good = (f"{out / 'last.json'} ({last_saved['where']})"
                            if last_saved["where"] else "none was written")
                    raise HamixerError(f"{err}; last good checkpoint: {good}; lower the "
                                       "learning rate or turn off --amp") from None
                if scheduler is not None:
                    scheduler.step(epoch + 1)
                te = evaluate(evaluated, test_batches, device, amp_dtype)
                seconds = time.perf_counter() - t0 + (partial or {}).get("seconds", 0.0) \
                    * bool(first_step)
                row = {"epoch": epoch + 1, "train_loss": tr["loss"], "train_acc": tr["acc"],
                       "test_loss": te["loss"], "test_acc": te["top1"],
                       "test_top5": te["top5"], "lr": optimizer.param_groups[0]["lr"],
                       "seconds": seconds, "train_seconds": tr["seconds"],
                       "images_per_s": tr["images_per_s"]}
                if ema is not None:
                    raw = evaluate(model, test_batches, device, amp_dtype)
                    row.update(raw_test_loss=raw["loss"], raw_test_acc=raw["top1"],
                               raw_test_top5=raw["top5"])
                for hook in hooks:
                    row.update(hook(model, epoch + 1) or {})
                rows.append(row)
                last_saved["row"] = row
                improved = te["top1"] > best_acc
                if improved:
                    best_acc, best_epoch = te["top1"], epoch + 1
                meta = checkpoint_meta(epoch + 1, 0, row, None)
                if ctx.is_main:
                    save_checkpoint(out, "last", model, meta, optimizer, scheduler, scaler,
                                    ema=ema_module)
                    if improved and cfg.save_best:
                        save_checkpoint(out, "best", model, meta, optimizer, scheduler, scaler,
                                        ema=ema_module)
                    _write_metrics(metrics_path, rows)
                last_saved.update(where=f"epoch {epoch + 1}", time=time.monotonic())
                bar.clear()
                log(_fmt_row(row, cfg.epochs, best_acc))
                bar.refresh()
                if ctx.any(stop.signum is not None, device) and epoch + 1 < cfg.epochs:
                    raise stopped(stop.signum or signal.SIGTERM)
        finally:
            bar.close()
    return rows, best_acc, best_epoch


def run_training(cfg: TrainConfig, hooks: Sequence[EpochHook] = (),
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train ``cfg.model`` on ``cfg.dataset``, evaluating every epoch; return the summary.

    Writes into ``cfg.out``: ``config.yaml``, ``metrics.jsonl`` (one row per epoch),
    ``last.*`` and ``best.*`` checkpoints and ``summary.json``. Under ``torchrun`` (several
    processes) it trains data-parallel; only rank 0 writes and logs.
    """
    cfg.validate()
    if not cfg.out:
        raise ConfigError("an output directory is required (--out DIR)")
    ctx, rank_device = init_distributed(cfg.device)
    try:
        if ctx.enabled and cfg.batch_size % ctx.world:
            raise ConfigError(f"batch_size {cfg.batch_size} (the global batch) must be a "
                              f"multiple of the {ctx.world} processes")
        if log is None:
            log = (lambda s: None) if (cfg.quiet or not ctx.is_main) else print
        elif not ctx.is_main:
            log = lambda s: None  # noqa: E731
        return _run(cfg, hooks, log, ctx, rank_device)
    finally:
        shutdown_distributed(ctx)


def _run(cfg: TrainConfig, hooks: Sequence[EpochHook], log: Callable[[str], None],
         ctx: DistContext, rank_device: torch.device | None) -> dict[str, Any]:
    from ..models import create_model

    out = Path(cfg.out or "")
    if (out / "last.json").is_file() and not cfg.resume:
        raise HamixerError(f"{out} already holds a run; pass --resume to continue it or "
                           "choose another --out")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = rank_device or select_device(cfg.device)
    amp_dtype, needs_scaler = amp_settings(cfg, device)
    seed_everything(cfg.seed)

    img_size = model_img_size(cfg)
    info, train_split, test_split = load_data(cfg, img_size)
    num_classes = len(train_split.classes)
    in_chans = int(train_split.images.shape[-1])
    kwargs = model_kwargs_for(cfg, num_classes, in_chans, img_size)
    model = create_model(cfg.model, **kwargs).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    mean, std = model.pretrained_cfg["mean"], model.pretrained_cfg["std"]

    train_batches = ImageBatches(train_split, cfg.batch_size, img_size, mean, std, num_classes,
                                 train=True, augment=augment_spec(cfg), device=device,
                                 limit=cfg.limit_train, shard=(ctx.rank, ctx.world))
    test_batches = ImageBatches(test_split, max(cfg.batch_size, 256), img_size, mean, std,
                                num_classes, train=False, device=device, limit=cfg.limit_test)
    criterion = make_criterion(cfg)
    optimizer, scheduler = make_optimizer_and_scheduler(cfg, model, len(train_batches))
    scaler = torch.amp.GradScaler(device.type) if needs_scaler else None
    ema = make_ema(cfg, model)

    dataset_meta = {"name": cfg.dataset, "classes": train_split.classes,
                    "num_classes": num_classes, "in_chans": in_chans, "img_size": img_size,
                    "mean": list(mean), "std": list(std),
                    "train_images": train_batches.num_images,
                    "test_images": test_batches.num_images}
    # inputs are valid: the lock is the first thing written (rank 0 only)
    lock = _lock_out_dir(out) if ctx.is_main else None
    try:
        rows, best_acc, best_epoch = _train_epochs(
            cfg, out, model, kwargs, dataset_meta, train_batches, test_batches, criterion,
            optimizer, scheduler, scaler, device, amp_dtype, hooks, log, n_params, img_size,
            ctx, ema)
        return _write_summary(cfg, out, rows, best_acc, best_epoch, kwargs, n_params,
                              train_batches, test_batches, device, amp_dtype, ctx)
    finally:
        if lock is not None:
            lock.close()


def _write_summary(cfg: TrainConfig, out: Path, rows: list[dict[str, Any]], best_acc: float,
                   best_epoch: int, kwargs: dict[str, Any], n_params: int,
                   train_batches: ImageBatches, test_batches: ImageBatches,
                   device: torch.device, amp_dtype: torch.dtype | None,
                   ctx: DistContext) -> dict[str, Any]:
    if not rows:
        raise HamixerError(f"{out}: no epochs recorded")
    train_images = sum(r["images_per_s"] * r["train_seconds"] for r in rows)
    train_seconds = sum(r["train_seconds"] for r in rows)
    summary = {
        "model": cfg.model, "model_kwargs": kwargs, "params": n_params,
        "dataset": cfg.dataset, "train_images": train_batches.num_images,
        "test_images": test_batches.num_images, "epochs": len(rows),
        "best_test_acc": best_acc, "best_epoch": best_epoch,
        "final_test_acc": rows[-1]["test_acc"], "final_test_top5": rows[-1]["test_top5"],
        "final_train_acc": rows[-1]["train_acc"],
        "model_ema": cfg.model_ema_decay if cfg.model_ema else None,
        "total_seconds": sum(r["seconds"] for r in rows),
        "train_images_per_s": train_images / train_seconds if train_seconds else math.nan,
        "peak_memory_mb": peak_memory_mb(device),
        "peak_memory_kind": "cuda_max_allocated" if device.type == "cuda" else "process_max_rss",
        "device": str(device), "threads": torch.get_num_threads(), "processes": ctx.world,
        "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else None,
        "seed": cfg.seed, "lr": cfg.resolved_lr, "out": str(out), "versions": versions(),
    }
    if "raw_test_acc" in rows[-1]:
        summary.update(final_raw_test_acc=rows[-1]["raw_test_acc"],
                       best_raw_test_acc=max(r["raw_test_acc"] for r in rows))
    if ctx.is_main:
        write_json(out / "summary.json", summary)
    return summary
