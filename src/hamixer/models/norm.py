"""Layer normalizations of a ``[B, S, C]`` token sequence.

* ``TokenLayerNorm``: per token over the C channels (timm's Mixer).
* ``JointLayerNorm``: over all S·C units together (the paper's "symmetric layernorm",
  ``nn.LayerNorm((S, C))`` in the official code). As a Hopfield visible layer it is the
  gradient of a Lagrangian only when its gain is one scalar (or absent); an elementwise
  gain makes the Jacobian non-symmetric. The shift may be elementwise (a linear term).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

NORM_AFFINE = ("elementwise", "scalar", "none")


class TokenLayerNorm(nn.LayerNorm):
    """LayerNorm over channels of each token; ``eps=1e-6`` as in timm's Mixer.

    ``affine``: ``"elementwise"`` (gain and shift of shape [C], timm's layer), ``"scalar"``
    (one gain, shift [C]: the gradient of one LayerNorm Lagrangian per token, the visible
    layer of the Energy Transformer) or ``"none"``.
    """

    def __init__(self, num_tokens: int, dim: int, eps: float = 1e-6, affine: str = "elementwise"):
        if affine not in NORM_AFFINE:
            raise ConfigError(f"affine must be one of {NORM_AFFINE}, got {affine!r}")
        super().__init__(dim, eps=eps, elementwise_affine=affine != "none")
        self.num_tokens = num_tokens
        self.affine = affine
        if affine == "scalar":
            self.weight = nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor) -> Tensor:
        if self.affine != "scalar":
            return super().forward(x)
        # the scalar gain broadcast (stride 0) as an elementwise one: one fused pass
        weight = self.weight.expand(self.normalized_shape)
        return F.layer_norm(x, self.normalized_shape, weight, self.bias, self.eps)


class JointLayerNorm(nn.Module):
    """LayerNorm over tokens × channels jointly.

    Args:
        num_tokens: S.
        dim: C.
        eps: variance floor.
        affine: ``"elementwise"`` (gain and shift of shape [S, C], the official layer),
            ``"scalar"`` (one gain, shift [S, C]: an exact Hopfield visible layer), or
            ``"none"``.
    """

    weight: nn.Parameter | None  # None when affine="none"
    bias: nn.Parameter | None

    def __init__(self, num_tokens: int, dim: int, eps: float = 1e-6, affine: str = "elementwise"):
        super().__init__()
        if affine not in NORM_AFFINE:
            raise ConfigError(f"affine must be one of {NORM_AFFINE}, got {affine!r}")
        self.num_tokens = num_tokens
        self.dim = dim
        self.eps = eps
        self.affine = affine
        shape = (num_tokens, dim)
        if affine == "elementwise":
            self.weight = nn.Parameter(torch.ones(shape))
        elif affine == "scalar":
            self.weight = nn.Parameter(torch.ones(()))
        else:
            self.register_parameter("weight", None)
        self.bias = nn.Parameter(torch.zeros(shape)) if affine != "none" else None

    @property
    def normalized_shape(self) -> tuple[int, int]:
        return (self.num_tokens, self.dim)

    def forward(self, x: Tensor) -> Tensor:
        weight: Tensor | None = self.weight
        if self.affine == "scalar" and weight is not None:
            # The scalar gain broadcast (stride 0) as an elementwise one: a single fused
            # layer_norm pass forward and backward instead of layer_norm + addcmul.
            weight = weight.expand(self.normalized_shape)
        return F.layer_norm(x, self.normalized_shape, weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"({self.num_tokens}, {self.dim}), eps={self.eps}, affine={self.affine}"


NORM_TYPES: dict[str, type[nn.Module]] = {"token": TokenLayerNorm, "joint": JointLayerNorm}


def make_norm(kind: str, num_tokens: int, dim: int, affine: str = "elementwise",
              eps: float = 1e-6) -> nn.Module:
    if kind not in NORM_TYPES:
        raise ConfigError(f"norm must be one of {tuple(NORM_TYPES)}, got {kind!r}")
    return NORM_TYPES[kind](num_tokens, dim, eps=eps, affine=affine)
