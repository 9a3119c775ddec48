"""Mixing MLPs: free, symmetric (tied) and asymmetric (tied + breaking matrix).

Every MLP here mixes along one axis of a ``[B, S, C]`` tensor: ``axis=-1`` mixes channels
(an ordinary MLP on the last dimension), ``axis=-2`` mixes tokens. Token mixing multiplies
from the left (``W @ x``) instead of transposing the tensor twice, which is the same
function as timm's ``mlp(x.transpose(1, 2)).transpose(1, 2)``.

All three share one interface used by the blocks, the energy and the symmetry measures:
``w1`` (``[hidden, in]``), ``w2`` (``[in, hidden]``, the effective output matrix),
``b1``/``b2`` (biases or ``None``) and ``penalty()`` (the symmetry-breaking norm, zero for
MLPs without a breaking matrix).
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor, nn

from ..ops import apply_linear


def _check_axis(axis: int) -> int:
    if axis not in (-1, -2):
        raise ValueError(f"axis must be -1 (channels) or -2 (tokens), got {axis}")
    return axis


class InplaceGELU(nn.GELU):
    """The exact GELU, overwriting its input when nothing will differentiate through it (as
    ``nn.ReLU(inplace=True)`` does). The MLPs hand it their own temporary, so inference saves
    one allocation of the hidden layer per MLP, worth more than 3 % of an inference step at
    28 and at 224 px on a CPU (``benchmarks/inplace_gelu.py``). In training it is ``nn.GELU``.
    """

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return super().forward(x)
        return torch.ops.aten.gelu_(x, approximate=self.approximate)


class MixingMLP(nn.Module, abc.ABC):
    """Shared forward pass: ``W2 · act(W1 · x + b1) + b2`` along ``axis``."""

    in_features: int
    hidden_features: int
    axis: int

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        axis: int = -1,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.hidden_features = hidden_features
        self.axis = _check_axis(axis)
        # act_layer=nn.GELU (the default) is the same function computed in place at inference
        self.act = InplaceGELU() if act_layer is nn.GELU else act_layer()
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    # Subclasses define where the matrices live.
    @property
    @abc.abstractmethod
    def w1(self) -> Tensor:
        """Input matrix, shape [hidden, in]."""

    @property
    @abc.abstractmethod
    def w2(self) -> Tensor:
        """Effective output matrix, shape [in, hidden]."""

    @property
    def b1(self) -> Tensor | None:
        return None

    @property
    def b2(self) -> Tensor | None:
        return None

    def hidden(self, x: Tensor) -> Tensor:
        """Pre-activation of the hidden units, ``W1 · x + b1`` along ``axis``."""
        return apply_linear(x, self.w1, self.b1, self.axis)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """``W2 · act(W1 · x + b1) + b2``; with ``residual``, that plus ``residual``, the
        addition done by the output GEMM itself (a skip connection without an extra pass)."""
        h = self.drop(self.act(self.hidden(x)))
        if residual is not None and isinstance(self.drop, nn.Identity):
            return apply_linear(h, self.w2, self.b2, self.axis, residual=residual)
        y = self.drop(apply_linear(h, self.w2, self.b2, self.axis))
        return y if residual is None else residual + y

    def forward_residual(self, x: Tensor, residual: Tensor) -> Tensor:
        """``residual + self(x)``, called through the module so that its hooks run (they see
        the sum as the output). A subclass with its own ``forward`` gets the plain sum."""
        if type(self).forward is not MixingMLP.forward:
            return residual + self(x)
        return self(x, residual=residual)

    def penalty(self) -> Tensor:
        """Squared Frobenius norm of the symmetry-breaking matrix (zero if there is none)."""
        return self.w1.new_zeros(())

    def extra_repr(self) -> str:
        kind = "tokens" if self.axis == -2 else "channels"
        return f"in={self.in_features}, hidden={self.hidden_features}, mixes={kind}"


class LinearPairWeights:
    """``w1``, ``w2``, ``b1``, ``b2`` of an MLP whose matrices are two ``nn.Linear`` layers,
    ``fc1`` and ``fc2`` (mixed into :class:`MixingMLP` subclasses)."""

    fc1: nn.Linear
    fc2: nn.Linear

    @property
    def w1(self) -> Tensor:
        return self.fc1.weight

    @property
    def w2(self) -> Tensor:
        return self.fc2.weight

    @property
    def b1(self) -> Tensor | None:
        return self.fc1.bias

    @property
    def b2(self) -> Tensor | None:
        return self.fc2.bias


class FreeMLP(LinearPairWeights, MixingMLP):
    """Ordinary two-layer MLP with independent ``fc1`` and ``fc2`` (timm's ``Mlp``)."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        axis: int = -1,
        bias: bool = True,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float = 0.0,
    ) -> None:
        super().__init__(in_features, hidden_features, axis, act_layer, drop)
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.fc2 = nn.Linear(hidden_features, in_features, bias=bias)



class SymmetricMLP(MixingMLP):
    """Tied MLP ``Wᵀ · act(W · x + b1) + b2``: one Parameter ``weight`` of shape [hidden, in].

    The tie is structural, so gradients from both uses of ``weight`` accumulate in it, and
    the map is the negative gradient of ``-Σ Φ(W x + b1) - b2·x`` (THEORY §2).
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        axis: int = -1,
        bias: bool = False,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float = 0.0,
    ) -> None:
        super().__init__(in_features, hidden_features, axis, act_layer, drop)
        self.weight = nn.Parameter(torch.empty(hidden_features, in_features))
        self.bias_hidden = nn.Parameter(torch.zeros(hidden_features)) if bias else None
        self.bias_out = nn.Parameter(torch.zeros(in_features)) if bias else None
        nn.init.xavier_uniform_(self.weight)

    @property
    def w1(self) -> Tensor:
        return self.weight

    @property
    def w2(self) -> Tensor:
        return self.weight.t()

    @property
    def b1(self) -> Tensor | None:
        return self.bias_hidden

    @property
    def b2(self) -> Tensor | None:
        return self.bias_out


class AsymmetricMLP(SymmetricMLP):
    """Tied MLP plus a free breaking matrix: ``W2 = Wᵀ + W̃`` (AsymMixer, THEORY §3).

    ``penalty()`` is ``‖W̃‖²``; the model multiplies it by λ. W̃ starts as an ordinary
    Xavier-initialised matrix, as in the official code.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        axis: int = -1,
        bias: bool = False,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float = 0.0,
    ) -> None:
        super().__init__(in_features, hidden_features, axis, bias, act_layer, drop)
        self.breaking = nn.Parameter(torch.empty(in_features, hidden_features))
        nn.init.xavier_uniform_(self.breaking)

    @property
    def w2(self) -> Tensor:
        return self.weight.t() + self.breaking

    def penalty(self) -> Tensor:
        return self.breaking.pow(2).sum()

    @classmethod
    @torch.no_grad()
    def started_from(cls, other: MixingMLP) -> AsymmetricMLP:
        """An AsymmetricMLP computing ``other``'s function (its W1, biases, activation and
        dropout; W̃ = W2 − W1ᵀ), built without drawing from the random stream."""
        with torch.device("meta"):  # the Xavier draws of a fresh one would be overwritten
            mlp = cls(other.in_features, other.hidden_features, other.axis,
                      bias=other.b1 is not None)
        mlp = mlp.to_empty(device=other.w1.device).to(dtype=other.w1.dtype)
        mlp.act, mlp.drop = other.act, other.drop
        mlp.start_from_(other)
        return mlp

    @torch.no_grad()
    def start_from_(self, other: MixingMLP) -> None:
        """Take ``other``'s W1 and biases, and W̃ = W2 − W1ᵀ, so that this MLP computes the
        same function as ``other`` (W̃ = 0 for a tied ``other``)."""
        self.weight.copy_(other.w1)
        self.breaking.copy_(other.w2 - other.w1.t())
        for mine, theirs in ((self.bias_hidden, other.b1), (self.bias_out, other.b2)):
            if (mine is None) != (theirs is None):
                raise ValueError("start_from_: the two MLPs differ in their biases")
            if mine is not None and theirs is not None:  # both or neither: checked above
                mine.copy_(theirs)


MLP_TYPES: dict[str, type[MixingMLP]] = {
    "free": FreeMLP,
    "symmetric": SymmetricMLP,
    "asymmetric": AsymmetricMLP,
}
