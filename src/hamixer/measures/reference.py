"""What an untrained layer scores: the chance level beside every weight-symmetry measure.

A cosine of 0.05 between W2 and W1ᵀ, or a symmetric share of 0.74 of W_Qᵀ W_K, means
nothing until it is set beside what independent random matrices of the same shapes give
(for the shares that is about 0.71, not 0.5 or 0). The reference draws such matrices a few
times with a fixed seed and reports the mean and the standard deviation of each measure.

Entries are i.i.d. standard normal, every matrix with the same variance, as under Xavier
(hamixer's MLPs) or timm's truncated-normal ViT initialisation. Every measure but the
``scale`` of the best fit W2 ≈ a·W1ᵀ is invariant to the scale of each matrix, and with
i.i.d. entries the distribution of the entries does not show in the reported digits. The
reference is that of a *free* layer: for tied (SymMixer) or partly tied (AsymMixer) MLPs it
is the chance level, not the model's own start, which ``init_metrics.json`` records.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

#: Random draws per reference, and the seed of the first; fixed so that references repeat.
REFERENCE_DRAWS = 8
REFERENCE_SEED = 0

Measure = Callable[..., dict[str, float]]


@functools.cache
def random_reference(measure: Measure, shapes: tuple[tuple[int, ...], ...],
                     args: tuple = (), draws: int = REFERENCE_DRAWS,
                     seed: int = REFERENCE_SEED) -> dict[str, tuple[float, float]]:
    """``{name: (mean, std)}`` of ``measure(*matrices, *args)`` over ``draws`` draws of
    independent standard-normal matrices of ``shapes`` (float64). Cached by its arguments,
    so a model whose blocks share their shapes pays for one reference per layer type."""
    gen = torch.Generator().manual_seed(seed)
    values: dict[str, list[float]] = {}
    for _ in range(draws):
        mats = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
        for name, value in measure(*mats, *args).items():
            if isinstance(value, float):
                values.setdefault(name, []).append(value)
    return {name: _mean_std(vs) for name, vs in values.items()}


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)
    return mean, math.sqrt(var)
