"""The weight-symmetry measures of :mod:`hamixer.measures.symmetry` as a run records and shows
them: flat ``sym/`` keys of a metrics row (the per-epoch training hook), Markdown tables,
per-epoch series read back from a run directory, and their plots.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

from ..measures.layer_scores import over_layers
from ..measures.reference import REFERENCE_DRAWS
from ..measures.symmetry import (
    ATTENTION_MEASURES,
    HEAD_MEASURES,
    LAYER_SCORES,
    MEASURES,
    MLP_MEASURES,
    attention_reference,
    mlp_reference,
    symmetry_report,
)
from ..models.find_layers import find_attention, find_mlps
from ..runs import (
    SYMMETRY_BLOCKS_PLOT,
    SYMMETRY_PLOT,
    format_measure,
    read_init_metrics,
    read_metrics,
)


# ------------------------------------------------------------------- metrics.jsonl keys
def _flat_key(block: int | None, part: str, measure: str, prefix: str = "sym") -> str:
    return f"{prefix}/{part}.{measure}" if block is None else f"{prefix}/{block}.{part}.{measure}"


def _layer_rows(report: dict[str, list]) -> Iterable[tuple[dict[str, Any], str, tuple]]:
    yield from ((r, r["mlp"], MLP_MEASURES) for r in report["mlp"])
    yield from ((r, r["attn"], ATTENTION_MEASURES) for r in report["attention"])


def flat_symmetry(model: nn.Module) -> dict[str, float]:
    """Measures as flat keys for a metrics row: ``sym/{block}.{part}.{measure}`` (a layer
    outside any block: ``sym/{part}.{measure}``) plus the means over blocks,
    ``sym/mean.{part}.{measure}``. Parts: ``token``/``channel`` (Mixer MLPs), ``mlp`` and
    ``attn`` (ViT), …; attention measures: :data:`ATTENTION_MEASURES` (the means over
    heads, and the two layer scores)."""
    flat: dict[str, float] = {}
    per_part: dict[tuple[str, str], list[float]] = {}
    for row, part, measures in _layer_rows(symmetry_report(model, references=False)):
        for m in measures:
            if m in row:
                flat[_flat_key(row["block"], part, m)] = row[m]
                if row["block"] is not None:
                    per_part.setdefault((part, m), []).append(row[m])
    for (part, m), vals in per_part.items():
        flat[f"sym/mean.{part}.{m}"] = sum(vals) / len(vals)
    return flat


def flat_references(model: nn.Module) -> dict[str, float]:
    """The untrained references as flat keys: ``symref/{block}.{part}.{measure}`` (mean) and
    ``symref_std/{block}.{part}.{measure}`` (standard deviation)."""
    flat: dict[str, float] = {}
    layers = [(f, mlp_reference(f)) for f in find_mlps(model)]
    layers += [(f, attention_reference(f)) for f in find_attention(model)]
    for layer, ref in layers:
        for m, (mean, std) in ref.items():
            flat[_flat_key(layer.block, layer.part, m, "symref")] = mean
            flat[_flat_key(layer.block, layer.part, m, "symref_std")] = std
    return flat


def symmetry_hook(model: nn.Module, epoch: int) -> dict[str, float]:
    """Per-epoch training hook: the flat measures, merged into ``metrics.jsonl``; at epoch 0
    (``init_metrics.json``) also the untrained references, which do not change."""
    flat = flat_symmetry(model)
    if epoch == 0:
        flat.update(flat_references(model))
    return flat


# ----------------------------------------------------------------------------- tables
def format_symmetry_table(rows: Iterable[dict[str, Any]]) -> str:
    """Markdown table of MLP rows; ``value (init mean ± std)`` where a row has references."""
    rows = list(rows)
    has_breaking = any("breaking_ratio" in r for r in rows)
    head = ["block", "mlp", "cosine", "scale a", "residual", "‖J_sym‖/‖J‖", "‖J_anti‖/‖J‖"]
    if has_breaking:
        head.append("‖W̃‖/‖W1ᵀ‖")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        name = r["mlp"] + (" (GLU: value half)" if r.get("gated") else "")
        cells = [_block(r["block"]), name] + [_cell(r, k) for k in MEASURES]
        if has_breaking:
            cells.append(_cell(r, "breaking_ratio"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_attention_table(rows: Iterable[dict[str, Any]]) -> str:
    """Markdown table of attention rows, the per-head measures (means over heads;
    references where present)."""
    head = ["block", "attention", "heads", "QK sym", "QK antisym", "VO sym", "VO antisym",
            "cos(VO, QK)", "‖VO − QK‖/‖QK‖"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [_block(r["block"]), r["attn"], str(r.get("heads", "?"))]
        cells += [_cell(r, m) for m in HEAD_MEASURES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_layer_scores_table(rows: Iterable[dict[str, Any]]) -> str:
    """Markdown table of Saponati et al.'s scores per attention layer, and a last line with
    their median and interquartile range over the layers, as their tables give them."""
    rows = list(rows)
    head = ["block", "attention", "symmetry score", "directionality score"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [_block(r["block"]), r["attn"]] + [_cell(r, m) for m in LAYER_SCORES]
        lines.append("| " + " | ".join(cells) + " |")
    summary = layer_scores_over_layers(rows)
    if summary:
        cells = [_median_iqr(summary[m]) for m in LAYER_SCORES]
        lines.append(f"| median [q25, q75] | {len(rows)} layers | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def layer_scores_over_layers(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{score: {"median", "q25", "q75"}}`` of the layer scores of attention rows, over
    the layers that have them (empty when none has)."""
    rows = list(rows)
    out = {}
    for m in LAYER_SCORES:
        values = [r[m] for r in rows if isinstance(r.get(m), float) and r[m] == r[m]]
        if values:
            out[m] = over_layers(values)
    return out


def _median_iqr(summary: dict[str, float]) -> str:
    return f"{_fmt(summary['median'])} [{_fmt(summary['q25'])}, {_fmt(summary['q75'])}]"


REFERENCE_NOTE = (f"(init m ± s): what an untrained layer of the same shapes scores, mean ± "
                  f"std over {REFERENCE_DRAWS} draws of independent random matrices")
ATTENTION_NOTE = ("per head h, M = W_Q^hᵀ W_K^h and N = W_O^h W_V^h ([D, D]); sym / antisym "
                  "= ‖(M ± Mᵀ)/2‖ / ‖M‖; cos(VO, QK) = ⟨N, M⟩ / (‖N‖‖M‖), ‖VO − QK‖/‖QK‖ = "
                  "‖N − M‖ / ‖M‖ (tied value–output map: 1, 0); means over heads")
LAYER_SCORES_NOTE = ("Saponati et al. (arXiv:2502.10927), as their code and tables define them, "
                     "of the whole layer's M = W_Qᵀ W_K = Σ_h W_Q^hᵀ W_K^h: symmetry score "
                     "⟨M, Mᵀ⟩ / ‖M‖² (2‖M_sym‖²/‖M‖² − 1; symmetric 1, antisymmetric −1, random "
                     "≈ 1/D), directionality score (R − C) / (R + C), R and C the excess of "
                     "M's row and column norms over mean + 2 std (random ≈ 0)")


def _block(block: int | None) -> str:
    return "–" if block is None else str(block)


def _cell(row: dict[str, Any], measure: str) -> str:
    if measure not in row:  # e.g. a run logged before the measure existed
        return "–"
    value = _fmt(row[measure])
    ref = row.get("init", {}).get(measure)
    return value if ref is None else f"{value} (init {ref['mean']:.2f} ± {ref['std']:.2f})"


def _fmt(v: float) -> str:
    return format_measure(v, 4)


def _rows_by_layer(flat: dict[str, Any]) -> dict[tuple[int | None, str], dict[str, Any]]:
    rows: dict[tuple[int | None, str], dict[str, Any]] = {}
    for key, value in flat.items():
        if not key.startswith("sym/") or key.startswith("sym/mean."):
            continue
        where, _, measure = key[4:].rpartition(".")
        first, _, rest = where.partition(".")
        block, part = (int(first), rest) if first.isdigit() and rest else (None, where)
        rows.setdefault((block, part), {"block": block, "part": part})[measure] = value
    return rows


def _sorted_rows(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    order = {"token": 0, "channel": 1}
    for r in rows:
        r[name] = r.pop("part")
    return sorted(rows, key=lambda r: (r["block"] is None, r["block"] or 0,
                                       order.get(r[name], 2)))


def rows_from_flat(flat: dict[str, Any]) -> list[dict[str, Any]]:
    """Invert :func:`flat_symmetry` for the MLPs (means dropped): per-layer rows."""
    rows = [r for r in _rows_by_layer(flat).values() if "cosine" in r]
    return _sorted_rows(rows, "mlp")


def attention_rows_from_flat(flat: dict[str, Any]) -> list[dict[str, Any]]:
    """Invert :func:`flat_symmetry` for the attention layers (means dropped)."""
    rows = [r for r in _rows_by_layer(flat).values() if "qk_sym" in r]
    return _sorted_rows(rows, "attn")


# ------------------------------------------------------------- per-epoch series of a run
_KEY = re.compile(r"^sym/(\d+)\.(.+)\.(\w+)$")


def symmetry_series(rows: Sequence[dict[str, Any]]) -> dict[tuple[int, str, str], list]:
    """``(block, part, measure) → [(epoch, value), ...]`` from metrics.jsonl rows (layers
    inside blocks; ``part``: ``token``, ``channel``, ``mlp``, ``attn``, …)."""
    series: dict[tuple[int, str, str], list] = {}
    for row in rows:
        for key, value in row.items():
            m = _KEY.match(key)
            if m and "epoch" in row:
                series.setdefault((int(m[1]), m[2], m[3]), []).append((row["epoch"], value))
    return series


def reference_series(row: dict[str, Any]) -> dict[tuple[str, str], list]:
    """``(part, measure) → [(block, mean, std), ...]``: the untrained references logged in
    ``row`` (``init_metrics.json``: ``symref/`` and ``symref_std/`` keys)."""
    refs: dict[tuple[str, str], list] = {}
    for key, mean in row.items():
        m = re.match(r"^symref/(\d+)\.(.+)\.(\w+)$", key)
        if m:
            std = row.get(f"symref_std/{key[len('symref/'):]}", float("nan"))
            refs.setdefault((m[2], m[3]), []).append((int(m[1]), mean, std))
    return refs


def read_run_symmetry(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a training run that carry symmetry measures: epoch 0 (if logged), then each epoch."""
    init = read_init_metrics(run_dir)
    rows = ([init] if init else []) + read_metrics(run_dir)
    return [r for r in rows if any(k.startswith("sym/") for k in r)]


def plot_run_symmetry(run_dir: str | os.PathLike, path: str | os.PathLike | None = None,
                      title: str | None = None) -> str | None:
    """Draw ``symmetry.png`` (default: into ``run_dir``) from its logged measures, if any:
    each measure against epoch, one line per block, the untrained reference dashed."""
    from pathlib import Path

    rows = read_run_symmetry(run_dir)
    if not rows:
        return None
    path = Path(path) if path is not None else Path(run_dir) / SYMMETRY_PLOT
    if title is None:
        title = f"weight symmetry during training: {Path(run_dir).parent.name}/{Path(run_dir).name}"
    from ..plots import plot_symmetry

    plot_symmetry(symmetry_series(rows), path, title, references=reference_series(rows[0]))
    return str(path)


def plot_run_symmetry_blocks(run_dir: str | os.PathLike, path: str | os.PathLike | None = None,
                             title: str | None = None) -> str | None:
    """Draw ``symmetry-blocks.png`` (default: into ``run_dir``): the measures of the last
    logged epoch per block, beside epoch 0 and the untrained reference, if any were logged."""
    from pathlib import Path

    rows = read_run_symmetry(run_dir)
    if not rows:
        return None
    path = Path(path) if path is not None else Path(run_dir) / SYMMETRY_BLOCKS_PLOT
    if title is None:
        title = (f"weight symmetry per block, epoch {rows[-1].get('epoch', '?')}: "
                 f"{Path(run_dir).parent.name}/{Path(run_dir).name}")
    initial = rows[0] if rows[0].get("epoch") == 0 and len(rows) > 1 else None
    from ..plots import plot_symmetry_blocks

    plot_symmetry_blocks(_per_block(rows[-1]), path, title,
                         initial=_per_block(initial) if initial else None,
                         references=reference_series(rows[0]))
    return str(path)


def plot_model_symmetry_blocks(model: nn.Module, path: str | os.PathLike, title: str) -> str:
    """Draw the measures of ``model`` per block beside the untrained reference."""
    from ..plots import plot_symmetry_blocks

    flat = flat_symmetry(model)
    plot_symmetry_blocks(_per_block(flat), path, title,
                         references=reference_series(flat_references(model)))
    return str(path)


def _per_block(row: dict[str, Any]) -> dict[tuple[str, str], list]:
    """``(part, measure) → [(block, value), ...]`` of one metrics row."""
    out: dict[tuple[str, str], list] = {}
    for (block, part, measure), pts in symmetry_series([{**row, "epoch": 0}]).items():
        out.setdefault((part, measure), []).append((block, pts[0][1]))
    return out
