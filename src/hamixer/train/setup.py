"""What a training run is made of, built from its :class:`TrainConfig`: the device and
mixed precision, the data, the model, the loss, the optimiser and its schedule, the weight
EMA (:func:`build_parts`), and the seeds of every epoch.
"""

from __future__ import annotations

import random
import resource
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ..data import dataset_info, load_split
from ..data.pipeline import ImageBatches
from ..device import select_device
from ..errors import ConfigError
from .config import TrainConfig
from .distributed import DistContext


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` (0-based) of a run seeded ``seed``."""
    return (seed * 1_000_003 + epoch * 7919 + 17) % 2**63


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


@contextmanager
def tf32_mode(enabled: bool, device: torch.device) -> Iterator[None]:
    """TensorFloat-32 for float32 matrix products and cuDNN convolutions on or off while a
    run on ``device`` trains, as timm's train.py sets it on CUDA; the previous settings come
    back afterwards. A CPU has no TF32: nothing is touched there."""
    if device.type != "cuda":
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


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
    from ..models.registry import input_defaults

    if cfg.img_size:
        return int(cfg.img_size)
    return int(input_defaults(cfg.model, **cfg.model_kwargs)["img_size"])


def load_data(cfg: TrainConfig, img_size: int):
    """(dataset info, train split, test split), checked against what the run needs: one image
    size in both splits (unless ``cfg.img_size`` resizes them) and labels within the head."""
    info = dataset_info(cfg.dataset)
    in_chans = cfg.model_kwargs.get("in_chans")
    train = load_split(cfg.dataset, True, cfg.data_dir, cfg.download, img_size, in_chans)
    test = load_split(cfg.dataset, False, cfg.data_dir, False, img_size, in_chans)
    sizes = [tuple(int(n) for n in s.images.shape[1:3]) for s in (train, test)]
    if sizes[0] != sizes[1] and not cfg.img_size:
        (h, w), (th, tw) = sizes
        raise ConfigError(f"{cfg.dataset}: the train images are {h}×{w} but the test images "
                          f"{th}×{tw}; pass --img-size N to resize both to N×N")
    check_head(cfg, train, test)
    return info, train, test


def check_head(cfg: TrainConfig, train: Any, test: Any) -> None:
    """Refuse labels beyond the classifier the run builds (``--num-classes``, the
    ``num_classes`` model argument, else one output per class of the data)."""
    outputs = int(cfg.model_kwargs.get("num_classes", len(train.classes)))
    top = max(int(s.labels.max()) for s in (train, test) if len(s.labels))
    if top >= outputs:
        raise ConfigError(f"{cfg.dataset} has labels up to {top} ({len(train.classes)} "
                          f"classes) but the model's head has {outputs} outputs "
                          f"(num_classes={outputs}); give it at least {top + 1} or leave "
                          "num_classes out")


def check_data(cfg: TrainConfig) -> tuple[int, int, int]:
    """Load ``cfg``'s data and check it fits the run (:func:`load_data`) without building
    anything: a plan of runs is checked once before any run directory exists. Returns what
    the model is built for: classes, input channels and image size."""
    img_size = model_img_size(cfg)
    _, train, _ = load_data(cfg, img_size)
    return len(train.classes), int(train.images.shape[-1]), img_size


def check_model(cfg: TrainConfig, num_classes: int, in_chans: int, img_size: int) -> None:
    """Build ``cfg``'s model for that input on the meta device (no memory, no weights), so
    that an impossible model argument (``n_iter=0``) is refused before any run directory of a
    plan exists, as :func:`build_parts` refuses it for a single run."""
    from ..errors import HamixerError
    from ..models import create_model

    kwargs = model_kwargs_for(cfg, num_classes, in_chans, img_size)
    try:
        with torch.device("meta"):
            create_model(cfg.model, **kwargs)
    except HamixerError:
        raise
    except Exception:  # noqa: BLE001 - a constructor that needs real tensors: the run
        pass  # builds it for real and reports what goes wrong there


def make_criterion(cfg: TrainConfig) -> nn.Module:
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if cfg.augment.mixes:
        return SoftTargetCrossEntropy()  # mixup already smooths the soft targets
    if cfg.label_smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=cfg.label_smoothing)
    return nn.CrossEntropyLoss()


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

    get_classifier = getattr(model, "get_classifier", None)
    head = get_classifier() if callable(get_classifier) else None
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
        # timm annotates warmup_epochs as int, but with step_on_epochs=False it is scaled by
        # updates_per_epoch, so a fraction of an epoch (a short recipe's warm-up) is exact
        warmup_lr=cfg.warmup_lr, warmup_epochs=cfg.warmup_epochs,  # type: ignore[arg-type]
        step_on_epochs=False,
        updates_per_epoch=updates_per_epoch)
    return optimizer, scheduler


def make_ema(cfg: TrainConfig, model: nn.Module) -> Any:
    """timm's ModelEmaV3 of ``model`` when ``cfg.model_ema``, else None."""
    if not cfg.model_ema:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=cfg.model_ema_decay, use_warmup=cfg.model_ema_warmup)


@dataclass
class TrainingParts:
    """Everything :func:`hamixer.train.run.run_training` trains with, built once per run."""

    model: nn.Module
    model_source: str  # "hamixer" or "timm": which registry rebuilds it from its name
    model_kwargs: dict[str, Any]  # what the model was built with (saved in checkpoints)
    n_params: int
    img_size: int
    train_batches: ImageBatches
    test_batches: ImageBatches
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    ema: Any
    device: torch.device
    amp_dtype: torch.dtype | None
    dataset_meta: dict[str, Any]  # the data as checkpoints and ``eval`` need to know it


def initial_model(name: str, kwargs: dict[str, Any], seed: int,
                  initial_checkpoint: str | None = None) -> nn.Module:
    """The model a run seeded ``seed`` starts from, on the CPU: built right after seeding
    every RNG, so that its weights depend on the seed alone (and can be rebuilt from a
    checkpoint's ``seed``, ``model`` and ``model_kwargs``), then loaded from
    ``initial_checkpoint`` if there is one."""
    from ..models import create_model, load_external

    seed_everything(seed)
    model = create_model(name, **kwargs)
    if initial_checkpoint:
        load_external(model, initial_checkpoint)
    return model


def build_parts(cfg: TrainConfig, ctx: DistContext,
                rank_device: torch.device | None) -> TrainingParts:
    """Build every part of the run from ``cfg`` (seeded with ``cfg.seed`` first, so that the
    model's initial weights depend on the seed only). Writes nothing."""
    from ..models.registry import model_source

    device = rank_device or select_device(cfg.device)
    amp_dtype, needs_scaler = amp_settings(cfg, device)
    seed_everything(cfg.seed)
    img_size = model_img_size(cfg)
    _, train_split, test_split = load_data(cfg, img_size)
    num_classes = len(train_split.classes)
    in_chans = int(train_split.images.shape[-1])
    kwargs = model_kwargs_for(cfg, num_classes, in_chans, img_size)
    # the initial weights (from --initial-checkpoint too), before the EMA copies them
    model = initial_model(cfg.model, kwargs, cfg.seed, cfg.initial_checkpoint).to(device)
    if cfg.channels_last:  # before the optimizer and the EMA see the parameters
        model = model.to(memory_format=torch.channels_last)
    source = model_source(cfg.model)
    pretrained = cast(dict[str, Any], model.pretrained_cfg)  # a plain dict timm sets
    mean, std = tuple(pretrained["mean"]), tuple(pretrained["std"])
    train_batches = ImageBatches(train_split, cfg.batch_size, img_size, mean, std, num_classes,
                                 train=True, augment=cfg.augment, device=device,
                                 limit=cfg.limit_train, shard=(ctx.rank, ctx.world))
    test_batches = ImageBatches(test_split, max(cfg.batch_size, 256), img_size, mean, std,
                                num_classes, train=False, device=device, limit=cfg.limit_test)
    optimizer, scheduler = make_optimizer_and_scheduler(cfg, model, len(train_batches))
    dataset_meta = {"name": cfg.dataset, "classes": train_split.classes,
                    "num_classes": num_classes, "in_chans": in_chans, "img_size": img_size,
                    "mean": list(mean), "std": list(std),
                    "train_images": train_batches.num_images,
                    "test_images": test_batches.num_images}
    return TrainingParts(
        model=model, model_source=source, model_kwargs=kwargs,
        n_params=sum(p.numel() for p in model.parameters()),
        img_size=img_size, train_batches=train_batches, test_batches=test_batches,
        criterion=make_criterion(cfg), optimizer=optimizer, scheduler=scheduler,
        scaler=torch.amp.GradScaler(device.type) if needs_scaler else None,
        ema=make_ema(cfg, model), device=device, amp_dtype=amp_dtype,
        dataset_meta=dataset_meta)
