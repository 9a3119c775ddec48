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
