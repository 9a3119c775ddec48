"""Figures of the energy tools (matplotlib, Agg; written atomically by ``save_figure``)."""

from __future__ import annotations

import math
import os

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def receptive_fields_png(fields: np.ndarray, path: str | os.PathLike, title: str,
                         count: int = 64) -> None:
    """Grid of the first ``count`` receptive fields ``[N, H, W]``, each scaled to ±max|w|.

    The grid is one mosaic image (one ``imshow``, fast) with white borders.
    """
    from ..io import save_figure

    plt = _plt()
    n = min(count, len(fields))
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    h, w = fields.shape[1:3]
    pad = max(1, h // 10)
    mosaic = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), np.nan)
    for i in range(n):
        r, c = divmod(i, cols)
        lim = float(np.abs(fields[i]).max()) or 1.0
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        mosaic[top:top + h, left:left + w] = fields[i] / lim
    fig, ax = plt.subplots(figsize=(7, 7 * rows / cols + 0.6))
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="white")
    im = ax.imshow(mosaic, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, label="w / max|w| of the field")
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)
    plt.close(fig)


def energy_descent_png(steps: np.ndarray, energies: np.ndarray, finals: np.ndarray,
                       path: str | os.PathLike, title: str) -> None:
    """Energy ``[T, K]`` along descent from K random starts, and the final visible states."""
    from ..io import save_figure

    plt = _plt()
    k = energies.shape[1]
    fig = plt.figure(figsize=(9, 3.6))
    cols = max(1, (k + 1) // 2)
    grid = fig.add_gridspec(2, 1 + cols, width_ratios=[4] + [1] * cols)
    ax = fig.add_subplot(grid[:, 0])
    for j in range(k):
        ax.plot(steps, energies[:, j], lw=1.2, label=f"start {j + 1}")
    ax.set_xlabel("descent step")
    ax.set_ylabel("energy E")
    ax.set_title("energy along x ← x − α ∂E/∂g (random start)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    for j in range(k):
        sub = fig.add_subplot(grid[j % 2, 1 + j // 2])
        sub.imshow(finals[j], cmap="gray")
        sub.set_title(f"end {j + 1}", fontsize=7)
        sub.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def denoising_png(noisy: np.ndarray, recalled: np.ndarray, clean: np.ndarray,
                  path: str | os.PathLike, title: str) -> None:
    """Rows noisy / recalled / clean for a few test images ``[K, H, W]``."""
    from ..io import save_figure

    plt = _plt()
    k = len(clean)
    fig, axes = plt.subplots(3, k, figsize=(k * 1.0 + 0.8, 3.6), squeeze=False)
    for r, (label, imgs) in enumerate((("noisy", noisy), ("recalled", recalled),
                                        ("clean", clean))):
        for j in range(k):
            ax = axes[r, j]
            ax.imshow(imgs[j], cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
