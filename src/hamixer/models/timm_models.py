"""Any timm model through hamixer's front door: checked arguments, the data's input size
and channels, and the symmetric start.

hamixer trains, evaluates and measures timm's models with the same commands, recipes and run
files as its own, so that a Transformer and a Mixer can be compared side by side. A timm
name is built with :func:`timm.create_model`; its keyword arguments are checked against the
model class's constructor (found by building the default model on the meta device, which
allocates nothing) so a wrong name or type is one line, not a traceback.

Presets (:data:`PRESETS`) are timm architectures at the sizes of the Mixer docs, e.g.
``vit_m4_28``: a ViT of about the cost of ``paramixer_m4_28`` on 28 × 28 grey images.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

import timm
import torch
from torch import nn

from ..errors import ConfigError, closest
from .arguments import check_argument

#: hamixer name → (timm architecture, its arguments): a ViT for each size of the Mixer docs,
#: named like them. ``vit_m4_28``: patch 4 on 28 × 28 grey images (49 tokens and a class
#: token), 6 blocks of width 96 with 3 heads of 32, MLP ratio 2 — about the parameters and
#: MACs of the ``m4_28`` Mixers (``hamixer models 'vit_*'``).
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    f"vit_{size}": ("vit_tiny_patch16_224", dict(img_size=img, patch_size=patch, in_chans=chans,
                                                 num_classes=10, embed_dim=dim, depth=depth,
                                                 num_heads=dim // 32, mlp_ratio=2.0))
    for size, img, patch, chans, dim, depth in (
        ("n2_8", 8, 2, 1, 64, 4), ("t4_28", 28, 4, 1, 96, 4), ("m4_28", 28, 4, 1, 96, 6),
        ("t4_32", 32, 4, 3, 96, 4))
}

#: Set by the module that ties weights (``init="symmetric"``), which imports this one.
SymmetricInit = Callable[[nn.Module], Any]


def is_timm_model(name: str) -> bool:
    """Whether ``name`` is built by timm: one of its architectures or one of :data:`PRESETS`."""
    return name in PRESETS or timm.is_model(name)


def timm_names() -> list[str]:
    return sorted(set(timm.list_models()) | set(PRESETS))


@functools.lru_cache(maxsize=64)
def model_class(name: str) -> type[nn.Module]:
    """The class timm builds for ``name`` (from a default build on the meta device)."""
    arch, args = PRESETS.get(name, (name, {}))
    with torch.device("meta"):
        return type(timm.create_model(arch, **args))


def _constructor(cls: type[nn.Module]) -> tuple[tuple[str, ...], bool, dict[str, Any]]:
    """(argument names, whether it takes ``**kwargs``, resolved annotations) of ``cls``."""
    params = inspect.signature(cls.__init__).parameters
    names = tuple(p for p, v in params.items()
                  if p != "self" and v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL))
    open_ended = any(v.kind is v.VAR_KEYWORD for v in params.values())
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # noqa: BLE001 - an unresolvable annotation: the constructor decides
        hints = {}
    return names, open_ended, hints


def timm_model_args(name: str, **overrides: Any) -> dict[str, Any]:
    """The arguments of timm model ``name`` (a preset's plus ``overrides``), each override
    checked by name and by the type the model class declares. ``init`` is hamixer's own
    (``"symmetric"`` ties the built model) and is checked here but not passed to timm."""
    overrides = dict(overrides)
    init = overrides.pop("init", "default")
    if init not in ("default", "symmetric"):
        raise ConfigError(f"init must be 'default' or 'symmetric', got {init!r}")
    cls = model_class(name)
    valid, open_ended, hints = _constructor(cls)
    unknown = [k for k in overrides if k not in valid]
    if unknown and not open_ended:
        k = unknown[0]
        raise ConfigError(f"unknown argument {k!r} for model {name!r} ({cls.__name__})"
                          f"{closest(k, valid)}")
    checked = {k: check_argument(name, k, v, hints.get(k)) for k, v in overrides.items()}
    return {**PRESETS.get(name, ("", {}))[1], **checked}


def default_input(name: str, **overrides: Any) -> dict[str, Any]:
    """``img_size``, ``in_chans`` and ``num_classes`` of timm model ``name`` as built."""
    args = timm_model_args(name, **overrides)
    arch = PRESETS.get(name, (name, {}))[0]
    cfg = timm.get_pretrained_cfg(arch)
    c, h, _ = cfg.input_size if cfg is not None else (3, 224, 224)
    img = args.get("img_size", h)
    return dict(img_size=img if isinstance(img, int) else int(img[0]),
                in_chans=args.get("in_chans", c),
                num_classes=args.get("num_classes", cfg.num_classes if cfg else 1000))


def create_timm_model(name: str, pretrained: bool = False,
                      symmetric_init: SymmetricInit | None = None,
                      **kwargs: Any) -> nn.Module:
    """Build timm model ``name`` with checked ``kwargs``; ``symmetric_init`` (given for
    ``init="symmetric"``) ties its MLPs and attention after it is built."""
    args = timm_model_args(name, **kwargs)
    if pretrained and name in PRESETS:
        raise ConfigError(f"no pretrained weights exist for {name!r}: a preset of "
                          f"{PRESETS[name][0]} at another size, trained from scratch")
    arch = PRESETS.get(name, (name, {}))[0]
    try:
        model = timm.create_model(arch, pretrained=pretrained, **args)
    except OSError:  # a download or a cache file: the caller of pretrained=True says which
        raise
    except Exception as err:  # noqa: BLE001 - timm's own checks are asserts, ValueErrors, ...
        if pretrained and isinstance(err, RuntimeError):
            raise  # "No pretrained weights exist for ...": the caller's to word
        # the default model builds (model_class did), so it is these arguments it refuses;
        # the cause stays chained for HAMIXER_DEBUG=1
        given = ", ".join(f"{k}={v!r}" for k, v in args.items())
        raise ConfigError(f"timm's {arch} refused the arguments {given}: "
                          f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                          ) from err
    _input_cfg(model, name, kwargs)
    if symmetric_init is not None:
        symmetric_init(model)
    model.model_name = name  # type: ignore[assignment]
    model.model_args = dict(kwargs)  # type: ignore[assignment]
    return model


def _input_cfg(model: nn.Module, name: str, kwargs: dict[str, Any]) -> None:
    """Make the model's ``pretrained_cfg`` describe the input it was built for: timm keeps
    its 3-channel mean/std and 224 px when ``in_chans``/``img_size`` change, while the data
    pipeline normalises with one value per channel at the model's size."""
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    size = default_input(name, **kwargs)
    chans, img = size["in_chans"], size["img_size"]
    for key, fallback in (("mean", 0.5), ("std", 0.5)):
        values = tuple(cfg.get(key) or (fallback,))
        if len(values) != chans:
            cfg[key] = (sum(values) / len(values),) * chans
    cfg["input_size"] = (chans, img, img)
    model.pretrained_cfg = model.default_cfg = cfg  # type: ignore[assignment]
