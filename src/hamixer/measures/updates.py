"""How training moved each two-layer MLP away from its initial weights.

The symmetry measures of :mod:`hamixer.measures.symmetry` say where W1 and W2 *are*; these
say how they *moved*. With ``ΔW1 = W1 − W1₀`` and ``ΔW2 = W2 − W2₀`` (W2 the effective output
matrix, ``W1ᵀ + W̃`` in AsymMixer):

* ``update_cosine``: cos(ΔW2, ΔW1ᵀ). 1 for a tied MLP, whose W2 moves exactly as W1ᵀ does;
  about 0 when the two matrices are updated independently, as in a free Mixer. AsymMixer's
  W2 = W1ᵀ + W̃ carries every update of W1 along with W̃'s own, so it lies in between even
  without a penalty on W̃: the parametrization alone couples the two moves.
* ``w1_moved``, ``w2_moved``: ‖ΔW1‖/‖W1₀‖ and ‖ΔW2‖/‖W2₀‖, how far each matrix went.

Training logs them every epoch and ``hamixer symmetry RUN --since-init`` measures a checkpoint
(:mod:`hamixer.experiments.weight_updates`, which also rebuilds a run's initial weights).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import HamixerError
from ..models.find_layers import find_mlps
from .symmetry import weight_symmetry

UPDATE_MEASURES = ("update_cosine", "w1_moved", "w2_moved")


@torch.no_grad()
def weight_update(w1_0: Tensor, w2_0: Tensor, w1: Tensor, w2: Tensor) -> dict[str, float]:
    """The measures above for one MLP, from its initial and its trained ``W1``, ``W2``."""
    d1, d2 = (w1 - w1_0).double(), (w2 - w2_0).double()
    # the update pair's own cos(W2, W1ᵀ); nan when either matrix has not moved
    cosine = weight_symmetry(d1, d2)["cosine"]
    return {"update_cosine": cosine, "w1_moved": (d1.norm() / w1_0.double().norm()).item(),
            "w2_moved": (d2.norm() / w2_0.double().norm()).item()}


def snapshot(model: nn.Module) -> list[tuple[Tensor, Tensor]]:
    """Copies of (W1, W2) of every MLP of ``model``, in module order."""
    with torch.no_grad():
        return [(layer.w1.detach().clone(), layer.w2.detach().clone())
                for layer in find_mlps(model)]


def model_weight_updates(initial: nn.Module | list[tuple[Tensor, Tensor]],
                         trained: nn.Module) -> list[dict[str, Any]]:
    """One row per MLP of ``trained``: ``{"block", "mlp", "module", **measures}``, then one
    ``"block": "mean"`` row per part (token, channel, …) over the blocks. ``initial``: the
    starting model or its :func:`snapshot` (matched in module order, so a model wrapped for
    DistributedDataParallel matches its plain rebuild)."""
    start = snapshot(initial) if isinstance(initial, nn.Module) else initial
    layers = find_mlps(trained)
    rows: list[dict[str, Any]] = []
    per_part: dict[str, list[dict[str, Any]]] = {}
    for k, layer in enumerate(layers):
        if k >= len(start) or start[k][0].shape != layer.w1.shape:
            raise HamixerError(f"the initial model has no MLP like {layer.path}")
        w1_0, w2_0 = (w.to(layer.w1.device) for w in start[k])
        row = {"block": layer.block, "mlp": layer.part, "module": layer.path,
               **weight_update(w1_0, w2_0, layer.w1, layer.w2)}
        rows.append(row)
        if layer.block is not None:
            per_part.setdefault(layer.part, []).append(row)
    for part, group in per_part.items():
        rows.append({"block": "mean", "mlp": part, **{
            m: sum(r[m] for r in group) / len(group) for m in UPDATE_MEASURES}})
    return rows
