"""What the repeated blocks do (``n_iter``): the energy of the features a block iterates.

A model built with ``n_iter = n`` applies each block n times with shared weights. For a
SymMixer or SymFormer block each application is one Euler step, of size 1, of the dynamics
whose Lyapunov function is the block's energy (THEORY §2, §4, §8): continuous time descends
the energy, a unit step may or may not. :func:`iterated_energies` measures which: the energy
of every block's features before its first application and after each one, on real inputs.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from ..models.energy import block_energy


@torch.no_grad()
def iterated_energies(model: nn.Module, images: Tensor, pseudo: bool = False
                      ) -> list[list[float]]:
    """Per block: the mean energy (over ``images``) of its input state, then after each of
    its ``model.n_iter`` applications; the block's final state feeds the next block.

    Raises the energy's :class:`ConfigError` for a block without one (``pseudo=True`` takes
    AsymMixer's pseudo-energy, which leaves the breaking matrix out).
    """
    net: Any = model  # a Mixer or a Former: embed, blocks and n_iter, no common base class
    net.eval()
    x = net.embed(images)
    per_block = []
    for block in net.blocks:
        # a parallel block's own energy (a Mixer's or a Transformer's); a serial block has
        # none, and block_energy says so in one line
        energy = getattr(block, "energy", None) or partial(block_energy, block)
        energies = [energy(x, pseudo=pseudo).mean().item()]
        for _ in range(net.n_iter):
            x = block(x)
            energies.append(energy(x, pseudo=pseudo).mean().item())
        per_block.append(energies)
    return per_block


def descent_summary(per_block: list[list[float]]) -> dict[str, Any]:
    """How many of the applications lowered their block's energy, and the largest rise."""
    steps = [(b, k, e[k + 1] - e[k]) for b, e in enumerate(per_block) for k in range(len(e) - 1)]
    rises = [d for _, _, d in steps if d > 0]
    return {"applications": len(steps), "lowered": len(steps) - len(rises),
            "largest_rise": max(rises, default=0.0),
            "total_change": sum(e[-1] - e[0] for e in per_block)}
