"""How training moved each two-layer MLP away from its initial weights, as a run records it:
the measures of :mod:`hamixer.measures.updates` (``update_cosine``, ``w1_moved``,
``w2_moved``) since the run's start.

Training logs them every epoch (:class:`UpdateHook`, keys ``sym/{block}.{part}.{measure}``
and the means ``sym/mean.{part}.{measure}`` beside the symmetry measures); ``hamixer
symmetry RUN --since-init`` measures a checkpoint. Either way the initial weights are the
untrained model's, or, for a resumed run or a checkpoint, rebuilt from the run's seed (the
trainer builds a model from its seed alone: :func:`hamixer.train.setup.initial_model`) and
checked against the measures the run logged at epoch 0.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import HamixerError
from ..measures.updates import UPDATE_MEASURES, model_weight_updates, snapshot
from ..runs import INIT_METRICS, LAST_CHECKPOINT, format_measure, read_init_metrics
from .symmetry import flat_symmetry

UPDATE_HEADS = ("cos(ΔW2, ΔW1ᵀ)", "‖ΔW1‖/‖W1₀‖", "‖ΔW2‖/‖W2₀‖")
#: How close the rebuilt initial weights' measures must be to those the run logged.
REBUILD_TOLERANCE = 1e-6


@contextmanager
def _random_state_kept() -> Iterator[None]:
    """Leave Python's, NumPy's and torch's CPU generators as they were: rebuilding a start
    re-seeds them, and a training hook must not change what the run draws next."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def rebuild_initial_model(meta: dict[str, Any]) -> nn.Module:
    """The model the run of checkpoint ``meta`` (from :func:`load_model`) started from; the
    random generators are left as they were."""
    from ..train.setup import initial_model

    config = meta.get("config") or {}
    if "seed" not in config:
        raise HamixerError(f"{meta['path']} does not record its run's seed, so its initial "
                           "weights cannot be rebuilt")
    start = config.get("initial_checkpoint")
    if start and not Path(start).exists():
        raise HamixerError(f"{meta['path']}: the run started from --initial-checkpoint "
                           f"{start}, which is not there any more")
    with _random_state_kept():
        return initial_model(meta["model"], meta.get("model_kwargs", {}), config["seed"],
                             start)


def check_rebuilt(initial: nn.Module, run_dir: str | Path) -> bool:
    """Compare the rebuilt initial model's symmetry measures with the run's
    ``init_metrics.json``: True if they match, False if the run logged none (nothing to check
    against); raises if they differ, since then the rebuild is not the run's start."""
    logged = read_init_metrics(run_dir) or {}
    rebuilt = flat_symmetry(initial)
    keys = [k for k in rebuilt if k in logged]
    if not keys:
        return False
    worst = max(keys, key=lambda k: abs(rebuilt[k] - logged[k]))
    if abs(rebuilt[worst] - logged[worst]) > REBUILD_TOLERANCE:
        raise HamixerError(f"the initial weights rebuilt from the run's seed do not match the "
                           f"run's epoch-0 measures ({worst}: {rebuilt[worst]:.6g} against "
                           f"{logged[worst]:.6g} in {Path(run_dir) / INIT_METRICS})")
    return True


def format_update_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`model_weight_updates` rows."""
    head = ["block", "mlp", *UPDATE_HEADS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        block = "–" if r["block"] is None else str(r["block"])
        cells = [block, r["mlp"], *(format_measure(r[m], 4) for m in UPDATE_MEASURES)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


class UpdateHook:
    """Per-epoch training hook: the measures above for every MLP since the run's start, as
    flat metrics keys (``sym/{block}.{part}.update_cosine``, …, and ``sym/mean.{part}.…``).

    The start is the model the hook sees at epoch 0; a resumed run's hook first sees a later
    epoch and rebuilds the start from ``run_dir``'s checkpoint instead (checked against the
    run's epoch-0 measures). A run whose start cannot be rebuilt logs no update measures and
    says why once, as a warning."""

    def __init__(self, run_dir: str | Path | None) -> None:
        self.run_dir = Path(run_dir) if run_dir else None
        self.start: list[tuple[Tensor, Tensor]] | None = None
        self.unavailable = False

    def __call__(self, model: nn.Module, epoch: int) -> dict[str, float]:
        if self.start is None and not self.unavailable:
            self.start = snapshot(model) if epoch == 0 else self._rebuilt()
        if self.start is None or epoch == 0:
            return {}  # nothing has moved at epoch 0
        flat: dict[str, float] = {}
        for row in model_weight_updates(self.start, model):
            where = "" if row["block"] is None else f"{row['block']}."
            for m in UPDATE_MEASURES:
                flat[f"sym/{where}{row['mlp']}.{m}"] = row[m]
        return flat

    def _rebuilt(self) -> list[tuple[Tensor, Tensor]] | None:
        from ..train.checkpoint import read_meta

        try:
            if self.run_dir is None:
                raise HamixerError("the run has no directory to rebuild its start from")
            meta = read_meta(self.run_dir / LAST_CHECKPOINT)
            meta["path"] = str(self.run_dir / LAST_CHECKPOINT)
            initial = rebuild_initial_model(meta)
            check_rebuilt(initial, self.run_dir)
        except (HamixerError, OSError, KeyError, ValueError) as err:
            self.unavailable = True
            warnings.warn(f"no update measures (cos(ΔW2, ΔW1ᵀ)) for this resumed run: {err}",
                          stacklevel=2)
            return None
        return snapshot(initial)
