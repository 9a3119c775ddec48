"""Dense associative memory on ±1 states (Krotov & Hopfield 2016; Demircigil et al. 2017).

A two-layer HAM (:mod:`hamixer.ham.core`): N visible units σ ∈ {±1}ᴺ and one memory unit per
stored pattern ξ_μ (the rows of ``patterns``, ``[P, N]``), joined by the dense synapse
``−fᵀ X σ``. With the memory layer at its equilibrium ``h = Xσ`` (the adiabatic limit) and the
visible Lagrangian ``|x|`` (activation sign, Legendre term 0 on ±1 states), the energy is

    E(σ) = −F(Xσ)     (F: the memory layer's Lagrangian, summed over its P units)

* ``F = x²/2`` (:class:`IdentityLagrangian`): the classical Hopfield network,
  ``E = −½ σᵀWσ`` with Hebbian weights ``W = XᵀX``;
* ``F = xⁿ/n`` (:class:`PolynomialLagrangian`) or RePU(n): Krotov & Hopfield's dense memory,
  whose capacity grows as N^{n−1};
* ``F = β⁻¹ log Σ_μ exp(β x_μ)`` (:class:`SoftmaxLagrangian`): Demircigil et al.'s exponential
  memory (the log is monotone, so the updates are those of ``−Σ exp(β ξ_μ·σ)``).

A unit takes the sign that lowers E with the others held: ``σ_i ← sign(h_i)`` with the field
``h_i = −[E(σ_i = +1) − E(σ_i = −1)] / 2``, the discrete ``−∂E/∂σ_i``. For n = 2 it is
``(W − diag W) σ``: the Hebbian rule without self-coupling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from .core import HAM, DenseSynapse, Neurons
from .lagrangians import IdentityLagrangian, Lagrangian, SoftmaxLagrangian

UPDATE_MODES = ("sync", "async")


class PolynomialLagrangian(Lagrangian):
    """``L = (1/n) Σ xⁿ``, ``g = xⁿ⁻¹`` (integer n ≥ 2): Krotov & Hopfield's separation function.

    Convex for even n only; on ±1 states (where it is used) convexity is not needed, and an odd
    n makes a pattern's negative a non-memory. n = 2 is :class:`IdentityLagrangian`.
    """

    def __init__(self, n: int = 3) -> None:
        super().__init__()
        if int(n) != n or n < 2:
            raise ValueError(f"the polynomial degree must be an integer >= 2, got {n}")
        self.n = int(n)

    def density(self, x: Tensor) -> Tensor:
        return x.pow(self.n) / self.n

    def activation(self, x: Tensor) -> Tensor:
        return x.pow(self.n - 1)

    def extra_repr(self) -> str:
        return f"n={self.n}"


class SignLagrangian(Lagrangian):
    """``L = Σ |x|``, ``g = sign(x)``: binary units (Legendre term ``x·g − L = 0``)."""

    def density(self, x: Tensor) -> Tensor:
        return x.abs()

    def activation(self, x: Tensor) -> Tensor:
        return torch.sign(x)


@dataclass
class Retrieval:
    """Result of :meth:`DenseAssociativeMemory.update_steps`: final states ``[B, N]``, steps
    taken, whether each sample changed at most ``tol·N`` units in its last step, and whether
    it is in a 2-cycle (synchronous updates only: the state of two steps before came back)."""

    state: Tensor
    steps: int
    converged: Tensor
    cycling: Tensor


class DenseAssociativeMemory(nn.Module):
    """Binary dense associative memory with stored ``patterns`` ``[P, N]`` (±1) and memory
    Lagrangian ``lagrangian`` (default: the classical Hopfield network, ``F = x²/2``)."""

    # buffers and the submodule, typed for the checker (nn.Module's attributes are untyped)
    patterns: Tensor
    _positive: Tensor
    _negative: Tensor
    lagrangian: Lagrangian

    def __init__(self, patterns: Tensor, lagrangian: Lagrangian | None = None) -> None:
        super().__init__()
        if patterns.dim() != 2:
            raise ValueError(f"patterns must be [P, N], got {tuple(patterns.shape)}")
        if not bool((patterns.abs() == 1).all()):
            raise ValueError("a binary memory stores ±1 patterns")
        self.lagrangian = IdentityLagrangian() if lagrangian is None else lagrangian
        probe = torch.zeros(2, 3, dtype=patterns.dtype)
        self._softmax = isinstance(self.lagrangian, SoftmaxLagrangian)
        if not self._softmax and self.lagrangian.density(probe).shape != probe.shape:
            raise ValueError("the memory Lagrangian must be separable (one value per unit) or "
                             f"softmax, got {type(self.lagrangian).__name__}")
        if self._softmax and self.lagrangian.axis != -1:
            raise ValueError("the softmax memory Lagrangian must act on the last axis")
        self.register_buffer("patterns", patterns)
        # Which patterns are +1 / −1 at each unit: the flips below are sums over these two
        # sets, so no field is the difference of two nearly equal numbers.
        self.register_buffer("_positive", (patterns > 0).to(patterns.dtype), persistent=False)
        self.register_buffer("_negative", (patterns < 0).to(patterns.dtype), persistent=False)

    @property
    def num_patterns(self) -> int:
        return self.patterns.shape[0]

    @property
    def num_units(self) -> int:
        return self.patterns.shape[1]

    def as_ham(self) -> HAM:
        """The two-layer HAM whose energy, memory layer at equilibrium, is :meth:`energy`."""
        p, n = self.patterns.shape
        return HAM({"visible": Neurons([n], SignLagrangian()),
                    "memory": Neurons([p], self.lagrangian)},
                   {"patterns": DenseSynapse("visible", "memory", self.patterns.clone())})

    def overlaps(self, state: Tensor) -> Tensor:
        """``ξ_μ·σ / N`` for every pattern: ``[B, P]``."""
        return state @ self.patterns.t() / self.num_units

    def energy(self, state: Tensor) -> Tensor:
        """``E(σ) = −F(Xσ)`` of each sample ``[B]``."""
        return -self._lagrangian_value(state @ self.patterns.t())

    def _lagrangian_value(self, h: Tensor) -> Tensor:
        return self.lagrangian.value(h, 1)

    def fields(self, state: Tensor) -> Tensor:
        """``h_i = −[E(σ_i=+1) − E(σ_i=−1)]/2`` for every unit at once, ``[B, N]``."""
        h = state @ self.patterns.t()
        return state * self._flip_energy_change(state, h) / 2

    def _flip_energy_change(self, state: Tensor, h: Tensor) -> Tensor:
        """``E(σ with unit i flipped) − E(σ)`` for every i, by two matrix products.

        Flipping unit i moves overlap μ by ``−2b`` with ``b = σ_i ξ_μi = ±1``: up for the
        patterns of ``_negative`` where σ_i = +1, for those of ``_positive`` where σ_i = −1.
        """
        plus = state > 0

        def moved(up: Tensor, down: Tensor) -> Tensor:
            # Σ over patterns whose overlap rises by 2 (b = −1) and falls by 2 (b = +1).
            rises = torch.where(plus, up @ self._negative, up @ self._positive)
            falls = torch.where(plus, down @ self._positive, down @ self._negative)
            return rises + falls

        if self._softmax:
            beta = cast(SoftmaxLagrangian, self.lagrangian).beta
            top = h.max(dim=-1, keepdim=True).values + 1  # exponents stay within ±β of 0
            total = torch.exp(beta * (h - top)).sum(-1, keepdim=True)
            flipped = moved(torch.exp(beta * (h + 2 - top)), torch.exp(beta * (h - 2 - top)))
            return -(torch.log(flipped) - torch.log(total)) / beta
        # Separable F: the same sums as ``moved`` in one product, Σ_rise up + Σ_fall down =
        # ½Σ(up + down) + ½σ_i·((down − up)·ξ_i) (no cancellation worse than F's own size).
        f = self.lagrangian.density
        f0 = f(h)
        up, down = f(h + 2) - f0, f(h - 2) - f0
        both = (up + down).sum(-1, keepdim=True)
        return -(both + state * ((down - up) @ self.patterns)) / 2

    def _flip_change(self, h: Tensor, flipped: Tensor) -> Tensor:
        """``E(flipped overlaps) − E(h)`` per sample, without subtracting two large sums."""
        if self._softmax:
            return self._lagrangian_value(h) - self._lagrangian_value(flipped)
        f = self.lagrangian.density
        return (f(h) - f(flipped)).sum(-1)

    def step(self, state: Tensor) -> Tensor:
        """One synchronous update: every unit takes the sign of its field (ties keep it)."""
        h = self.fields(state)
        return torch.where(h > 0, 1.0, torch.where(h < 0, -1.0, state)).to(state.dtype)

    def sweep(self, state: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One asynchronous sweep: units in a random order, each seeing the others' updates.
        Every flip lowers the energy (the synchronous step has no such guarantee)."""
        state = state.clone()
        h = state @ self.patterns.t()
        order = torch.randperm(self.num_units, generator=generator, device=state.device)
        for i in order.tolist():
            column = self.patterns[:, i]
            flipped = h - 2 * state[:, i:i + 1] * column
            change = self._flip_change(h, flipped)
            new = torch.where(change < 0, -state[:, i], state[:, i])
            moved = new != state[:, i]
            if moved.any():
                h = torch.where(moved[:, None], flipped, h)
                state[:, i] = new
        return state

    def update_steps(self, state: Tensor, max_steps: int = 100, tol: float = 0.0,
                     mode: str = "sync", generator: torch.Generator | None = None) -> Retrieval:
        """Update until no sample changes more than ``tol·N`` units in a step, or ``max_steps``.

        ``mode``: ``"sync"`` (all units at once, one matrix product per step) or ``"async"``
        (random-order sweeps, energy non-increasing). Both have the same fixed points; a
        synchronous run also stops once every sample is at a fixed point or in a 2-cycle.
        """
        if mode not in UPDATE_MODES:
            raise ValueError(f"mode must be one of {UPDATE_MODES}, got {mode!r}")
        if max_steps < 1 or not 0 <= tol < 1:
            raise ValueError(f"need max_steps >= 1 and 0 <= tol < 1, got {max_steps}, {tol}")
        converged = torch.zeros(state.shape[0], dtype=torch.bool, device=state.device)
        cycling = torch.zeros_like(converged)
        state, before, steps = state.clone(), None, 0
        active = torch.arange(state.shape[0], device=state.device)  # samples still moving
        with torch.no_grad():
            for _ in range(max_steps):
                steps += 1
                now = state[active]
                new = self.step(now) if mode == "sync" else self.sweep(now, generator)
                done = (new != now).sum(-1) <= tol * self.num_units
                converged[active] = done
                if before is not None:
                    cycling[active] = ~done & (new == before).all(-1)
                state[active] = new
                keep = ~(converged[active] | cycling[active])
                active, before = active[keep], now[keep]
                if len(active) == 0:
                    break
        return Retrieval(state=state, steps=steps, converged=converged, cycling=cycling)
