"""Energy attention: the attention synapse of the Energy Transformer (THEORY §8).

Tokens ``g_A ∈ R^D`` (``A = 1..N``) of one visible layer interact through H heads of
queries and keys, ``Q_hC = W_Q^h g_C`` and ``K_hB = W_K^h g_B`` (``W^h ∈ R^{Y×D}``):

    E_att = −(1/β) Σ_h Σ_C log Σ_B exp(β K_hBᵀ Q_hC)

(Hoover et al., NeurIPS 2023, arXiv:2302.07253). The log-sum-exp is a hidden layer with a
softmax Lagrangian integrated out, so this is a synapse of the visible layer with itself.
With ``p^h_CB = softmax_B(β K_hBᵀ Q_hC)`` (token C's attention over B) its negative gradient is

    −∂E_att/∂g_A = Σ_h [ Σ_B p^h_AB W_Q^hᵀ W_K^h g_B  +  Σ_C p^h_CA W_K^hᵀ W_Q^h g_C ]

the *query term* (ordinary attention whose value–output map is tied, W_O W_V = W_Qᵀ W_K) plus
the *key term* (A as the one attended), which ordinary attention lacks. ``exclude_self``
drops ``B = C`` from the inner sum, as ET does; either choice is an exact energy.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .core import Synapse, _as_parameter


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """``[B, N, H·Y] → [B, H, N, Y]``."""
    b, n, _ = x.shape
    return x.reshape(b, n, num_heads, -1).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """``[B, H, N, Y] → [B, N, H·Y]``."""
    b, h, n, y = x.shape
    return x.transpose(1, 2).reshape(b, n, h * y)


def attention_scores(q: Tensor, k: Tensor, beta: float, exclude_self: bool) -> Tensor:
    """``β Q Kᵀ`` per head, ``[B, H, N_query, N_key]``, with ``−inf`` on the diagonal when
    ``exclude_self`` (a token does not attend to itself)."""
    scores = beta * (q @ k.transpose(-2, -1))
    if exclude_self:
        n = scores.shape[-1]
        eye = torch.eye(n, dtype=torch.bool, device=scores.device)
        scores = scores.masked_fill(eye, float("-inf"))
    return scores


class MultiHeadScores:
    """Queries, keys, scores and their log-sum-exp for ``num_heads`` heads: what every
    attention of tokens ``g`` ``[B, N, D]`` shares (mixed into :class:`AttentionSynapse` and
    into the Transformers' attention layers, which say where the weights live)."""

    query_weight: Tensor
    key_weight: Tensor
    num_heads: int
    beta: float
    exclude_self: bool

    def queries_keys(self, g: Tensor) -> tuple[Tensor, Tensor]:
        """``Q`` and ``K``, each ``[B, H, N, Y]``, of tokens ``g`` ``[B, N, D]``."""
        q = split_heads(g @ self.query_weight.t(), self.num_heads)
        k = split_heads(g @ self.key_weight.t(), self.num_heads)
        return q, k

    def attention(self, g: Tensor) -> Tensor:
        """The attention map ``p^h_CB`` (rows: queries C, columns: keys B), ``[B, H, N, N]``."""
        q, k = self.queries_keys(g)
        return attention_scores(q, k, self.beta, self.exclude_self).softmax(-1)

    def attention_energy(self, g: Tensor) -> Tensor:
        """``−(1/β) Σ_h Σ_C log Σ_B exp(β K_hBᵀ Q_hC)`` of each sample, ``[B]``."""
        q, k = self.queries_keys(g)
        scores = attention_scores(q, k, self.beta, self.exclude_self)
        return -torch.logsumexp(scores, dim=-1).sum(dim=(-2, -1)) / self.beta


class AttentionSynapse(MultiHeadScores, Synapse):
    """The energy attention of one visible layer of tokens ``[N, D]`` (``pre == post``).

    Args:
        layer: name of the visible layer in a :class:`~hamixer.ham.core.HAM`.
        query_weight: ``W_Q``, ``[H·Y, D]`` (heads stacked along the rows, as a linear layer).
        key_weight: ``W_K``, the same shape.
        num_heads: H.
        beta: inverse temperature; ``None`` gives ``1/√Y``, the scale of ordinary attention.
        exclude_self: drop ``B = C`` from the log-sum-exp (ET's choice).

    The weights become this synapse's parameters (a Parameter is used as it is), so a
    Transformer block that holds the synapse trains them.
    """

    def __init__(self, layer: str, query_weight: Tensor, key_weight: Tensor, num_heads: int,
                 beta: float | None = None, exclude_self: bool = False) -> None:
        super().__init__(layer, layer)
        if query_weight.dim() != 2 or query_weight.shape != key_weight.shape:
            raise ValueError("query and key weights must be 2-D of one shape, got "
                             f"{tuple(query_weight.shape)} and {tuple(key_weight.shape)}")
        if num_heads < 1 or query_weight.shape[0] % num_heads:
            raise ValueError(f"{query_weight.shape[0]} query rows do not split into "
                             f"{num_heads} heads")
        self.query_weight = _as_parameter(query_weight)
        self.key_weight = _as_parameter(key_weight)
        self.num_heads = int(num_heads)
        self.head_dim = query_weight.shape[0] // num_heads
        self.beta = float(beta) if beta is not None else 1.0 / math.sqrt(self.head_dim)
        if self.beta <= 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        self.exclude_self = bool(exclude_self)

    def energy(self, g_pre: Tensor, g_post: Tensor | None = None) -> Tensor:
        """``E_att`` of each sample, ``[B]`` (``g_post`` is the same layer and is ignored)."""
        return self.attention_energy(g_pre)

    def update(self, g: Tensor) -> Tensor:
        """``−∂E_att/∂g`` in closed form (query term + key term), ``[B, N, D]``."""
        q, k = self.queries_keys(g)
        p = attention_scores(q, k, self.beta, self.exclude_self).softmax(-1)
        query_term = merge_heads(p @ k) @ self.query_weight
        key_term = merge_heads(p.transpose(-2, -1) @ q) @ self.key_weight
        return query_term + key_term

    def drive(self, g_pre: Tensor) -> Tensor:
        raise TypeError("an attention synapse drives no hidden layer: its hidden layer (the "
                        "log-sum-exp over keys) is integrated out")

    def extra_repr(self) -> str:
        return (f"heads={self.num_heads}, head_dim={self.head_dim}, beta={self.beta:.4g}, "
                f"exclude_self={self.exclude_self}")

