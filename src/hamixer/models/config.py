"""The one typed configuration of the Mixer family (:class:`MixerConfig`).

:class:`~hamixer.models.mixer.HamMixer` builds from it, the registry names partial ones (a
family's fields, a size's fields) and checks a user's keyword arguments against its field
types and its value checks before anything is built, so that the three never disagree
about what an argument is, what it defaults to and which values are valid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import ConfigError
from .blocks import BLOCK_TYPES, _MixerBlockBase, hidden_sizes
from .mlp import MLP_TYPES, AsymmetricMLP, FreeMLP, MixingMLP, SymmetricMLP

#: Where AsymMixer's breaking matrix starts (``breaking_init``).
BREAKING_INITS = ("xavier", "zero", "free")

#: The model whose MLPs a ``breaking_init`` other than ``"xavier"`` starts from: SymMixer's
#: tied MLPs (W̃ = 0) or ParaMixer's free ones (W̃ = W2₀ − W1₀ᵀ).
START_MLPS: dict[str, type[MixingMLP]] = {"zero": SymmetricMLP, "free": FreeMLP}

#: The least value of each size field.
_LEAST = {"num_blocks": 1, "embed_dim": 1, "patch_size": 1, "img_size": 1, "in_chans": 1,
          "num_classes": 0}

#: What builds an MLP: a class of :data:`MLP_TYPES` or any callable taking its arguments
#: (iMixer's is a ``functools.partial`` of its class).
MLPFactory = Callable[..., MixingMLP]


def _resolve(kind: Any, table: dict[str, Any], what: str) -> Any:
    if isinstance(kind, str):
        if kind not in table:
            raise ConfigError(f"{what} must be one of {tuple(table)}, got {kind!r}")
        return table[kind]
    return kind


@dataclass(frozen=True)
class MixerConfig:
    """Everything that defines a :class:`~hamixer.models.mixer.HamMixer`.

    The same class describes timm's MLP-Mixer (``block="serial", norm="token", mlp="free",
    mlp_bias=True``), the paper's vanilla Mixer (serial, joint norm, no biases), ParaMixer
    (parallel, free), SymMixer (parallel, symmetric) and AsymMixer (parallel, asymmetric).
    Building one checks every value (a :class:`ConfigError` names the first that is wrong).

    Attributes:
        num_classes: classifier outputs (0 for no head).
        img_size: input resolution (square).
        in_chans: input channels.
        patch_size: side of the square patches; ``S = (img_size / patch_size)²`` tokens.
        num_blocks: number of blocks (each with its own weights).
        embed_dim: channels C.
        mlp_ratio: (token hidden, channel hidden) as multiples of C.
        block: ``"serial"``, ``"parallel"`` or a block class.
        mlp: ``"free"``, ``"symmetric"``, ``"asymmetric"`` or an MLP class.
        token_mlp: a different MLP type for token mixing (default: ``mlp``).
        norm: ``"token"`` (per token over C) or ``"joint"`` (over S×C) in the blocks.
        norm_affine: gain of the block norms: ``"elementwise"``, ``"scalar"`` or ``"none"``.
        final_norm: kind of the norm before pooling (defaults to ``norm``, always
            elementwise-affine).
        mlp_bias: biases in the MLPs.
        n_iter: applications of each block with shared weights (the recurrent dynamics).
        asym_lambda: λ of ``aux_loss`` for MLPs with a breaking matrix.
        act_layer: the MLPs' activation.
        drop_rate: dropout before the head.
        proj_drop_rate: dropout inside the MLPs.
        drop_path_rate: stochastic depth, linearly increasing over blocks.
        global_pool: ``"avg"`` or ``""`` (no pooling).
        stem_norm: LayerNorm inside the patch embedding.
        weight_init: ``"official"`` (Xavier-uniform linears, zero head, zero biases) or
            ``"timm"`` (timm's Mixer init: biases of MLPs ~ N(0, 1e-6)).
        init: ``"default"`` or ``"symmetric"`` (start free MLPs at W2 = W1ᵀ exactly).
        breaking_init: where AsymMixer's breaking matrix W̃ starts (THEORY §3):
            ``"xavier"`` (the official code: an independent Xavier matrix), ``"zero"``
            (W̃ = 0: the model is SymMixer's at the same seed, weight for weight) or
            ``"free"`` (W̃ = W2₀ − W1₀ᵀ from the free ParaMixer's initial weights at the same
            seed: the model computes ParaMixer's initial function exactly).
        breaking_weight_decay: whether the optimizer's weight decay shrinks W̃ (``False``
            lists every W̃ in ``no_weight_decay()``, timm's way of exempting parameters).
            The official code decays W̃ like every matrix; shrinking W̃ pulls
            W2 = W1ᵀ + W̃ toward W1ᵀ, a symmetric pull that acts even at λ = 0.
    """

    num_classes: int = 1000
    img_size: int = 224
    in_chans: int = 3
    patch_size: int = 16
    num_blocks: int = 8
    embed_dim: int = 512
    mlp_ratio: float | Sequence[float] = (0.5, 4.0)
    block: str | type[_MixerBlockBase] = "parallel"
    mlp: str | type[MixingMLP] = "free"
    token_mlp: str | type[MixingMLP] | None = None
    norm: str = "joint"
    norm_affine: str = "elementwise"
    final_norm: str | None = None
    mlp_bias: bool = False
    n_iter: int = 1
    asym_lambda: float = 1e-4
    act_layer: type[nn.Module] = nn.GELU
    drop_rate: float = 0.0
    proj_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    global_pool: str = "avg"
    stem_norm: bool = False
    weight_init: str = "official"
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
        ratios = self.mlp_ratio if isinstance(self.mlp_ratio, Sequence) else [self.mlp_ratio]
        if not all(r > 0 for r in ratios):
            raise ConfigError(f"mlp_ratio must be > 0, got {self.mlp_ratio}")
        checks = [
            (self.n_iter >= 1, f"n_iter must be >= 1, got {self.n_iter}"),
            (self.asym_lambda >= 0, f"asym_lambda must be >= 0, got {self.asym_lambda}"),
            (self.global_pool in ("avg", ""),
             f"global_pool must be 'avg' or '', got {self.global_pool!r}"),
            (self.img_size % self.patch_size == 0,
             f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}"),
            (self.weight_init in ("official", "timm"),
             f"weight_init must be 'official' or 'timm', got {self.weight_init!r}"),
            (self.init in ("default", "symmetric"),
             f"init must be 'default' or 'symmetric', got {self.init!r}"),
            (self.breaking_init in BREAKING_INITS,
             f"breaking_init must be one of {BREAKING_INITS}, got {self.breaking_init!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        self.block_class()
        token, channel = self.mlp_classes()
        if self.breaking_init != "xavier" and (token, channel) != (AsymmetricMLP,) * 2:
            raise ConfigError(f"breaking_init={self.breaking_init!r} needs asymmetric MLPs "
                              "(AsymMixer) in every block")
        hidden_sizes(self.embed_dim, self.mlp_ratio)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {f.name: f.default for f in dataclasses.fields(cls)}

    def replace(self, **changes: Any) -> MixerConfig:
        """This configuration with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)

    def as_kwargs(self) -> dict[str, Any]:
        """The fields as ``HamMixer``'s keyword arguments (classes kept as they are)."""
        return {name: getattr(self, name) for name in self.field_names()}

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
