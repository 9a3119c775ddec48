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
import platform
import random
import resource
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..data import dataset_info, load_split
from ..data.pipeline import AugmentSpec, ImageBatches
from ..errors import ConfigError, HamixerError
from ..io import write_json, write_text
from .checkpoint import load_checkpoint, restore_training_state, save_checkpoint
from .config import TrainConfig, save_config

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


def versions() -> dict[str, str]:
    import timm

    return {"hamixer": __version__, "torch": torch.__version__, "timm": timm.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


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


def make_optimizer_and_scheduler(cfg: TrainConfig, model: nn.Module, updates_per_epoch: int):
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2

    try:
        optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=cfg.resolved_lr,
                                        weight_decay=cfg.weight_decay, eps=cfg.opt_eps)
    except (ValueError, AssertionError, TypeError) as err:
        raise ConfigError(f"optimizer {cfg.opt!r}: {err}") from None
    if cfg.sched == "none":
        return optimizer, None
    scheduler, _ = create_scheduler_v2(
        optimizer, sched=cfg.sched, num_epochs=cfg.epochs, min_lr=cfg.min_lr,
        warmup_lr=cfg.warmup_lr, warmup_epochs=cfg.warmup_epochs, step_on_epochs=False,
        updates_per_epoch=updates_per_epoch)
    return optimizer, scheduler


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


def train_one_epoch(model: nn.Module, batches: ImageBatches, criterion: nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
                    cfg: TrainConfig, device: torch.device, amp_dtype: torch.dtype | None,
                    epoch: int, bar: Any) -> dict[str, float]:
    model.train()
    updates = epoch * len(batches)
    loss_sum, correct, n = 0.0, 0, 0
    start = time.perf_counter()
    for x, y, target in batches.batches(epoch_seed(cfg.seed, epoch)):
        with autocast(device, amp_dtype):
            logits = model(x)
            loss = criterion(logits.float(), target) + model.aux_loss()
        if not torch.isfinite(loss):
            raise HamixerError(f"loss is {loss.item()} at epoch {epoch + 1}; lower the "
                               "learning rate or turn off --amp")
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
        if scheduler is not None:
            scheduler.step_update(num_updates=updates)
        b = len(y)
        loss_sum += loss.item() * b
        correct += (logits.argmax(dim=1) == y).sum().item()
        n += b
        elapsed = time.perf_counter() - start
        bar.set_postfix(epoch=f"{epoch + 1}/{cfg.epochs}", loss=f"{loss_sum / n:.3f}",
                        acc=f"{100.0 * correct / n:.1f}", ips=f"{n / elapsed:.0f}",
                        refresh=False)
        bar.update(1)
    seconds = time.perf_counter() - start
    return {"loss": loss_sum / n, "acc": 100.0 * correct / n, "seconds": seconds,
            "images_per_s": n / seconds, "n": n}


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
                               "download"})


def _check_same_config(saved: dict[str, Any], cfg: TrainConfig, out: Path) -> None:
    for key, value in cfg.to_dict().items():
        if key not in RESUMABLE_CHANGES and key in saved and saved[key] != value:
            raise HamixerError(f"{out} was trained with {key}={saved[key]!r}, not {value!r}; "
                               "resume with the same settings or choose another --out")


def _fmt_row(row: dict[str, Any], epochs: int, best: float) -> str:
    return (f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:5.2f}  test loss {row['test_loss']:.4f} "
            f"acc {row['test_acc']:5.2f} (best {best:5.2f})  lr {row['lr']:.2e}  "
            f"{row['seconds']:.1f}s  {row['images_per_s']:.0f} img/s")


def run_training(cfg: TrainConfig, hooks: Sequence[EpochHook] = (),
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train ``cfg.model`` on ``cfg.dataset``, evaluating every epoch; return the summary.

    Writes into ``cfg.out``: ``config.yaml``, ``metrics.jsonl`` (one row per epoch),
    ``last.*`` and ``best.*`` checkpoints and ``summary.json``.
    """
    from ..models import create_model

    cfg.validate()
    if not cfg.out:
        raise ConfigError("an output directory is required (--out DIR)")
    out = Path(cfg.out)
    if log is None:
        log = (lambda s: None) if cfg.quiet else print
    if (out / "last.json").is_file() and not cfg.resume:
        raise HamixerError(f"{out} already holds a run; pass --resume to continue it or "
                           "choose another --out")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = select_device(cfg.device)
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
                                 limit=cfg.limit_train)
    test_batches = ImageBatches(test_split, max(cfg.batch_size, 256), img_size, mean, std,
                                num_classes, train=False, device=device, limit=cfg.limit_test)
    criterion = make_criterion(cfg)
    optimizer, scheduler = make_optimizer_and_scheduler(cfg, model, len(train_batches))
    scaler = torch.amp.GradScaler(device.type) if needs_scaler else None

    dataset_meta = {"name": cfg.dataset, "classes": train_split.classes,
                    "num_classes": num_classes, "in_chans": in_chans, "img_size": img_size,
                    "mean": list(mean), "std": list(std),
                    "train_images": train_batches.num_images,
                    "test_images": test_batches.num_images}
    start_epoch, best_acc, best_epoch = 0, -1.0, 0
    metrics_path = out / "metrics.jsonl"
    rows: list[dict[str, Any]] = []
    if cfg.resume and (out / "last.json").is_file():
        weights, state, meta = load_checkpoint(out, prefer="last")
        if meta["model"] != cfg.model or meta["dataset"]["name"] != cfg.dataset:
            raise HamixerError(f"{out}: holds {meta['model']} on {meta['dataset']['name']}, "
                               f"not {cfg.model} on {cfg.dataset}")
        _check_same_config(meta.get("config", {}), cfg, out)
        model.load_state_dict(weights)
        restore_training_state(meta, state, optimizer, scheduler, scaler)
        start_epoch, best_acc = int(meta["epoch"]), float(meta["best_acc"])
        best_epoch = int(meta.get("best_epoch", 0))
        rows = _read_metrics(metrics_path, start_epoch)
        log(f"resuming {out} after epoch {start_epoch}")
    save_config(cfg, out / "config.yaml")
    if start_epoch == 0 and hooks:  # [symmetry] hooks also see the initial state, "epoch 0"
        init_row: dict[str, Any] = {"epoch": 0}
        for hook in hooks:
            init_row.update(hook(model, 0) or {})
        write_json(out / INIT_METRICS, init_row)
    log(f"{cfg.model} ({n_params / 1e6:.3f} M params) on {cfg.dataset}: "
        f"{train_batches.num_images} train / {test_batches.num_images} test images, "
        f"{img_size}px, {cfg.epochs} epochs, batch {cfg.batch_size}, lr {cfg.resolved_lr:.2e}, "
        f"device {device}{', amp ' + str(amp_dtype).replace('torch.', '') if amp_dtype else ''}")

    steps = len(train_batches)
    bar = _progress(cfg.epochs * steps, start_epoch * steps, cfg.quiet, cfg.model)
    try:
        for epoch in range(start_epoch, cfg.epochs):
            seed_everything(epoch_seed(cfg.seed, epoch))
            t0 = time.perf_counter()
            tr = train_one_epoch(model, train_batches, criterion, optimizer, scheduler, scaler,
                                 cfg, device, amp_dtype, epoch, bar)
            if scheduler is not None:
                scheduler.step(epoch + 1)
            te = evaluate(model, test_batches, device, amp_dtype)
            row = {"epoch": epoch + 1, "train_loss": tr["loss"], "train_acc": tr["acc"],
                   "test_loss": te["loss"], "test_acc": te["top1"], "test_top5": te["top5"],
                   "lr": optimizer.param_groups[0]["lr"],
                   "seconds": time.perf_counter() - t0, "train_seconds": tr["seconds"],
                   "images_per_s": tr["images_per_s"]}
            for hook in hooks:
                row.update(hook(model, epoch + 1) or {})
            rows.append(row)
            improved = te["top1"] > best_acc
            if improved:
                best_acc, best_epoch = te["top1"], epoch + 1
            meta = {"model": cfg.model, "model_kwargs": kwargs, "dataset": dataset_meta,
                    "epoch": epoch + 1, "best_acc": best_acc, "best_epoch": best_epoch,
                    "metrics": row, "config": cfg.to_dict()}
            save_checkpoint(out, "last", model, meta, optimizer, scheduler, scaler)
            if improved and cfg.save_best:
                save_checkpoint(out, "best", model, meta, optimizer, scheduler, scaler)
            _write_metrics(metrics_path, rows)
            bar.clear()
            log(_fmt_row(row, cfg.epochs, best_acc))
            bar.refresh()
    finally:
        bar.close()

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
        "total_seconds": sum(r["seconds"] for r in rows),
        "train_images_per_s": train_images / train_seconds if train_seconds else math.nan,
        "peak_memory_mb": peak_memory_mb(device),
        "peak_memory_kind": "cuda_max_allocated" if device.type == "cuda" else "process_max_rss",
        "device": str(device), "threads": torch.get_num_threads(),
        "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else None,
        "seed": cfg.seed, "lr": cfg.resolved_lr, "out": str(out), "versions": versions(),
    }
    write_json(out / "summary.json", summary)
    return summary
