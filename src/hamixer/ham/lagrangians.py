"""Lagrangians of neuron layers and their activations (THEORY §1).

A layer with state ``x`` and convex Lagrangian ``L`` has activation ``g = ∂L/∂x``. Each class
here is a small ``nn.Module`` with two methods:

* ``density(x)``: the Lagrangian before the sum over the layer. Separable Lagrangians
  return one value per unit; normalizing ones (softmax, LayerNorm, spherical) reduce their
  ``axes`` with ``keepdim=True``. ``density(x).sum()`` is ``L`` summed over the batch, so
  ``autograd.grad(density(x).sum(), x) == activation(x)`` for every shape.
* ``activation(x)``: ``g = ∂L/∂x`` in closed form (what a layer actually computes).

``value(x, ndim)`` sums the density over the last ``ndim`` dimensions: the Lagrangian of
each sample of a batch.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _axes(axes: int | Sequence[int]) -> tuple[int, ...]:
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    if not axes or any(a >= 0 for a in axes) or len(set(axes)) != len(axes):
        raise ValueError(f"axes must be distinct negative dimensions, got {axes}")
    return axes


class Lagrangian(nn.Module, abc.ABC):
    """Base class: a convex Lagrangian and its gradient, the activation."""

    @abc.abstractmethod
    def density(self, x: Tensor) -> Tensor:
        """Elementwise (or per-group) contribution to ``L``; summed by :meth:`value`."""

    @abc.abstractmethod
    def activation(self, x: Tensor) -> Tensor:
        """``g = ∂L/∂x``."""

    def value(self, x: Tensor, ndim: int) -> Tensor:
        """``L`` of each sample: the density summed over the last ``ndim`` dimensions."""
        d = self.density(x)
        return d.sum(dim=tuple(range(-ndim, 0))) if ndim > 0 else d

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(x)


class IdentityLagrangian(Lagrangian):
    """``L = ½ Σ x²``, ``g = x``."""

    def density(self, x: Tensor) -> Tensor:
        return 0.5 * x * x

    def activation(self, x: Tensor) -> Tensor:
        return x


class ReLULagrangian(Lagrangian):
    """``L = ½ Σ max(x, 0)²``, ``g = ReLU(x)``."""

    def density(self, x: Tensor) -> Tensor:
        return 0.5 * F.relu(x).square()

    def activation(self, x: Tensor) -> Tensor:
        return F.relu(x)


class RePULagrangian(Lagrangian):
    """``L = (1/n) Σ max(x, 0)ⁿ``, ``g = max(x, 0)ⁿ⁻¹`` (rectified power unit, n ≥ 2)."""

    def __init__(self, n: float = 2.0) -> None:
        super().__init__()
        if n < 2:
            raise ValueError(f"RePU power must be >= 2 for a convex, differentiable L, got {n}")
        self.n = float(n)

    def density(self, x: Tensor) -> Tensor:
        return F.relu(x).pow(self.n) / self.n

    def activation(self, x: Tensor) -> Tensor:
        return F.relu(x).pow(self.n - 1)

    def extra_repr(self) -> str:
        return f"n={self.n:g}"


class SoftmaxLagrangian(Lagrangian):
    """``L = (1/β) log Σ exp(β x)`` over ``axis``, ``g = softmax(β x)``."""

    def __init__(self, beta: float = 1.0, axis: int = -1) -> None:
        super().__init__()
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.beta = float(beta)
        self.axis = _axes(axis)[0]

    def density(self, x: Tensor) -> Tensor:
        return torch.logsumexp(self.beta * x, dim=self.axis, keepdim=True) / self.beta

    def activation(self, x: Tensor) -> Tensor:
        return torch.softmax(self.beta * x, dim=self.axis)

    def extra_repr(self) -> str:
        return f"beta={self.beta:g}, axis={self.axis}"


def gelu_lagrangian(x: Tensor) -> Tensor:
    """Φ(x) = ¼ [x² + (x² − 1)·erf(x/√2) + x·√(2/π)·exp(−x²/2)], with Φ' = GELU (exact erf)."""
    x2 = x * x
    return 0.25 * (x2 + (x2 - 1.0) * torch.erf(x / _SQRT_2)
                   + x * _SQRT_2_OVER_PI * torch.exp(-0.5 * x2))


class GELULagrangian(Lagrangian):
    """``L = Σ Φ(x)``, ``g = GELU(x)`` (the exact erf GELU, ``nn.GELU()``).

    Φ is not convex (GELU decreases below x ≈ −0.75); as a *hidden* layer eliminated in the
    adiabatic limit (THEORY §2) only the visible Lagrangian needs to be convex.
    """

    def density(self, x: Tensor) -> Tensor:
        return gelu_lagrangian(x)

    def activation(self, x: Tensor) -> Tensor:
        return F.gelu(x)


class _NormLagrangian(Lagrangian):
    """Shared parameters of the LayerNorm and spherical Lagrangians: scalar gain, shift."""

    def __init__(self, axes: int | Sequence[int] = -1, gain: float | Tensor = 1.0,
                 shift: Tensor | None = None, eps: float = 1e-5) -> None:
        super().__init__()
        self.axes = _axes(axes)
        if isinstance(gain, nn.Parameter):  # shared with a norm layer: keep the reference
            if gain.dim() != 0:
                raise ValueError("the gain must be one number (a 0-dim tensor)")
            self.gain = gain
        else:
            gain = torch.as_tensor(gain, dtype=torch.get_default_dtype())
            if gain.numel() != 1:
                raise ValueError("the gain must be one number: an elementwise gain is not the "
                                 f"gradient of any Lagrangian (got shape {tuple(gain.shape)})")
            self.register_buffer("gain", gain.reshape(()).clone())
        if shift is None or isinstance(shift, nn.Parameter):
            self.shift = shift
        else:
            self.register_buffer("shift", torch.as_tensor(shift))
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.eps = float(eps)

    def _gain(self, x: Tensor) -> Tensor:
        return self.gain.to(x.dtype)

    def _linear(self, x: Tensor) -> Tensor:
        if self.shift is None:
            return x.new_zeros(())
        return (self.shift.to(x.dtype) * x).sum(dim=self.axes, keepdim=True)

    def _shifted(self, g: Tensor) -> Tensor:
        return g if self.shift is None else g + self.shift.to(g.dtype)

    def extra_repr(self) -> str:
        return f"axes={self.axes}, eps={self.eps:g}, shift={self.shift is not None}"


class LayerNormLagrangian(_NormLagrangian):
    """LayerNorm over ``axes`` with scalar gain γ and shift δ.

    ``L = N·γ·√(Σ(x − x̄)²/N + ε) + Σ δ·x`` over the N units of ``axes``, whose gradient is
    exactly ``γ·(x − x̄)/√(var + ε) + δ`` (biased variance: ``F.layer_norm``).

    Note: THEORY.md originally wrote ``γ·√N·√(…)``; its gradient is ``LN(x)/√N``. The factor
    is N, not √N (checked against autograd in the tests). The Legendre term of this layer
    is ``x·g − L = −N·γ·ε/√(var + ε)``: zero up to ε, as for any 1-homogeneous Lagrangian.
    """

    def _std(self, x: Tensor) -> Tensor:
        var = x.var(dim=self.axes, keepdim=True, unbiased=False)
        return torch.sqrt(var + self.eps)

    def _count(self, x: Tensor) -> int:
        return math.prod(x.shape[a] for a in self.axes)

    def density(self, x: Tensor) -> Tensor:
        return self._count(x) * self._gain(x) * self._std(x) + self._linear(x)

    def activation(self, x: Tensor) -> Tensor:
        centered = x - x.mean(dim=self.axes, keepdim=True)
        return self._shifted(self._gain(x) * centered / self._std(x))


class SphericalLagrangian(_NormLagrangian):
    """Spherical norm: ``L = γ·√(Σ x² + ε) + Σ δ·x``, ``g = γ·x/√(Σ x² + ε) + δ`` over ``axes``.

    ``g`` lies (up to ε) on the sphere of radius γ around δ; unlike LayerNorm nothing is
    centered and the norm is the Euclidean one, not the root mean square.
    """

    def _norm(self, x: Tensor) -> Tensor:
        return torch.sqrt(x.square().sum(dim=self.axes, keepdim=True) + self.eps)

    def density(self, x: Tensor) -> Tensor:
        return self._gain(x) * self._norm(x) + self._linear(x)

    def activation(self, x: Tensor) -> Tensor:
        return self._shifted(self._gain(x) * x / self._norm(x))


LAGRANGIANS: dict[str, type[Lagrangian]] = {
    "identity": IdentityLagrangian,
    "relu": ReLULagrangian,
    "repu": RePULagrangian,
    "softmax": SoftmaxLagrangian,
    "gelu": GELULagrangian,
    "layernorm": LayerNormLagrangian,
    "spherical": SphericalLagrangian,
}
