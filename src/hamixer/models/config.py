"""The typed configurations of the family: :class:`MixerConfig` (the Mixers) and
:class:`FormerConfig` (the Transformers), both a :class:`PatchConfig`.

A model builds from its configuration (:class:`~hamixer.models.mixer.HamMixer` from a
``MixerConfig``, :class:`~hamixer.models.former.HamFormer` from a ``FormerConfig``); the
registry names partial ones (a family's fields, a size's fields) and checks a user's keyword
arguments against the field types and the value checks before anything is built, so that the
three never disagree about what an argument is, what it defaults to and which values are
valid. What the two families share (the patch backbone, the recurrence, λ and the symmetric
and breaking starts) is declared and checked once, in :class:`PatchConfig`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from ..errors import ConfigError, closest
from .attention import ATTENTION_TYPES, _AttentionBase
from .blocks import BLOCK_TYPES, _MixerBlockBase, hidden_sizes
from .mlp import MLP_TYPES, AsymmetricMLP, FreeMLP, MixingMLP, SymmetricMLP

#: Where the breaking matrices of AsymMixer and AsymFormer start (``breaking_init``).
BREAKING_INITS = ("xavier", "zero", "free")

#: The model whose MLPs a ``breaking_init`` other than ``"xavier"`` starts from: SymMixer's
#: tied MLPs (W̃ = 0) or ParaMixer's free ones (W̃ = W2₀ − W1₀ᵀ).
START_MLPS: dict[str, type[MixingMLP]] = {"zero": SymmetricMLP, "free": FreeMLP}

#: The (attention, MLP) of the model a ``breaking_init`` other than ``"xavier"`` starts an
#: AsymFormer from: SymFormer's (zero breaking) or ParaFormer's (its initial function).
START_FORMER_LAYERS: dict[str, tuple[str, str]] = {"zero": ("energy", "symmetric"),
                                                   "free": ("free", "free")}

#: The least value of each size field.
_LEAST = {"num_blocks": 1, "embed_dim": 1, "patch_size": 1, "img_size": 1, "in_chans": 1,
          "num_classes": 0}

#: What builds an MLP: a class of :data:`MLP_TYPES` or any callable taking its arguments
#: (iMixer's is a ``functools.partial`` of its class).
MLPFactory = Callable[..., MixingMLP]

_Config = TypeVar("_Config", bound="PatchConfig")


def _resolve(kind: Any, table: dict[str, Any], what: str, names_only: bool = False) -> Any:
    """``table[kind]`` for a name; anything else as it is, unless ``names_only``."""
    if isinstance(kind, str) or names_only:
        if not isinstance(kind, str) or kind not in table:
            raise ConfigError(f"{what} must be one of {tuple(table)}, got {kind!r}")
        return table[kind]
    return kind


def _refuse_first(checks: list[tuple[bool, str]]) -> None:
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


@dataclass(frozen=True)
class PatchConfig:
    """What every model of the family is configured by: the patch backbone's sizes, the
    recurrence, λ, the dropouts and the starts (:class:`~hamixer.models.backbone.PatchBackbone`).

    A family's configuration adds its own fields and its own checks (:meth:`check`). Building
    one checks every value (a :class:`ConfigError` names the first that is wrong).

    Attributes:
        num_classes: classifier outputs (0 for no head).
        img_size: input resolution (square).
        in_chans: input channels.
        patch_size: side of the square patches; ``S = (img_size / patch_size)²`` tokens.
        num_blocks: number of blocks (each with its own weights).
        embed_dim: channels C.
        n_iter: applications of each block with shared weights (the recurrent dynamics).
        asym_lambda: λ of ``aux_loss`` for layers with breaking matrices.
        drop_rate: dropout before the head.
        proj_drop_rate: dropout inside the blocks' layers.
        drop_path_rate: stochastic depth, linearly increasing over blocks.
        global_pool: ``"avg"`` or ``""`` (no pooling).
        init: ``"default"`` or ``"symmetric"`` (start the free layers tied, finding 3).
        breaking_init: where the breaking matrices start (THEORY §3, §8): ``"xavier"``
            (independent Xavier matrices, the official code's), ``"zero"`` (the tied model's
            start at the same seed, weight for weight) or ``"free"`` (the free model's
            initial function at the same seed, exactly).
        breaking_weight_decay: whether the optimizer's weight decay shrinks the breaking
            matrices (``False`` lists every one in ``no_weight_decay()``, timm's way of
            exempting parameters). The official code decays W̃ like every matrix; shrinking
            W̃ pulls W2 = W1ᵀ + W̃ toward W1ᵀ, a symmetric pull that acts even at λ = 0.
    """

    num_classes: int = 1000
    img_size: int = 224
    in_chans: int = 3
    patch_size: int = 16
    num_blocks: int = 8
    embed_dim: int = 512
    n_iter: int = 1
    asym_lambda: float = 1e-4
    drop_rate: float = 0.0
    proj_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    global_pool: str = "avg"
    init: str = "default"
    breaking_init: str = "xavier"
    breaking_weight_decay: bool = True

    def __post_init__(self) -> None:
        for key, least in _LEAST.items():
            if getattr(self, key) < least:
                raise ConfigError(f"{key} must be >= {least}, got {getattr(self, key)}")
        for key in ("drop_rate", "proj_drop_rate", "drop_path_rate"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(f"{key} must be in [0, 1), got {getattr(self, key)}")
        _refuse_first([
            (self.n_iter >= 1, f"n_iter must be >= 1, got {self.n_iter}"),
            (self.asym_lambda >= 0, f"asym_lambda must be >= 0, got {self.asym_lambda}"),
            (self.global_pool in ("avg", ""),
             f"global_pool must be 'avg' or '', got {self.global_pool!r}"),
            (self.img_size % self.patch_size == 0,
             f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}"),
            (self.init in ("default", "symmetric"),
             f"init must be 'default' or 'symmetric', got {self.init!r}"),
            (self.breaking_init in BREAKING_INITS,
             f"breaking_init must be one of {BREAKING_INITS}, got {self.breaking_init!r}"),
        ])
        self.check()

    def check(self) -> None:
        """The family's own checks, after the shared ones (a :class:`ConfigError` for the
        first value that is wrong)."""

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_args(cls: type[_Config], config: _Config | None, fields: dict[str, Any],
                  model: str) -> _Config:
        """The configuration a constructor ``model(config, **fields)`` builds from: ``config``
        with ``fields`` replaced, or ``fields`` alone; an unknown field is named."""
        if config is not None and not isinstance(config, cls):
            raise TypeError(f"{model} takes a {cls.__name__} and keyword arguments, got "
                            f"{type(config).__name__}")
        names = cls.field_names()
        unknown = [k for k in fields if k not in names]
        if unknown:
            raise ConfigError(f"unknown argument {unknown[0]!r} for {model}"
                              f"{closest(unknown[0], names)} (valid: {', '.join(names)})")
        if config is None:
            return cls(**fields)
        return config.replace(**fields) if fields else config

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {f.name: f.default for f in dataclasses.fields(cls)}

    def replace(self: _Config, **changes: Any) -> _Config:
        """This configuration with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)

    def as_kwargs(self) -> dict[str, Any]:
        """The fields as the model's keyword arguments (classes kept as they are)."""
        return {name: getattr(self, name) for name in self.field_names()}

    def drop_path_rates(self) -> list[float]:
        """Stochastic depth of each block, linearly from 0 to ``drop_path_rate``."""
        # on the CPU even under a meta default device (`hamixer models` builds no weights)
        rates: list[float] = torch.linspace(0, self.drop_path_rate, self.num_blocks,
                                            device="cpu").tolist()
        return rates

    def starts_from_reference(self) -> bool:
        """Whether the breaking matrices start from a reference model's initial weights
        (``breaking_init`` ``"zero"`` or ``"free"``) rather than their own draws."""
        return self.breaking_init != "xavier"


@dataclass(frozen=True)
class MixerConfig(PatchConfig):
    """Everything that defines a :class:`~hamixer.models.mixer.HamMixer`.

    The same class describes timm's MLP-Mixer (``block="serial", norm="token", mlp="free",
    mlp_bias=True``), the paper's vanilla Mixer (serial, joint norm, no biases), ParaMixer
    (parallel, free), SymMixer (parallel, symmetric) and AsymMixer (parallel, asymmetric).
    The fields of every model are :class:`PatchConfig`'s; a ``breaking_init`` of ``"zero"``
    starts AsymMixer as SymMixer, ``"free"`` as ParaMixer (W̃ = W2₀ − W1₀ᵀ).

    Attributes:
        mlp_ratio: (token hidden, channel hidden) as multiples of C.
        block: ``"serial"``, ``"parallel"`` or a block class.
        mlp: ``"free"``, ``"symmetric"``, ``"asymmetric"`` or an MLP class.
        token_mlp: a different MLP type for token mixing (default: ``mlp``).
        norm: ``"token"`` (per token over C) or ``"joint"`` (over S×C) in the blocks.
        norm_affine: gain of the block norms: ``"elementwise"``, ``"scalar"`` or ``"none"``.
        final_norm: kind of the norm before pooling (defaults to ``norm``, always
            elementwise-affine).
        mlp_bias: biases in the MLPs.
        act_layer: the MLPs' activation.
        stem_norm: LayerNorm inside the patch embedding.
        weight_init: ``"official"`` (Xavier-uniform linears, zero head, zero biases) or
            ``"timm"`` (timm's Mixer init: biases of MLPs ~ N(0, 1e-6)).
    """

    mlp_ratio: float | Sequence[float] = (0.5, 4.0)
    block: str | type[_MixerBlockBase] = "parallel"
    mlp: str | type[MixingMLP] = "free"
    token_mlp: str | type[MixingMLP] | None = None
    norm: str = "joint"
    norm_affine: str = "elementwise"
    final_norm: str | None = None
    mlp_bias: bool = False
    act_layer: type[nn.Module] = nn.GELU
    stem_norm: bool = False
    weight_init: str = "official"

    def check(self) -> None:
        ratios = self.mlp_ratio if isinstance(self.mlp_ratio, Sequence) else [self.mlp_ratio]
        _refuse_first([
            (all(r > 0 for r in ratios), f"mlp_ratio must be > 0, got {self.mlp_ratio}"),
            (self.weight_init in ("official", "timm"),
             f"weight_init must be 'official' or 'timm', got {self.weight_init!r}"),
        ])
        self.block_class()
        token, channel = self.mlp_classes()
        if self.starts_from_reference() and (token, channel) != (AsymmetricMLP,) * 2:
            raise ConfigError(f"breaking_init={self.breaking_init!r} needs asymmetric MLPs "
                              "(AsymMixer) in every block")
        hidden_sizes(self.embed_dim, self.mlp_ratio)

    def block_class(self) -> type[_MixerBlockBase]:
        block: type[_MixerBlockBase] = _resolve(self.block, BLOCK_TYPES, "block")
        return block

    def mlp_classes(self) -> tuple[MLPFactory, MLPFactory]:
        """(token-mixing, channel-mixing) MLP builders, names resolved."""
        channel: MLPFactory = _resolve(self.mlp, MLP_TYPES, "mlp")
        token: MLPFactory = (_resolve(self.token_mlp, MLP_TYPES, "token_mlp")
                             if self.token_mlp else channel)
        return token, channel

    def start_mlp_classes(self) -> tuple[MLPFactory, MLPFactory]:
        """The MLPs the network is first built with: those of the model whose start a
        ``breaking_init`` of ``"zero"`` or ``"free"`` copies, else its own."""
        start = START_MLPS.get(self.breaking_init)
        return (start, start) if start is not None else self.mlp_classes()


@dataclass(frozen=True)
class FormerConfig(PatchConfig):
    """Everything that defines a :class:`~hamixer.models.former.HamFormer` (THEORY §8).

    SymFormer is ``attention="energy", mlp="symmetric"``, ParaFormer ``"free", "free"``,
    AsymFormer ``"asymmetric", "asymmetric"``; the fields of every model are
    :class:`PatchConfig`'s. A ``breaking_init`` of ``"zero"`` starts AsymFormer as SymFormer
    at the same seed, ``"free"`` as ParaFormer (``Ṽ = W_V − W_K``, ``Õ = W_O − W_Qᵀ``,
    ``K̃ = −W_Kᵀ``, ``W̃ = W2 − W1ᵀ``). ``init="symmetric"`` ties the free layers the model
    is built with (``W_K = W_Q``, ``W_V^h = W_K^h``, ``W_O^h = W_Q^hᵀ``, ``W2 = W1ᵀ``): with
    a free start, ParaFormer's, so AsymFormer starts at ParaFormer's tied start (as AsymMixer
    at ParaMixer's); AsymFormer's own layers and SymFormer's have none to tie.

    Attributes:
        num_heads: attention heads H (head dimension ``D / H``).
        mlp_ratio: hidden units of the MLP as a multiple of D.
        attention: ``"energy"`` (SymFormer), ``"free"`` (ParaFormer) or ``"asymmetric"``.
        mlp: ``"symmetric"``, ``"free"`` or ``"asymmetric"``.
        norm: ``"token"`` (per token over D) or ``"joint"`` (over N×D) in the blocks.
        norm_affine: gain of the block norms: ``"scalar"`` (the exact energy's),
            ``"elementwise"`` or ``"none"``.
        beta: attention's inverse temperature (default ``1/√(D/H)``).
        exclude_self: drop a token's score with itself from attention (ET's choice).
    """

    num_heads: int = 8
    mlp_ratio: float = 4.0
    attention: str = "energy"
    mlp: str = "symmetric"
    norm: str = "token"
    norm_affine: str = "scalar"
    beta: float | None = None
    exclude_self: bool = False

    def check(self) -> None:
        _refuse_first([
            (self.num_heads >= 1 and self.embed_dim % self.num_heads == 0,
             f"embed_dim {self.embed_dim} does not split into {self.num_heads} heads"),
            (self.beta is None or self.beta > 0, f"beta must be > 0, got {self.beta}"),
        ])
        self.layer_classes()
        if self.starts_from_reference() and (self.attention, self.mlp) != ("asymmetric",) * 2:
            raise ConfigError(f"breaking_init={self.breaking_init!r} needs asymmetric attention "
                              "and MLPs (AsymFormer) in every block")
        if int(self.mlp_ratio * self.embed_dim) < 1:
            raise ConfigError(f"mlp_ratio {self.mlp_ratio} gives an empty hidden layer for "
                              f"dim={self.embed_dim}")
        if not self.breaking_weight_decay and "asymmetric" not in (self.attention, self.mlp):
            raise ConfigError("breaking_weight_decay=False needs breaking matrices "
                              "(AsymFormer's asymmetric attention or MLPs)")

    def layer_classes(self) -> tuple[type[_AttentionBase], type[MixingMLP]]:
        """(attention, MLP) classes of every block, names resolved."""
        attention: type[_AttentionBase] = _resolve(self.attention, ATTENTION_TYPES,
                                                   "attention", names_only=True)
        mlp: type[MixingMLP] = _resolve(self.mlp, MLP_TYPES, "mlp", names_only=True)
        return attention, mlp

    def start_layer_classes(self) -> tuple[type[_AttentionBase], type[MixingMLP]]:
        """The layers the network is first built with: those of the model whose start a
        ``breaking_init`` of ``"zero"`` or ``"free"`` copies, else its own."""
        start = START_FORMER_LAYERS.get(self.breaking_init)
        if start is None:
            return self.layer_classes()
        return self.replace(attention=start[0], mlp=start[1], breaking_init="xavier",
                            breaking_weight_decay=True).layer_classes()
