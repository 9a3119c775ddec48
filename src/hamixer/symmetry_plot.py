"""``symmetry.png``: the weight-symmetry measures of every block against training epoch."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from .io import save_figure

_KEY = re.compile(r"^sym/(\d+)\.(token|channel)\.(\w+)$")
_LABELS = {
    "cosine": "cos(W2, W1ᵀ)",
    "coupling_antisym": "‖J_anti‖ / ‖J‖  (J = W2·W1)",
    "breaking_ratio": "‖W̃‖ / ‖W1ᵀ‖",
}


def symmetry_series(rows: Sequence[dict[str, Any]]) -> dict[tuple[int, str, str], list]:
    """``(block, mlp, measure) → [(epoch, value), ...]`` from metrics.jsonl rows."""
    series: dict[tuple[int, str, str], list] = {}
    for row in rows:
        for key, value in row.items():
            m = _KEY.match(key)
            if m and "epoch" in row:
                series.setdefault((int(m[1]), m[2], m[3]), []).append((row["epoch"], value))
    return series


def plot_symmetry(rows: Sequence[dict[str, Any]], path: str | os.PathLike,
                  title: str = "weight symmetry during training") -> None:
    """Write a grid: columns token/channel MLP, rows measures, one line per block."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    series = symmetry_series(rows)
    if not series:
        raise ValueError("no symmetry measures (sym/... keys) in the metrics")
    measures = [m for m in _LABELS if any(k[2] == m for k in series)]
    blocks = sorted({k[0] for k in series})
    cmap = plt.get_cmap("viridis")
    fig, axes = plt.subplots(len(measures), 2, figsize=(10, 3.2 * len(measures)), squeeze=False,
                             sharex=True)
    for r, measure in enumerate(measures):
        for c, kind in enumerate(("token", "channel")):
            ax = axes[r][c]
            for b in blocks:
                pts = series.get((b, kind, measure))
                if not pts:
                    continue
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="o", ms=3, color=cmap(b / max(1, len(blocks) - 1)),
                        label=f"block {b}")
            ax.set_title(f"{kind}-mixing MLP")
            # no offset notation, and a minimum span so a flat line does not look jagged
            ax.ticklabel_format(axis="y", useOffset=False)
            lo, hi = ax.get_ylim()
            if hi - lo < 0.05:
                mid = (lo + hi) / 2
                ax.set_ylim(mid - 0.025, mid + 0.025)
            ax.set_ylabel(_LABELS[measure])
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if r == len(measures) - 1:
                ax.set_xlabel("epoch")
    axes[0][1].legend(fontsize=8, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def read_run_symmetry(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a training run that carry symmetry measures: epoch 0 (if logged), then each epoch."""
    import json
    from pathlib import Path

    run_dir = Path(run_dir)
    rows: list[dict[str, Any]] = []
    init = run_dir / "init_metrics.json"
    if init.is_file():
        rows.append(json.loads(init.read_text()))
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        rows += [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
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
    plot_symmetry(rows, path, title)
    return str(path)
