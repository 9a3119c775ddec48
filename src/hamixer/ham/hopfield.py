"""Modern Hopfield layers (Ramsauer et al. 2020) as HAMs with an exact energy.

A state pattern ξ ∈ R^d and stored patterns K ``[P, d]`` form the two-layer HAM of
:mod:`hamixer.ham.core`: an identity visible layer (ξ) and a memory layer of P units with
Lagrangian L, joined by the synapse ``−fᵀ K ξ``. With the memory layer at its equilibrium,

    E(ξ) = ½ ξ·ξ − L(K ξ)          L = β⁻¹ log Σ_μ exp(β k_μ·ξ)  (default: softmax(β))

and the update is the unit gradient step

    ξ ← ξ − ∂E/∂ξ = Kᵀ ∇L(Kξ) = Kᵀ softmax(β K ξ),

the concave-convex step, so E never rises for a convex L. ``∇L(Kξ)`` is the attention map.
Ramsauer's energy adds the constants ``β⁻¹ log P + ½ max_μ |k_μ|²`` (E ≥ 0); they are left out.

The layers follow ml-jku/hopfield-layers: inputs are batch-first ``[B, P, d]`` stored
patterns, ``[B, S, d]`` state patterns and ``[B, P, d_v]`` pattern projections (the values
read out at the retrieved state); ``scaling`` is β, ``update_steps_max`` / ``update_steps_eps``
bound the updates. Unlike there, a layer without ``hidden_size`` has no learned maps: its
energy is that of the patterns themselves. ``hidden_size`` adds query/key/value/output maps
(``num_heads`` heads, each a memory in its own association space; energies add).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .core import HAM, Neurons, Synapse
from .lagrangians import IdentityLagrangian, Lagrangian, SoftmaxLagrangian

#: Cap of ``update_steps_max=None`` (until the tolerance is met).
MAX_UPDATE_STEPS = 10_000


class PatternSynapse(Synapse):
    """``E = −fᵀ K ξ`` with stored patterns given per group: ``keys`` ``[G, P, d]``.

    The visible layer holds one state ``[1, d]`` per sample, the memory layer ``[1, P]``; the
    batch is G groups of ``B / G`` samples sharing one set of keys (so no key is copied).
    """

    def __init__(self, pre: str, post: str, keys: Tensor) -> None:
        super().__init__(pre, post)
        if keys.dim() != 3:
            raise ValueError(f"keys must be [G, P, d], got {tuple(keys.shape)}")
        self.keys = keys

    def drive(self, g_pre: Tensor) -> Tensor:
        groups, count, dim = self.keys.shape
        grouped = g_pre.reshape(groups, -1, dim)
        return (grouped @ self.keys.transpose(-1, -2)).reshape(-1, 1, count)

    def energy(self, g_pre: Tensor, g_post: Tensor) -> Tensor:
        return -(g_post * self.drive(g_pre)).flatten(1).sum(-1)


def _flatten(state: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
    """``state`` ``[..., S, d]`` and ``keys`` ``[..., P, d]`` as ``[G·S, 1, d]``, ``[G, P, d]``."""
    if state.shape[:-2] != keys.shape[:-2] or state.shape[-1] != keys.shape[-1]:
        raise ValueError(f"state {tuple(state.shape)} and stored patterns {tuple(keys.shape)} "
                         "need the same leading dimensions and pattern size")
    return state.reshape(-1, 1, state.shape[-1]), keys.reshape(-1, *keys.shape[-2:])


def memory_ham(keys: Tensor, lagrangian: Lagrangian) -> HAM:
    """The two-layer HAM (identity visible, memory with ``lagrangian``) of keys ``[G, P, d]``."""
    _, count, dim = keys.shape
    return HAM({"state": Neurons([1, dim], IdentityLagrangian()),
                "memory": Neurons([1, count], lagrangian)},
               {"patterns": PatternSynapse("state", "memory", keys)})


def association_energy(state: Tensor, keys: Tensor, lagrangian: Lagrangian) -> Tensor:
    """``E(ξ) = ½ξ·ξ − L(Kξ)`` of each state pattern: ``[..., S]``, by the HAM's energy."""
    flat, groups = _flatten(state, keys)
    ham = memory_ham(groups, lagrangian)
    states = ham.equilibrium_hidden({"state": flat, "memory": flat.new_zeros(())}, "state")
    return ham.energy(states).reshape(state.shape[:-1])


def association(state: Tensor, keys: Tensor, lagrangian: Lagrangian) -> Tensor:
    """The memory layer's activation ``∇L(Kξ)``, ``[..., S, P]``: the attention map."""
    return lagrangian.activation(state @ keys.transpose(-1, -2))


def association_update(state: Tensor, keys: Tensor, lagrangian: Lagrangian) -> Tensor:
    """``ξ − ∂E/∂ξ = Kᵀ ∇L(Kξ)``: one update of every state pattern."""
    return association(state, keys, lagrangian) @ keys


def retrieve(state: Tensor, keys: Tensor, lagrangian: Lagrangian, max_steps: int | None = 1,
             eps: float = 1e-4) -> tuple[Tensor, int]:
    """Update until no state entry moves by more than ``eps`` or after ``max_steps`` updates
    (``None``: until then, at most :data:`MAX_UPDATE_STEPS`). Returns the states and the
    number of updates made."""
    limit = MAX_UPDATE_STEPS if max_steps is None else int(max_steps)
    if limit < 0 or eps <= 0:
        raise ValueError(f"need update_steps_max >= 0 and update_steps_eps > 0, got {max_steps}, "
                         f"{eps}")
    steps = 0
    while steps < limit:
        new = association_update(state, keys, lagrangian)
        steps += 1
        moved = (new - state).abs().max()
        state = new
        if moved <= eps:
            break
    return state, steps


class Hopfield(nn.Module):
    """Hopfield association of state patterns with stored patterns (one call's own memory).

    ``forward(input)``: ``input`` is one tensor ``[B, P, d]`` (stored, state and projection at
    once: self-association) or a tuple ``(stored, state)`` or ``(stored, state, projection)``;
    it returns ``[B, S, d_v]``, the projection read out at the retrieved states.
    ``lagrangian`` replaces the memory's softmax(β) (e.g. ``RePULagrangian(3)``: a dense
    polynomial memory; then ``scaling`` must stay None).
    """

    def __init__(self, input_size: int | None = None, hidden_size: int | None = None,
                 output_size: int | None = None, num_heads: int = 1,
                 scaling: float | None = None, update_steps_max: int | None = 0,
                 update_steps_eps: float = 1e-4, lagrangian: Lagrangian | None = None,
                 stored_pattern_size: int | None = None,
                 pattern_projection_size: int | None = None, bias: bool = True) -> None:
        super().__init__()
        if lagrangian is not None and scaling is not None:
            raise ValueError("give either scaling (β of the softmax) or a lagrangian, not both")
        if scaling is not None and not scaling > 0:
            raise ValueError(f"scaling must be > 0, got {scaling}")
        if num_heads < 1 or (num_heads > 1 and hidden_size is None):
            raise ValueError("several heads need learned maps: give hidden_size")
        if hidden_size is not None and input_size is None:
            raise ValueError("hidden_size (learned maps) needs input_size")
        if update_steps_max is not None and update_steps_max < 0 or update_steps_eps <= 0:
            raise ValueError("need update_steps_max >= 0 (or None) and update_steps_eps > 0")
        self.input_size, self.hidden_size, self.num_heads = input_size, hidden_size, num_heads
        self.scaling, self.lagrangian = scaling, lagrangian
        self.update_steps_max, self.update_steps_eps = update_steps_max, float(update_steps_eps)
        if hidden_size is None or input_size is None:  # (input_size is given: checked above)
            self.query = self.key = self.value = self.out = None
        else:
            width = hidden_size * num_heads
            self.query = nn.Linear(input_size, width, bias=bias)
            self.key = nn.Linear(stored_pattern_size or input_size, width, bias=bias)
            self.value = nn.Linear(pattern_projection_size or input_size, width, bias=bias)
            self.out = nn.Linear(width, output_size or input_size, bias=bias)

    # ------------------------------------------------------------- patterns
    @staticmethod
    def _split(input: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor]:
        if isinstance(input, Tensor):
            return input, input, input
        if len(input) == 2:
            return input[0], input[1], input[0]
        if len(input) == 3:
            return input[0], input[1], input[2]
        raise ValueError("input must be a tensor or (stored, state[, projection])")

    def _heads(self, x: Tensor, linear: nn.Linear | None) -> Tensor:
        """``[B, L, ·]`` → ``[B, H, L, h]`` in the association space."""
        if x.dim() != 3:
            raise ValueError(f"patterns must be batch-first [B, L, d], got {tuple(x.shape)}")
        if linear is None:
            return x.unsqueeze(1)
        y = linear(x)
        return y.reshape(*y.shape[:2], self.num_heads, -1).transpose(1, 2)

    def patterns(self, input: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor]:
        """Keys ``[B, H, P, h]``, initial states ``[B, H, S, h]`` and values ``[B, H, P, h_v]``."""
        stored, state, projection = self._split(input)
        if stored.shape[:2] != projection.shape[:2] or stored.shape[0] != state.shape[0]:
            raise ValueError(f"stored {tuple(stored.shape)}, state {tuple(state.shape)} and "
                             f"projection {tuple(projection.shape)} patterns do not match")
        return (self._heads(stored, self.key), self._heads(state, self.query),
                self._heads(projection, self.value))

    def memory_lagrangian(self, dim: int) -> Lagrangian:
        """The memory layer's Lagrangian; β defaults to 1/√(association dimension)."""
        if self.lagrangian is not None:
            return self.lagrangian
        return SoftmaxLagrangian(self.scaling or 1.0 / math.sqrt(dim))

    # ------------------------------------------------------------- memory
    def energy(self, input: Tensor | tuple[Tensor, ...]) -> Tensor:
        """Energy of each state pattern as given (summed over heads): ``[B, S]``."""
        keys, state, _ = self.patterns(input)
        return association_energy(state, keys, self.memory_lagrangian(keys.shape[-1])).sum(1)

    def update_steps(self, input: Tensor | tuple[Tensor, ...]
                     ) -> tuple[Tensor, Tensor, Tensor, int]:
        """The retrieved states ``[B, H, S, h]``, the keys, the values and the number of
        updates made."""
        keys, state, values = self.patterns(input)
        state, steps = retrieve(state, keys, self.memory_lagrangian(keys.shape[-1]),
                                self.update_steps_max, self.update_steps_eps)
        return state, keys, values, steps

    def get_association_matrix(self, input: Tensor | tuple[Tensor, ...]) -> Tensor:
        """The attention map at the retrieved states: ``[B, H, S, P]``."""
        state, keys, _, _ = self.update_steps(input)
        return association(state, keys, self.memory_lagrangian(keys.shape[-1]))

    def forward(self, input: Tensor | tuple[Tensor, ...]) -> Tensor:
        state, keys, values, _ = self.update_steps(input)
        out = association(state, keys, self.memory_lagrangian(keys.shape[-1])) @ values
        if self.out is None:
            return out.squeeze(1)
        return self.out(out.transpose(1, 2).flatten(2))

    def extra_repr(self) -> str:
        return (f"hidden_size={self.hidden_size}, num_heads={self.num_heads}, "
                f"scaling={self.scaling}, update_steps_max={self.update_steps_max}")


class HopfieldLayer(Hopfield):
    """A memory of ``quantity`` learned stored patterns queried by the input ``[B, S, d]``.

    ``lookup_weights_as_separated``: read out separate learned targets (a learned key→value
    table) instead of the stored patterns themselves.
    """

    def __init__(self, input_size: int, quantity: int = 1,
                 lookup_weights_as_separated: bool = False,
                 lookup_targets_as_trainable: bool = True, trainable: bool = True,
                 **kwargs) -> None:
        super().__init__(input_size=input_size, **kwargs)
        if quantity < 1:
            raise ValueError(f"quantity must be >= 1, got {quantity}")
        self.lookup_weights = nn.Parameter(torch.randn(1, quantity, input_size) * 0.02,
                                           requires_grad=trainable)
        self.target_weights = None if not lookup_weights_as_separated else nn.Parameter(
            torch.randn(1, quantity, input_size) * 0.02, requires_grad=lookup_targets_as_trainable)

    def _lookup(self, input: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor]:
        if not isinstance(input, Tensor):
            raise ValueError("a HopfieldLayer takes one tensor of state patterns [B, S, d]")
        batch = input.shape[0]
        stored = self.lookup_weights.expand(batch, -1, -1)
        targets = stored if self.target_weights is None else \
            self.target_weights.expand(batch, -1, -1)
        return stored, input, targets

    def patterns(self, input: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor]:
        return super().patterns(self._lookup(input))


class HopfieldPooling(Hopfield):
    """``quantity`` learned state patterns that query the input ``[B, P, d]`` (or a tuple
    ``(stored, projection)``) as stored patterns; returns ``[B, quantity·d_out]``."""

    def __init__(self, input_size: int, quantity: int = 1, trainable: bool = True,
                 **kwargs) -> None:
        super().__init__(input_size=input_size, **kwargs)
        if quantity < 1:
            raise ValueError(f"quantity must be >= 1, got {quantity}")
        self.pooling_weights = nn.Parameter(torch.randn(1, quantity, input_size) * 0.02,
                                            requires_grad=trainable)

    def patterns(self, input: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor]:
        if isinstance(input, Tensor):
            stored = projection = input
        elif len(input) == 2:
            stored, projection = input
        else:
            raise ValueError("a HopfieldPooling takes stored patterns or (stored, projection)")
        queries = self.pooling_weights.expand(stored.shape[0], -1, -1)
        return super().patterns((stored, queries, projection))

    def forward(self, input: Tensor | tuple[Tensor, ...]) -> Tensor:
        return super().forward(input).flatten(1)
