"""Named configurations of the family, registered in timm.

Names follow timm: ``{family}_{size}{patch}_{img}``. Paper sizes (224 px, patch 16 or 32):
``s`` = 8 × 512, ``b`` = 12 × 768, ``l`` = 24 × 1024. CPU sizes: ``t4_28`` (28×28 grayscale,
patch 4, 4 × 128), ``m4_28`` (28×28 grayscale, patch 4, 6 × 128 with channel-MLP ratio 2:
deeper and narrower than ``t4_28`` at a little less cost; the Fashion-MNIST size of the
docs), ``t4_32`` (32×32 RGB, patch 4, 4 × 128) and ``n2_8`` (8×8 grayscale, patch 2, 4 × 64, for
scikit-learn's digits).

``import hamixer`` registers every name, so ``timm.create_model(name, ...)`` works; the
same models come from :func:`create_model`, which also checks names and keyword arguments
and says which valid names are closest.
"""

from __future__ import annotations

import copy
import fnmatch
import inspect
import sys
import typing
from collections.abc import Callable
from typing import Any

from timm.models import register_model
from torch import nn

from ..errors import ConfigError, closest
from ..io import as_read_back
from .arguments import check_argument
from .config import MixerConfig, PatchConfig
from .features import DEFAULT_OUT_INDICES, FEATURE_ARGS, as_features
from .former import HamFormer
from .mixer import HamMixer
from .symmetric_init import tie_symmetric
from .timm_models import (
    PRESETS,
    create_timm_model,
    default_input,
    is_timm_model,
    timm_model_args,
    timm_names,
)

PAPER_ID = "arXiv:2406.12220"

#: Arguments that set what a family *is*.
FAMILIES: dict[str, dict[str, Any]] = {
    # timm's MLP-Mixer rebuilt from our backbone (loads timm's state dicts).
    "mlpmixer": dict(block="serial", norm="token", mlp="free", mlp_bias=True,
                     norm_affine="elementwise", weight_init="timm"),
    # The paper's vanilla Mixer: serial, LayerNorm over (S, C), no biases.
    "vanillamixer": dict(block="serial", norm="joint", mlp="free", mlp_bias=False,
                         norm_affine="elementwise"),
    # Parallel token and channel mixing on one normalised input.
    "paramixer": dict(block="parallel", norm="joint", mlp="free", mlp_bias=False,
                      norm_affine="scalar"),
    # Tied weights: the block is exactly one step of the Hopfield dynamics.
    "symmixer": dict(block="parallel", norm="joint", mlp="symmetric", mlp_bias=False,
                     norm_affine="scalar"),
    # Tied weights plus a breaking matrix penalised by λ (default 1e-4).
    "asymmixer": dict(block="parallel", norm="joint", mlp="asymmetric", mlp_bias=False,
                      norm_affine="scalar", asym_lambda=1e-4),
}

#: Arguments that set a size.
SIZES: dict[str, dict[str, Any]] = {
    "s16_224": dict(num_blocks=8, embed_dim=512, patch_size=16, img_size=224),
    "s32_224": dict(num_blocks=8, embed_dim=512, patch_size=32, img_size=224),
    "b16_224": dict(num_blocks=12, embed_dim=768, patch_size=16, img_size=224),
    "b32_224": dict(num_blocks=12, embed_dim=768, patch_size=32, img_size=224),
    "l16_224": dict(num_blocks=24, embed_dim=1024, patch_size=16, img_size=224),
    "l32_224": dict(num_blocks=24, embed_dim=1024, patch_size=32, img_size=224),
    "t4_28": dict(num_blocks=4, embed_dim=128, patch_size=4, img_size=28, in_chans=1,
                  num_classes=10),
    # Depth pays more than width at this scale: 6 blocks with hidden 2C beat 4 with 4C.
    "m4_28": dict(num_blocks=6, embed_dim=128, patch_size=4, img_size=28, in_chans=1,
                  num_classes=10, mlp_ratio=(0.5, 2.0)),
    "t4_32": dict(num_blocks=4, embed_dim=128, patch_size=4, img_size=32, in_chans=3,
                  num_classes=10),
    "n2_8": dict(num_blocks=4, embed_dim=64, patch_size=2, img_size=8, in_chans=1,
                 num_classes=10),
}

#: The Transformer family of THEORY §8 (:class:`HamFormer`): parallel blocks, one per-token
#: LayerNorm with a scalar gain (the exact energy's visible layer) for attention and MLP.
FORMER_FAMILIES: dict[str, dict[str, Any]] = {
    # Energy attention + tied Hopfield MLP: the block is one step of the ET energy descent.
    "symformer": dict(attention="energy", mlp="symmetric", norm="token", norm_affine="scalar"),
    # Standard multi-head attention and a free MLP in the same parallel block.
    "paraformer": dict(attention="free", mlp="free", norm="token", norm_affine="scalar"),
    # SymFormer's maps plus breaking matrices penalised by λ (default 1e-4).
    "asymformer": dict(attention="asymmetric", mlp="asymmetric", norm="token",
                       norm_affine="scalar", asym_lambda=1e-4),
}

#: Sizes of the Transformers: the Mixers' at 224 px (heads of 64: S 8, B 12, L 16 heads, as
#: ViT-B/L), and at the CPU sizes the width, heads (of 32) and MLP ratio 2 of timm's ViT
#: presets (``vit_m4_28``), so that ParaFormer has the parameters of ``paramixer_m4_28``.
FORMER_SIZES: dict[str, dict[str, Any]] = {
    size: {**args, "num_heads": args["embed_dim"] // 64, "mlp_ratio": 4.0}
    for size, args in SIZES.items() if size.endswith("_224")
} | {
    size: {**SIZES[size], "embed_dim": dim, "num_heads": dim // 32, "mlp_ratio": 2.0}
    for size, dim in (("n2_8", 64), ("t4_28", 96), ("m4_28", 96), ("t4_32", 96))
}

#: name → keyword arguments of its builder (for HamMixer and HamFormer: fields of their
#: :class:`MixerConfig` and :class:`FormerConfig`).
MODEL_CONFIGS: dict[str, dict[str, Any]] = {}
#: name → timm-style pretrained (here: preprocessing-only) config.
default_cfgs: dict[str, dict[str, Any]] = {}

#: name → callable that builds it from keyword arguments (HamMixer unless a family says).
BUILDERS: dict[str, Callable[..., nn.Module]] = {}
# Passed by timm.create_model to every entrypoint; harmless here.
_TIMM_PASSTHROUGH = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def _pretrained_cfg(name: str, args: dict[str, Any]) -> dict[str, Any]:
    in_chans = args.get("in_chans", 3)
    img = args.get("img_size", 224)
    return dict(
        url="",  # no pretrained weights: every model here is trained from scratch
        hf_hub_id=None,
        architecture=name,
        num_classes=args.get("num_classes", 1000),
        input_size=(in_chans, img, img),
        pool_size=None,
        crop_pct=0.875 if img >= 224 else 1.0,
        interpolation="bicubic",
        fixed_input_size=True,
        mean=(0.5,) * in_chans,
        std=(0.5,) * in_chans,
        first_conv="stem.proj",
        classifier="head",
        license="mit",
        paper_ids=PAPER_ID,
    )


def _config_class(builder: Callable[..., nn.Module]) -> type[PatchConfig] | None:
    """The typed configuration ``builder`` is built from (HamMixer's :class:`MixerConfig`,
    HamFormer's :class:`FormerConfig`), or None for a builder whose signature lists its
    arguments."""
    config = getattr(builder, "config_class", None)
    return config if isinstance(config, type) and issubclass(config, PatchConfig) else None


def _returned_config(builder: Callable[..., nn.Module]) -> type[PatchConfig] | None:
    """The configuration of the model ``builder`` makes: its own, or that of the model class
    a function is declared to return (iMixer's returns a HamMixer)."""
    if isinstance(builder, type):
        return _config_class(builder)
    built = typing.get_type_hints(builder).get("return")
    return _config_class(built) if isinstance(built, type) else None


def _forwarded_config(builder: Callable[..., nn.Module]) -> type[PatchConfig] | None:
    """The configuration whose fields a builder without one passes on through its
    ``**kwargs``: that of the model it returns (iMixer's: :class:`MixerConfig`), HamMixer's
    if it does not say; None for a builder with a configuration or without ``**kwargs``."""
    if _config_class(builder) is not None:
        return None
    params = inspect.signature(builder).parameters.values()
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return _returned_config(builder) or MixerConfig


def builder_args(builder: Callable[..., nn.Module]) -> tuple[str, ...]:
    """Keyword arguments ``builder`` accepts: its configuration's fields, or its signature's
    (and the fields of the configuration its ``**kwargs`` forward to)."""
    config = _config_class(builder)
    if config is not None:
        return config.field_names()
    params = inspect.signature(builder).parameters
    names = [p for p, v in params.items() if p != "self" and v.kind is not v.VAR_KEYWORD]
    forwarded = _forwarded_config(builder)
    if forwarded is not None:
        names += [p for p in forwarded.field_names() if p not in names]
    return tuple(names)


def register_family(family: str, family_args: dict[str, Any],
                    builder: Callable[..., nn.Module] = HamMixer,
                    sizes: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Add every size of ``family`` (``sizes``, default :data:`SIZES`) to the registry and
    to timm; return the names.

    Extensions (iMixer, the Transformers) call this with their own defaults and builder.
    For a builder of a model with a configuration (HamMixer, HamFormer, a function that
    forwards to one), every name's configuration is checked here: a family whose arguments
    make no valid one is refused at registration.
    """
    sizes = SIZES if sizes is None else sizes
    for size_args in sizes.values():
        _check_values(builder, {**size_args, **family_args})
    FAMILIES[family] = dict(family_args)
    names = []
    for size, size_args in sizes.items():
        name = f"{family}_{size}"
        MODEL_CONFIGS[name] = {**size_args, **family_args}
        BUILDERS[name] = builder
        default_cfgs[name] = _pretrained_cfg(name, MODEL_CONFIGS[name])
        register_model(_make_entrypoint(name))
        names.append(name)
    return names


def _make_entrypoint(name: str, description: Any = None) -> Callable[..., nn.Module]:
    def entrypoint(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return create_model(name, pretrained=pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"{name}: {description or MODEL_CONFIGS[name]}"
    setattr(sys.modules[__name__], name, entrypoint)
    return entrypoint


def list_models(pattern: str = "*") -> list[str]:
    """hamixer's names (its families and the timm presets) matching a shell-style
    ``pattern``, sorted. Any other timm name works too (``timm.list_models``)."""
    return sorted(n for n in (*MODEL_CONFIGS, *PRESETS) if fnmatch.fnmatch(n, pattern))


def model_source(name: str) -> str:
    """``"hamixer"`` for the family's names, ``"timm"`` for a name timm builds."""
    if name in MODEL_CONFIGS:
        return "hamixer"
    if is_timm_model(name):
        return "timm"
    raise ConfigError(f"unknown model {name!r}{closest(name, (*MODEL_CONFIGS, *timm_names()))}"
                      " (`hamixer models` lists hamixer's; any timm model name works too)")


def input_defaults(name: str, **overrides: Any) -> dict[str, Any]:
    """``img_size``, ``in_chans`` and ``num_classes`` of ``name`` built with ``overrides``."""
    if model_source(name) == "timm":
        return default_input(name, **overrides)
    args = model_args(name, **overrides)
    return {k: args.get(k, d) for k, d in (("img_size", 224), ("in_chans", 3),
                                           ("num_classes", 1000))}


def model_args(name: str, **overrides: Any) -> dict[str, Any]:
    """The constructor arguments of ``name`` with ``overrides`` applied, each checked by name
    and by the type its constructor declares (a :class:`ConfigError` names the first that is
    wrong: the argument, the type it takes and the value given)."""
    if model_source(name) == "timm":
        return timm_model_args(name, **overrides)
    valid = builder_args(BUILDERS[name])
    unknown = [k for k in overrides if k not in valid]
    if unknown:
        k = unknown[0]
        raise ConfigError(f"unknown argument {k!r} for model {name!r}{closest(k, valid)}"
                          f" (valid: {', '.join(valid)})")
    hints = builder_hints(BUILDERS[name])
    checked = {k: check_argument(name, k, v, hints.get(k)) for k, v in overrides.items()}
    args = {**MODEL_CONFIGS[name], **checked}
    _check_values(BUILDERS[name], args)
    return args


def builds_same_model(name: str, kwargs_a: dict[str, Any], kwargs_b: dict[str, Any]) -> bool:
    """Whether ``name`` built with ``kwargs_a`` is the model built with ``kwargs_b``: the same
    arguments once each side's omissions are filled with the defaults (``{}`` and
    ``{"n_iter": 1}`` build the same model). False if either is not valid for ``name``."""
    try:
        a, b = model_args(name, **kwargs_a), model_args(name, **kwargs_b)
    except ConfigError:
        return False
    if model_source(name) != "timm":
        defaults = _builder_defaults(BUILDERS[name])
        a, b = {**defaults, **a}, {**defaults, **b}
    return as_read_back(a) == as_read_back(b)


def _builder_defaults(builder: Callable[..., nn.Module]) -> dict[str, Any]:
    config = _config_class(builder)
    if config is not None:
        return config.defaults()
    forwarded = _forwarded_config(builder)
    own = inspect.signature(builder).parameters
    return {**(forwarded.defaults() if forwarded is not None else {}),
            **{k: p.default for k, p in own.items() if p.default is not inspect.Parameter.empty}}


def builder_hints(builder: Callable[..., nn.Module]) -> dict[str, Any]:
    """The resolved annotations of ``builder``'s arguments: its configuration's field types,
    or its signature's (and those of the configuration its ``**kwargs`` forward to)."""
    config = _config_class(builder)
    if config is not None:
        return typing.get_type_hints(config)
    target = builder.__init__ if isinstance(builder, type) else builder  # type: ignore[misc]
    hints = typing.get_type_hints(target)
    forwarded = _forwarded_config(builder)
    if forwarded is not None:
        hints = {**typing.get_type_hints(forwarded), **hints}
    return hints


def _check_values(builder: Callable[..., nn.Module], args: dict[str, Any]) -> None:
    """Refuse impossible values before anything is built: the part of ``args`` that is the
    configuration of the model ``builder`` makes (all of it for HamMixer and HamFormer, the
    backbone's part for a function that forwards to one) must make a valid one."""
    config = _returned_config(builder)
    if config is not None:
        fields = set(config.field_names())
        config(**{k: v for k, v in args.items() if k in fields})


def has_free_mlps(name: str) -> bool:
    """Whether ``name``'s MLPs have independent W1 and W2 (what ``init="symmetric"`` ties);
    a timm model's are free."""
    return model_source(name) == "timm" or model_args(name).get("mlp") == "free"


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build a hamixer model, or any timm model by its timm name; ``kwargs`` override its
    configuration (checked by name and type for both).

    Raises:
        ConfigError: unknown name or argument, an impossible value, or ``pretrained=True``
            for a hamixer model (they have no published weights).
    """
    cfg_overlay = kwargs.pop("pretrained_cfg_overlay", None) or {}
    for key in _TIMM_PASSTHROUGH:
        kwargs.pop(key, None)
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    if model_source(name) == "timm":
        model = _create_from_timm(name, pretrained, **kwargs)
        return model.to(device=device, dtype=dtype) if device or dtype else model
    features = {k: kwargs.pop(k) for k in FEATURE_ARGS if k in kwargs}
    args = model_args(name, **kwargs)
    if pretrained:
        raise ConfigError(f"no pretrained weights exist for {name!r}: hamixer models are "
                          "trained from scratch (`hamixer train`)")
    model = BUILDERS[name](**args)  # a value out of range is the builder's ConfigError
    cfg = copy.deepcopy(default_cfgs[name])
    cfg.update(_pretrained_cfg(name, args))
    cfg.update(cfg_overlay)
    model.pretrained_cfg = model.default_cfg = cfg  # type: ignore[assignment]
    model.model_name = name  # type: ignore[assignment]
    model.model_args = {k: v for k, v in args.items() if k in kwargs}  # type: ignore[assignment]
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    if features.pop("features_only", False):
        return _feature_model(model, name, cfg, **features)
    if features:
        raise ConfigError(f"{', '.join(features)} needs features_only=True")
    return model


def _feature_model(model: nn.Module, name: str, cfg: dict[str, Any],
                   out_indices: Any = DEFAULT_OUT_INDICES, feature_cls: Any = "getter"
                   ) -> nn.Module:
    """``features_only=True``: ``model`` in timm's feature wrapper (see :func:`as_features`)."""
    if not hasattr(model, "forward_intermediates"):
        raise ConfigError(f"{name} has no forward_intermediates: features_only=True is not "
                          "available for it")
    out_indices = check_argument(name, "out_indices", out_indices, int | list[int])
    wrapped = as_features(model, name, cfg, out_indices=out_indices, feature_cls=feature_cls)
    wrapped.model_name, wrapped.model_args = name, model.model_args  # type: ignore[assignment]
    return wrapped


def _create_from_timm(name: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    timm_model_args(name, **kwargs)  # every argument checked, ``init`` among them
    init = kwargs.pop("init", "default")
    model = create_timm_model(name, pretrained=pretrained,
                              symmetric_init=_tie_or_refuse if init == "symmetric" else None,
                              **kwargs)
    if init != "default":
        model.model_args["init"] = init  # type: ignore[index, operator]
    return model


def _tie_or_refuse(model: nn.Module) -> None:
    """``init="symmetric"`` for a timm model: tie what :func:`tie_symmetric` finds, and say so
    when it finds nothing (the start would not be symmetric)."""
    tied = tie_symmetric(model)
    if not tied["mlp"] and not tied["attention"]:
        raise ConfigError(f"init='symmetric' found no two-layer MLP (fc1, fc2) or attention "
                          f"(qkv) to tie in {type(model).__name__}")


for _family, _args in list(FAMILIES.items()):
    register_family(_family, _args)
for _family, _args in FORMER_FAMILIES.items():
    register_family(_family, _args, builder=HamFormer, sizes=FORMER_SIZES)
for _preset, (_arch, _args) in PRESETS.items():
    default_cfgs[_preset] = {**_pretrained_cfg(_preset, _args), "first_conv": "patch_embed.proj",
                             "paper_ids": None}
    register_model(_make_entrypoint(_preset, f"timm's {_arch} with {_args}"))
