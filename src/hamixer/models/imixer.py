"""iMixer: the invertible, implicit, iterative token mixer (Ota & Taki 2023; THEORY §5).

The token-mixing MLP of the MLP-Mixer becomes

    iMLP(x) = fc2( GELU( (I − F)⁻¹ (fc1 x) ) ),   F(y) = W_b · GELU(W_a · GELU(y) + b_a) + b_b

with ``W_a``, ``W_b`` spectrally normalised (σ ≤ ``coeff``), so that ``I − F`` is invertible
and ``y = (I − F)⁻¹ u`` is reached by the fixed-point iteration ``y_{k+1} = u + F(y_k)``,
``y_0 = u``, unrolled for ``fixed_point_iters`` steps (backpropagation runs through the
unrolled steps).

Lipschitz constant of F: ``Lip(F) ≤ σ(W_a)·σ(W_b)·max|GELU'|²`` with ``max|GELU'| =
GELU'(√2) ≈ 1.1289``. GELU is *not* 1-Lipschitz, so with the default ``coeff = 0.9`` the
certified bound is ``0.81 · 1.274 ≈ 1.03``: the contraction is not guaranteed by the bound,
though in practice the iteration contracts far faster (see ``benchmarks/imixer.py``).
``coeff ≤ 0.88`` certifies a contraction (``lipschitz_bound() < 1``).

The rest of the model is timm's MLP-Mixer (serial block, LayerNorm per token, biases, channel
mixing an ordinary MLP), which is what the iMixer paper modifies.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..ops import apply_linear
from .mixer import HamMixer
from .mlp import LinearPairWeights, MixingMLP
from .registry import register_family
from .spectral_norm import SpectralNorm

#: max_x |GELU'(x)| = GELU'(√2) = Φ(√2) + √2·φ(√2): the Lipschitz constant of (exact) GELU.
GELU_LIPSCHITZ = 0.5 * (1.0 + math.erf(1.0)) + math.sqrt(2.0) * math.exp(-1.0) / math.sqrt(
    2.0 * math.pi)


class ContractiveResidual(nn.Module):
    """``F(y) = W_b · GELU(W_a · GELU(y) + b_a) + b_b`` along ``axis``, weights σ ≤ ``coeff``.

    ``fc_a``/``fc_b`` hold the raw weights (so the backbone's Xavier init reaches them);
    ``sn_a``/``sn_b`` hold the power-iteration state and return the normalised weights.
    """

    def __init__(self, features: int, hidden_features: int, axis: int = -2, bias: bool = True,
                 coeff: float = 0.9, n_power: int = 8) -> None:
        super().__init__()
        self.axis = axis
        self.fc_a = nn.Linear(features, hidden_features, bias=bias)
        self.fc_b = nn.Linear(hidden_features, features, bias=bias)
        self.sn_a = SpectralNorm(hidden_features, features, coeff, n_power)
        self.sn_b = SpectralNorm(features, hidden_features, coeff, n_power)

    def normalized_weights(self) -> tuple[Tensor, Tensor]:
        """``(W_a, W_b)`` after normalisation; updates the power iteration when training."""
        return self.sn_a(self.fc_a.weight), self.sn_b(self.fc_b.weight)

    def forward(self, y: Tensor, weights: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``F(y)``; pass ``weights`` to reuse one normalisation across iterations."""
        wa, wb = self.normalized_weights() if weights is None else weights
        h = apply_linear(F.gelu(y), wa, self.fc_a.bias, self.axis)
        return apply_linear(F.gelu(h), wb, self.fc_b.bias, self.axis)

    @torch.no_grad()
    def lipschitz_bound(self) -> float:
        """``σ(W_a)·σ(W_b)·max|GELU'|²`` with exact σ (SVD) of the normalised weights in use."""
        was_training = self.training
        self.eval()  # read the weights the next eval forward uses, without an update
        wa, wb = self.normalized_weights()
        self.train(was_training)
        sa, sb = (torch.linalg.matrix_norm(w.float(), ord=2).item() for w in (wa, wb))
        return sa * sb * GELU_LIPSCHITZ ** 2


class InvertibleMLP(LinearPairWeights, MixingMLP):
    """``fc2(act((I − F)⁻¹(fc1 x)))``: the iMixer's token-mixing MLP (any ``axis``).

    Args:
        in_features: size of the mixed axis.
        hidden_features: hidden units of fc1/fc2; F acts on this space.
        axis: -2 mixes tokens, -1 channels.
        bias: biases in fc1, fc2 and F.
        act_layer: activation after the solve (F itself always uses GELU, as specified).
        drop: dropout after the activation and after fc2.
        fixed_point_iters: iterations of ``y ← u + F(y)`` (not ``n_iter``, which counts
            the backbone's block repetitions, as in every family).
        n_power: power iterations per training forward in each spectral normalisation.
        h_ratio: hidden size of F as a multiple of ``hidden_features``.
        coeff: bound on the spectral norm of ``W_a`` and ``W_b``.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        axis: int = -2,
        bias: bool = True,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float = 0.0,
        fixed_point_iters: int = 4,
        n_power: int = 8,
        h_ratio: float = 1.0,
        coeff: float = 0.9,
    ) -> None:
        super().__init__(in_features, hidden_features, axis, act_layer, drop)
        if fixed_point_iters < 1:
            raise ConfigError(f"fixed_point_iters must be >= 1, got {fixed_point_iters}")
        if not 0.0 < coeff < 1.0:
            raise ConfigError(f"coeff must be in (0, 1) for I - F to be invertible, got {coeff}")
        residual_hidden = int(h_ratio * hidden_features)
        if residual_hidden < 1:
            raise ConfigError(f"h_ratio {h_ratio} gives F an empty hidden layer "
                             f"(token hidden {hidden_features})")
        self.fixed_point_iters = int(fixed_point_iters)
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.f = ContractiveResidual(hidden_features, residual_hidden, axis, bias, coeff, n_power)
        self.fc2 = nn.Linear(hidden_features, in_features, bias=bias)

    def solve(self, u: Tensor, iters: int | None = None) -> Tensor:
        """``(I − F)⁻¹ u`` by ``iters`` (default ``fixed_point_iters``) steps of
        ``y ← u + F(y)`` from ``y = u``."""
        weights = self.f.normalized_weights()  # one power-iteration update per call
        y = u
        for _ in range(self.fixed_point_iters if iters is None else iters):
            y = u + self.f(y, weights)
        return y

    @torch.no_grad()
    def fixed_point_residuals(self, u: Tensor, iters: int | None = None) -> Tensor:
        """``‖y_k − u − F(y_k)‖`` (Frobenius, whole batch) for k = 0 … iters."""
        weights = self.f.normalized_weights()
        y, norms = u, []
        for _ in range((self.fixed_point_iters if iters is None else iters) + 1):
            y_next = u + self.f(y, weights)
            norms.append(torch.linalg.vector_norm(y - y_next))
            y = y_next
        return torch.stack(norms)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """``W2 · act((I − F)⁻¹ (W1 · x + b1)) + b2`` (plus ``residual`` if given)."""
        y = self.solve(self.hidden(x))
        out = self.drop(apply_linear(self.drop(self.act(y)), self.w2, self.b2, self.axis))
        return out if residual is None else residual + out

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fixed_point_iters={self.fixed_point_iters}"


def build_imixer(fixed_point_iters: int = 4, n_power: int = 8, h_ratio: float = 1.0,
                 coeff: float = 0.9, **kwargs: Any) -> HamMixer:
    """A HamMixer whose token MLP is :class:`InvertibleMLP`; ``kwargs`` go to the backbone
    (``n_iter`` among them: each block applied n times, as in every family)."""
    if "token_mlp" in kwargs:
        raise ConfigError("the imixer family fixes token_mlp to InvertibleMLP")
    token_mlp = partial(InvertibleMLP, fixed_point_iters=fixed_point_iters, n_power=n_power,
                        h_ratio=h_ratio, coeff=coeff)
    return HamMixer(token_mlp=token_mlp, **kwargs)


#: timm's MLP-Mixer (serial, per-token LayerNorm, biases) with the invertible token MLP.
IMIXER_ARGS: dict[str, Any] = dict(block="serial", norm="token", mlp="free", mlp_bias=True,
                                   norm_affine="elementwise", weight_init="timm",
                                   fixed_point_iters=4, n_power=8, h_ratio=1.0, coeff=0.9)

register_family("imixer", IMIXER_ARGS, builder=build_imixer)
