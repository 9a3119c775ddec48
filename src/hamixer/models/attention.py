"""Attention of the Transformer family (THEORY §8): energy, free and asymmetric.

Each takes normalized tokens ``g`` ``[B, N, D]`` and returns the attention part of the block's
increment, ``[B, N, D]``. All three share one interface, used by the block, the energy and
the symmetry measures: ``query_weight``/``key_weight`` (``[H·Y, D]``), the effective
per-head maps ``value_weight`` (``[H·Y, D]``, W_V), ``out_weight`` (``[D, H·Y]``, W_O) and
``key_out_weight`` (``[D, H·Y]``, the key term's output map, zero without a key term), and
``penalty()`` (the squared norm of the breaking matrices).

* :class:`EnergyAttention` — SymFormer's: ``−∂E_att/∂g``, i.e. the query term with
  ``W_V = W_K``, ``W_O = W_Qᵀ`` plus the key term with values ``W_Q g`` and output ``W_Kᵀ``.
* :class:`FreeAttention` — ParaFormer's: ordinary multi-head softmax attention with
  independent ``W_Q, W_K, W_V, W_O`` (no biases, no key term).
* :class:`AsymmetricAttention` — AsymFormer's: energy attention whose three output-side maps
  carry breaking matrices, ``W_V = W_K + Ṽ``, ``W_O = W_Qᵀ + Õ``, key-term output
  ``W_Kᵀ + K̃``; ``penalty() = ‖Ṽ‖² + ‖Õ‖² + ‖K̃‖²``. Zero breaking is SymFormer's map;
  ``Ṽ = W_V − W_K``, ``Õ = W_O − W_Qᵀ``, ``K̃ = −W_Kᵀ`` is any ParaFormer attention
  (docs/THEORY.md §8, "AsymFormer").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ham.attention import (
    AttentionSynapse,
    MultiHeadScores,
    attention_scores,
    merge_heads,
    split_heads,
)


def _head_dim(dim: int, num_heads: int) -> int:
    if num_heads < 1 or dim % num_heads:
        raise ValueError(f"embed_dim {dim} does not split into {num_heads} heads")
    return dim // num_heads


def _xavier(*shape: int) -> nn.Parameter:
    w = torch.empty(*shape)
    nn.init.xavier_uniform_(w)
    return nn.Parameter(w)


class _AttentionBase(MultiHeadScores, nn.Module):
    """Queries and keys of ``num_heads`` heads of ``dim / num_heads`` channels each."""

    def __init__(self, dim: int, num_heads: int, beta: float | None = None,
                 exclude_self: bool = False, drop: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = _head_dim(dim, num_heads)
        self.beta = float(beta) if beta is not None else 1.0 / math.sqrt(self.head_dim)
        self.exclude_self = bool(exclude_self)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    # Each kind says where these live (Parameters or maps of its Parameters).
    query_weight: Tensor
    key_weight: Tensor
    value_weight: Tensor
    out_weight: Tensor

    @property
    def key_out_weight(self) -> Tensor | None:
        """The key term's output map ``[D, H·Y]`` (its values are ``W_Q g``); ``None``: no
        key term."""
        return None

    def forward(self, g: Tensor) -> Tensor:
        """Query term ``Σ_B p_AB W_O W_V g_B`` plus, where there is one, the key term
        ``Σ_C p_CA K_out W_Q g_C``."""
        q, k = self.queries_keys(g)
        p = attention_scores(q, k, self.beta, self.exclude_self).softmax(-1)
        v = split_heads(g @ self.value_weight.t(), self.num_heads)
        out = merge_heads(p @ v) @ self.out_weight.t()
        key_out = self.key_out_weight
        if key_out is not None:
            out = out + merge_heads(p.transpose(-2, -1) @ q) @ key_out.t()
        return self.drop(out)

    def penalty(self) -> Tensor:
        """Squared norm of the breaking matrices (zero if there are none)."""
        return self.query_weight.new_zeros(())

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, heads={self.num_heads}, beta={self.beta:.4g}, "
                f"exclude_self={self.exclude_self}")


class EnergyAttention(_AttentionBase):
    """The energy attention of the Energy Transformer: exactly ``−∂E_att/∂g``.

    The queries and keys live in :attr:`synapse` (the HAM library's
    :class:`~hamixer.ham.attention.AttentionSynapse`), whose closed-form update is the forward
    pass; its energy is the block's attention energy.
    """

    def __init__(self, dim: int, num_heads: int, beta: float | None = None,
                 exclude_self: bool = False, drop: float = 0.0) -> None:
        super().__init__(dim, num_heads, beta, exclude_self, drop)
        self.synapse = AttentionSynapse("visible", torch.empty(dim, dim), torch.empty(dim, dim),
                                        num_heads, self.beta, exclude_self)
        nn.init.xavier_uniform_(self.synapse.query_weight)
        nn.init.xavier_uniform_(self.synapse.key_weight)

    @property
    def query_weight(self) -> Tensor:  # type: ignore[override]
        return self.synapse.query_weight

    @property
    def key_weight(self) -> Tensor:  # type: ignore[override]
        return self.synapse.key_weight

    @property
    def value_weight(self) -> Tensor:  # type: ignore[override]
        return self.key_weight

    @property
    def out_weight(self) -> Tensor:  # type: ignore[override]
        return self.query_weight.t()

    @property
    def key_out_weight(self) -> Tensor:
        return self.key_weight.t()

    def forward(self, g: Tensor) -> Tensor:
        return self.drop(self.synapse.update(g))

    def energy(self, g: Tensor) -> Tensor:
        """``E_att`` of normalized tokens ``g``, ``[B]``."""
        return self.attention_energy(g)


class FreeAttention(_AttentionBase):
    """Ordinary multi-head attention with independent Q, K, V and output maps, no biases."""

    def __init__(self, dim: int, num_heads: int, beta: float | None = None,
                 exclude_self: bool = False, drop: float = 0.0) -> None:
        super().__init__(dim, num_heads, beta, exclude_self, drop)
        self.query_weight = _xavier(dim, dim)
        self.key_weight = _xavier(dim, dim)
        self.value_weight = _xavier(dim, dim)
        self.out_weight = _xavier(dim, dim)

    def forward(self, g: Tensor) -> Tensor:
        if self.exclude_self:
            return super().forward(g)
        q, k = self.queries_keys(g)
        v = split_heads(g @ self.value_weight.t(), self.num_heads)
        # PyTorch's fused attention: the same function as the explicit softmax
        out = F.scaled_dot_product_attention(q, k, v, scale=self.beta)
        return self.drop(merge_heads(out) @ self.out_weight.t())


class AsymmetricAttention(_AttentionBase):
    """Energy attention plus breaking matrices on its output-side maps (AsymFormer)."""

    def __init__(self, dim: int, num_heads: int, beta: float | None = None,
                 exclude_self: bool = False, drop: float = 0.0) -> None:
        super().__init__(dim, num_heads, beta, exclude_self, drop)
        self.query_weight = _xavier(dim, dim)
        self.key_weight = _xavier(dim, dim)
        self.value_breaking = _xavier(dim, dim)
        self.out_breaking = _xavier(dim, dim)
        self.key_out_breaking = _xavier(dim, dim)

    @property
    def value_weight(self) -> Tensor:  # type: ignore[override]
        return self.key_weight + self.value_breaking

    @property
    def out_weight(self) -> Tensor:  # type: ignore[override]
        return self.query_weight.t() + self.out_breaking

    @property
    def key_out_weight(self) -> Tensor:
        return self.key_weight.t() + self.key_out_breaking

    def penalty(self) -> Tensor:
        return (self.value_breaking.pow(2).sum() + self.out_breaking.pow(2).sum()
                + self.key_out_breaking.pow(2).sum())

    @classmethod
    @torch.no_grad()
    def started_from(cls, other: _AttentionBase) -> AsymmetricAttention:
        """An AsymmetricAttention computing ``other``'s function (its heads, β, dropout and
        the breaking of :meth:`start_from_`), built without drawing from the random
        stream."""
        with torch.device("meta"):  # the Xavier draws of a fresh one would be overwritten
            attn = cls(other.dim, other.num_heads, beta=other.beta,
                       exclude_self=other.exclude_self)
        weight = other.query_weight
        attn = attn.to_empty(device=weight.device).to(dtype=weight.dtype)
        attn.drop = other.drop
        attn.start_from_(other)
        return attn

    @torch.no_grad()
    def start_from_(self, other: _AttentionBase) -> None:
        """Take ``other``'s queries and keys and the breaking that makes this attention
        compute ``other``'s function: zero for energy attention, ``W_V − W_K``,
        ``W_O − W_Qᵀ`` and ``−W_Kᵀ`` (no key term) for free attention."""
        self.query_weight.copy_(other.query_weight)
        self.key_weight.copy_(other.key_weight)
        self.value_breaking.copy_(other.value_weight - other.key_weight)
        self.out_breaking.copy_(other.out_weight - other.query_weight.t())
        key_out = other.key_out_weight
        target = torch.zeros_like(self.key_out_breaking) if key_out is None else key_out
        self.key_out_breaking.copy_(target - other.key_weight.t())


ATTENTION_TYPES: dict[str, type[_AttentionBase]] = {
    "energy": EnergyAttention,
    "free": FreeAttention,
    "asymmetric": AsymmetricAttention,
}
