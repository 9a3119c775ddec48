"""Dynamics of an energy model: discrete descent and continuous integration (torchdiffeq).

Two kinds of system share these tools:

* a :class:`~hamixer.ham.core.HAM` with dict states, ``τ_A dx_A/dt = −∂E/∂g_A``;
* any vector field ``f(x)`` on one tensor with an energy ``E(x)`` (a Mixer block:
  ``dx/dt = Tok(g) + Ch(g) − x``, see :mod:`hamixer.models.energy`).

Both return a :class:`Trajectory`: times, states ``[T, B, …]`` and energies ``[T, B]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from .core import HAM, States

FIXED_STEP_METHODS = ("euler", "midpoint", "rk4")
ADAPTIVE_METHODS = ("dopri5", "bosh3", "adaptive_heun")
METHODS = FIXED_STEP_METHODS + ADAPTIVE_METHODS


@dataclass
class Trajectory:
    """``t`` [T]; ``states`` name → [T, B, …] (a single tensor is stored under ``"x"``);
    ``energy`` [T, B]."""

    t: Tensor
    states: dict[str, Tensor]
    energy: Tensor

    @property
    def x(self) -> Tensor:
        return self.states["x"]


def descend(ham: HAM, states: Mapping[str, Tensor], steps: int, step_size: float = 0.1,
            create_graph: bool = False, record: bool = True,
            tau: Mapping[str, float] | None = None) -> tuple[States, Trajectory | None]:
    """``steps`` of ``x_A ← x_A − (α/τ_A)·∂E/∂g_A`` on every layer at once.

    Returns the final states and (if ``record``) the trajectory with the energy at every
    step. ``create_graph=True`` lets a loss on the final states train the weights.
    """
    if steps < 0 or step_size <= 0:
        raise ValueError(f"need steps >= 0 and step_size > 0, got {steps}, {step_size}")
    tau = dict(tau or {})
    states = dict(states)
    history: list[States] = []
    energies: list[Tensor] = []
    for k in range(steps + 1):
        if record:
            history.append({n: s.detach() for n, s in states.items()})
            with torch.no_grad():
                energies.append(ham.energy(states).detach())
        if k == steps:
            break
        grads = ham.grads(states, create_graph=create_graph)
        states = {n: s - (step_size / tau.get(n, 1.0)) * grads[n] for n, s in states.items()}
    if not record:
        return states, None
    traj = Trajectory(
        t=torch.arange(steps + 1, dtype=torch.float64) * step_size,
        states={n: torch.stack([h[n] for h in history]) for n in history[0]},
        energy=torch.stack(energies),
    )
    return states, traj


def _odeint_options(method: str, step_size: float | None, rtol: float, atol: float) -> dict:
    if method not in METHODS:
        raise ValueError(f"unknown ODE method {method!r}; choose one of {', '.join(METHODS)}")
    kw: dict = dict(method=method)
    if method in FIXED_STEP_METHODS:
        if step_size is None or step_size <= 0:
            raise ValueError(f"the fixed-step method {method!r} needs step_size > 0")
        kw["options"] = dict(step_size=step_size)
    else:
        kw.update(rtol=rtol, atol=atol)
    return kw


def integrate(field: Callable[[Tensor], Tensor], x0: Tensor, t: Tensor,
              energy: Callable[[Tensor], Tensor] | None = None, method: str = "dopri5",
              step_size: float | None = None, rtol: float = 1e-6,
              atol: float = 1e-8) -> Trajectory:
    """Integrate ``dx/dt = field(x)`` from ``x0`` and report ``x`` and ``energy(x)`` at ``t``.

    ``method``: a fixed-step solver (``euler``, ``midpoint``, ``rk4``; needs ``step_size``)
    or an adaptive one (``dopri5``, ``bosh3``, ``adaptive_heun``; ``rtol``/``atol``).
    """
    from torchdiffeq import odeint

    kw = _odeint_options(method, step_size, rtol, atol)
    t = t.to(x0)
    with torch.no_grad():
        xs = odeint(lambda _t, x: field(x), x0, t, **kw)
        es = torch.stack([energy(x) for x in xs]) if energy is not None else \
            xs.new_full((len(t), x0.shape[0]), float("nan"))
    return Trajectory(t=t, states={"x": xs}, energy=es)


def integrate_ham(ham: HAM, states: Mapping[str, Tensor], t: Tensor, method: str = "dopri5",
                  step_size: float | None = None, rtol: float = 1e-6, atol: float = 1e-8,
                  tau: Mapping[str, float] | None = None) -> Trajectory:
    """Integrate ``τ_A dx_A/dt = −∂E/∂g_A`` for all layers of ``ham`` at once."""
    from torchdiffeq import odeint

    kw = _odeint_options(method, step_size, rtol, atol)
    names = list(ham.neurons)
    tau = dict(tau or {})
    x0 = tuple(states[n] for n in names)

    def field(_t: Tensor, xs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        grads = ham.grads(dict(zip(names, xs, strict=True)))
        return tuple(-grads[n] / tau.get(n, 1.0) for n in names)

    t = t.to(x0[0])
    with torch.no_grad():
        xs = odeint(field, x0, t, **kw)
        traj_states = dict(zip(names, xs, strict=True))
        es = torch.stack([ham.energy({n: traj_states[n][k] for n in names})
                          for k in range(len(t))])
    return Trajectory(t=t, states=traj_states, energy=es)
