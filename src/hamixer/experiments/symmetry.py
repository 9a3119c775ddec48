"""How far a Mixer's MLP weights are from the symmetric (Hopfield) configuration W2 = W1ᵀ.

For one MLP with input matrix ``W1`` ([hidden, in]) and effective output matrix ``W2``
([in, hidden]) the measures are (Frobenius inner products and norms throughout):

* ``cosine``: ⟨W2, W1ᵀ⟩ / (‖W2‖·‖W1‖). 1 for a tied MLP; about 0 for independent random
  matrices; negative when W2 points against W1ᵀ.
* ``scale``: the best scalar fit ``a`` of W2 ≈ a·W1ᵀ, i.e. ⟨W2, W1ᵀ⟩ / ‖W1‖².
* ``residual``: the relative residual of that fit, ‖W2 − a·W1ᵀ‖ / ‖W2‖ = √(1 − cosine²).
  0 when W2 is a multiple of W1ᵀ, 1 when W2 is orthogonal to it.
* ``coupling_antisym``: with the effective linear coupling between the visible units
  ``J = W2·W1`` ([in, in]: what the MLP feeds back to unit i from unit j, activation
  slopes set to 1), ‖(J − Jᵀ)/2‖ / ‖J‖. 0 exactly when J is symmetric (as it is for a
  tied MLP, J = W1ᵀW1); at most 1.
* ``coupling_sym``: ‖(J + Jᵀ)/2‖ / ‖J‖; coupling_sym² + coupling_antisym² = 1.
* ``breaking_ratio`` (AsymMixer only): ‖W̃‖ / ‖W1ᵀ‖, the size of the breaking matrix
  relative to the tied part.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..runs import read_metrics

MEASURES = ("cosine", "scale", "residual", "coupling_sym", "coupling_antisym")


@torch.no_grad()
def weight_symmetry(w1: Tensor, w2: Tensor) -> dict[str, float]:
    """The measures above for ``w1`` [hidden, in] and ``w2`` [in, hidden]."""
    if w2.shape != w1.t().shape:
        raise ValueError(f"W2 {tuple(w2.shape)} must have the shape of W1ᵀ {tuple(w1.t().shape)}")
    w1, w2 = w1.double(), w2.double()
    w1t = w1.t()
    n1, n2 = w1.norm(), w2.norm()
    dot = (w2 * w1t).sum()
    cosine = (dot / (n1 * n2)).item() if n1 > 0 and n2 > 0 else float("nan")
    scale = (dot / n1.pow(2)).item() if n1 > 0 else float("nan")
    resid = ((w2 - scale * w1t).norm() / n2).item() if n2 > 0 else float("nan")
    j = w2 @ w1
    jn = j.norm()
    sym = ((j + j.t()) / 2).norm() / jn if jn > 0 else torch.tensor(float("nan"))
    anti = ((j - j.t()) / 2).norm() / jn if jn > 0 else torch.tensor(float("nan"))
    return dict(cosine=cosine, scale=scale, residual=resid, coupling_sym=sym.item(),
                coupling_antisym=anti.item())


def mlp_symmetry(mlp: nn.Module) -> dict[str, float]:
    """Measures of one mixing MLP (anything with ``w1``/``w2``; ``breaking`` if present)."""
    out = weight_symmetry(mlp.w1, mlp.w2)
    breaking = getattr(mlp, "breaking", None)
    if breaking is not None:
        with torch.no_grad():
            out["breaking_ratio"] = (breaking.norm() / mlp.w1.norm()).item()
    return out


def model_symmetry(model: nn.Module) -> list[dict[str, Any]]:
    """One row per block and MLP: ``{"block": i, "mlp": "token"|"channel", **measures}``."""
    rows = []
    for i, blk in enumerate(model.blocks):
        for kind in ("token", "channel"):
            mlp = getattr(blk, f"{kind}_mlp")
            if not (hasattr(mlp, "w1") and hasattr(mlp, "w2")):
                continue
            rows.append({"block": i, "mlp": kind, **mlp_symmetry(mlp)})
    return rows


def flat_symmetry(model: nn.Module) -> dict[str, float]:
    """Measures as flat keys for a metrics row: ``sym/{block}.{mlp}.{measure}`` plus means."""
    rows = model_symmetry(model)
    flat: dict[str, float] = {}
    for r in rows:
        for key, value in r.items():
            if key not in ("block", "mlp"):
                flat[f"sym/{r['block']}.{r['mlp']}.{key}"] = value
    for kind in ("token", "channel"):
        for key in (*MEASURES, "breaking_ratio"):
            vals = [r[key] for r in rows if r["mlp"] == kind and key in r]
            if vals:
                flat[f"sym/mean.{kind}.{key}"] = sum(vals) / len(vals)
    return flat


def symmetry_hook(model: nn.Module, epoch: int) -> dict[str, float]:
    """Per-epoch training hook: the flat measures, merged into ``metrics.jsonl``."""
    return flat_symmetry(model)


def format_symmetry_table(rows: Iterable[dict[str, Any]]) -> str:
    rows = list(rows)
    has_breaking = any("breaking_ratio" in r for r in rows)
    head = ["block", "mlp", "cosine", "scale a", "residual", "‖J_sym‖/‖J‖", "‖J_anti‖/‖J‖"]
    if has_breaking:
        head.append("‖W̃‖/‖W1ᵀ‖")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r["block"]), r["mlp"]] + [_fmt(r[k]) for k in MEASURES]
        if has_breaking:
            cells.append(_fmt(r.get("breaking_ratio", float("nan"))))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.4f}"


def rows_from_flat(flat: dict[str, Any]) -> list[dict[str, Any]]:
    """Invert :func:`flat_symmetry` (means dropped): per-block rows from ``sym/...`` keys."""
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for key, value in flat.items():
        if not key.startswith("sym/"):
            continue
        where, _, measure = key[4:].rpartition(".")
        block, _, mlp = where.partition(".")
        if not block.isdigit():
            continue
        rows.setdefault((int(block), mlp), {"block": int(block), "mlp": mlp})[measure] = value
    order = {"token": 0, "channel": 1}
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], order.get(k[1], 2)))]


# ------------------------------------------------------------- per-epoch series of a run
_KEY = re.compile(r"^sym/(\d+)\.(token|channel)\.(\w+)$")
def symmetry_series(rows: Sequence[dict[str, Any]]) -> dict[tuple[int, str, str], list]:
    """``(block, mlp, measure) → [(epoch, value), ...]`` from metrics.jsonl rows."""
    series: dict[tuple[int, str, str], list] = {}
    for row in rows:
        for key, value in row.items():
            m = _KEY.match(key)
            if m and "epoch" in row:
                series.setdefault((int(m[1]), m[2], m[3]), []).append((row["epoch"], value))
    return series


def read_run_symmetry(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a training run that carry symmetry measures: epoch 0 (if logged), then each epoch."""
    import json
    from pathlib import Path

    run_dir = Path(run_dir)
    rows: list[dict[str, Any]] = []
    init = run_dir / "init_metrics.json"
    if init.is_file():
        rows.append(json.loads(init.read_text()))
    rows += read_metrics(run_dir)
    return [r for r in rows if any(k.startswith("sym/") for k in r)]


def plot_run_symmetry(run_dir: str | os.PathLike, path: str | os.PathLike | None = None,
                      title: str | None = None) -> str | None:
    """Draw ``symmetry.png`` (default: into ``run_dir``) from its logged measures, if any."""
    from pathlib import Path

    rows = read_run_symmetry(run_dir)
    if not rows:
        return None
    path = Path(path) if path is not None else Path(run_dir) / "symmetry.png"
    if title is None:
        title = f"weight symmetry during training: {Path(run_dir).parent.name}/{Path(run_dir).name}"
    from ..plots import plot_symmetry

    plot_symmetry(symmetry_series(rows), path, title)
    return str(path)
