"""Every figure of the project, drawn with matplotlib's object API (:class:`Figure`, no
pyplot state, no backend switch: a notebook's backend stays as it is) and written atomically
as PNG by :func:`hamixer.io.save_figure`.

The figures of ``hamixer dynamics``, which evaluate the energy on a grid while they draw, are
drawn next to that computation in :mod:`hamixer.experiments.dynamics`, with
:func:`subplots` from here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .io import save_figure

#: Axis labels of the weight-symmetry measures that are drawn (MLPs, then attention).
SYMMETRY_LABELS = {
    "cosine": "cos(W2, W1ᵀ)",
    "coupling_antisym": "‖J_anti‖ / ‖J‖  (J = W2·W1)",
    "breaking_ratio": "‖W̃‖ / ‖W1ᵀ‖",
    "update_cosine": "cos(ΔW2, ΔW1ᵀ) since the start",
    "qk_sym": "‖M_sym‖ / ‖M‖  (M = W_Qᵀ W_K)",
    "vo_sym": "‖N_sym‖ / ‖N‖  (N = W_O W_V)",
    "vo_qk_cosine": "cos(W_O W_V, W_Qᵀ W_K)",
    "qk_symmetry_score": "symmetry score of the layer's W_Qᵀ W_K",
}


def subplots(*grid: int, figsize: tuple[float, float], **kwargs: Any) -> tuple[Any, Any]:
    """A new :class:`Figure` and its axes, like ``pyplot.subplots`` without global state."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **kwargs)


def receptive_fields_png(fields: np.ndarray, path: str | os.PathLike, title: str,
                         count: int = 64) -> None:
    """Grid of the first ``count`` receptive fields ``[N, H, W]``, each scaled to ±max|w|.

    The grid is one mosaic image (one ``imshow``, fast) with white borders.
    """
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
    fig, ax = subplots(figsize=(7, 7 * rows / cols + 0.6))
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")
    im = ax.imshow(mosaic, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, label="w / max|w| of the field")
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def energy_descent_png(steps: np.ndarray, energies: np.ndarray, finals: np.ndarray,
                       path: str | os.PathLike, title: str) -> None:
    """Energy ``[T, K]`` along descent from K random starts, and the final visible states."""
    k = energies.shape[1]
    fig = Figure(figsize=(9, 3.6))
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


def denoising_png(noisy: np.ndarray, recalled: np.ndarray, clean: np.ndarray,
                  path: str | os.PathLike, title: str) -> None:
    """Rows noisy / recalled / clean for a few test images ``[K, H, W]``."""
    k = len(clean)
    fig, axes = subplots(3, k, figsize=(k * 1.0 + 0.8, 3.6), squeeze=False)
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


def plot_curves(curves: dict[str, list[list[dict[str, Any]]]], path: str | os.PathLike,
                title: str) -> None:
    """Test accuracy against epoch, one line per model (mean over seeds, ± std band)."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for model, seed_rows in curves.items():
        n_ep = min(len(r) for r in seed_rows)
        acc = np.array([[row["test_acc"] for row in r[:n_ep]] for r in seed_rows])
        epochs = np.arange(1, n_ep + 1)
        mean = acc.mean(axis=0)
        (line,) = ax.plot(epochs, mean, marker="o" if n_ep <= 30 else None, markersize=3,
                          label=f"{model} (best {acc.max(axis=1).mean():.1f}%)")
        if len(seed_rows) > 1:
            std = acc.std(axis=0, ddof=1)
            ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("test top-1 accuracy (%)")
    ax.set_title(title + (f" (mean ± std over {len(seed_rows)} seeds)"
                          if len(seed_rows) > 1 else ""))
    # Show every point when the curves span < 25 points; otherwise zoom on the last two
    # thirds of training (the early epochs, far below, would flatten the differences).
    every = [row["test_acc"] for rs in curves.values() for r in rs for row in r]
    lo, hi = min(every), max(every)
    if hi - lo < 25:
        bottom = math.floor(lo) - 1
    else:
        late = min(min(r["test_acc"] for r in rs[-1][len(rs[-1]) // 3:]) for rs in curves.values())
        bottom = math.floor(late / 5) * 5 - 5
    ax.set_ylim(max(0.0, bottom), min(100.5, math.ceil(hi) + 1.5))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    save_figure(fig, path)


#: Names of a Mixer sweep's models (``labels`` of :func:`plot_sweep`).
_MIXER_LABELS = {"asym": "AsymMixer", "sym": "SymMixer", "para": "ParaMixer",
                 "vanilla": "vanilla Mixer", "vit": "ViT",
                 "ratio": "‖W̃‖ / ‖W1ᵀ‖ (mean over blocks and MLPs)"}


def plot_sweep(agg: dict[str, Any], path: str | os.PathLike, metric: str = "best_acc",
               title: str = "AsymMixer: accuracy vs symmetry-breaking penalty λ",
               labels: dict[str, str] | None = None,
               forms: dict[str, str] | None = None) -> Figure:
    """Two panels: test accuracy vs λ with the reference levels; the breaking ratio vs λ.
    One line per W̃ start. ``labels``: the models' names and the ratio's (a Mixer sweep's
    by default). ``forms`` (row key → label, e.g. a Transformer's MLP, W_V, W_O and key
    term): with one W̃ start, the ratio panel also draws each form's own ratio. Returns the
    figure it saved."""
    labels = {**_MIXER_LABELS, **(labels or {})}
    rows = agg["asym"]
    # λ = 0 sits one decade left of the smallest positive λ on the log axis, labelled "0".
    positive = [r["lambda"] for r in rows if r["lambda"] > 0]
    zero_at = (min(positive) if positive else 1.0) / 10
    fig = Figure(figsize=(12, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    inits = list(dict.fromkeys(r.get("breaking_init", "xavier") for r in rows))
    for i, init in enumerate(inits):
        sel = [r for r in rows if r.get("breaking_init", "xavier") == init]
        lams = [r["lambda"] if r["lambda"] > 0 else zero_at for r in sel]
        label = f"{labels['asym']}(λ)" + (f", W̃ start {init}" if len(inits) > 1 else "")
        ax1.errorbar(lams, [r[metric] for r in sel],
                     yerr=[r.get(f"{metric}_std", 0.0) for r in sel], marker="o", capsize=3,
                     color=f"C{i}", label=label)
        ax2.errorbar(lams, [r.get("breaking_ratio", math.nan) for r in sel],
                     yerr=[r.get("breaking_ratio_std", 0.0) for r in sel], marker="s",
                     capsize=3, color=f"C{i}",
                     label=label + (", mean of the forms" if forms else ""))
        if forms and len(inits) == 1:
            # each form apart: whether the MLP, the value map and the key term leave the tie
            # alike
            for j, ((key, form), marker) in enumerate(zip(forms.items(), "^vD<>",
                                                          strict=False)):
                ax2.plot(lams, [r.get(key, math.nan) for r in sel], marker=marker, ls=":",
                         lw=1, markersize=4, alpha=0.8, color=f"C{j + 1}", label=form)
    styles = {"sym": (f"{labels['sym']} (tied)", "C3"), "para": (f"{labels['para']} (free)", "C2"),
              "vanilla": (f"{labels['vanilla']} (free, serial)", "C4"),
              "vit": ("ViT (timm)", "C5")}
    for kind, (label, color) in styles.items():
        ref = agg["reference"].get(kind)
        if not ref:
            continue
        mean, std = ref[metric], ref.get(f"{metric}_std", 0.0)
        ax1.axhline(mean, color=color, ls="--", label=f"{label}: {mean:.2f}%")
        if std > 0:
            ax1.axhspan(mean - std, mean + std, color=color, alpha=0.12)
    ticks = sorted({r["lambda"] if r["lambda"] > 0 else zero_at for r in rows})
    has_zero = any(r["lambda"] == 0 for r in rows)
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xticks(ticks, ["0" if t == zero_at and has_zero else f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("penalty λ (log axis; 0 = no penalty)")
        ax.grid(alpha=0.3)
        ax.invert_xaxis()  # left: strong penalty (near-symmetric); right: free
    ax1.set_ylabel(f"test top-1 (%), {'best' if metric == 'best_acc' else 'final'} epoch")
    ax1.set_title("accuracy")
    ax1.legend(fontsize=8)
    ax2.set_yscale("log")
    ax2.set_ylabel(labels["ratio"])
    ax2.set_title("size of the symmetry-breaking matri" + ("ces" if forms else "x"))
    if len(inits) > 1 or forms:
        ax2.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


#: Line styles of the W̃ starts (the colour is λ's) and of the references (in black).
_INIT_STYLES = {"xavier": ("o", "-"), "zero": ("s", "--"), "free": ("^", ":")}
_REFERENCE_STYLES = {"SymMixer": (0, (5, 2)), "ParaMixer": (0, (1, 1)),
                     "vanilla Mixer": (0, (3, 1, 1, 1)), "ViT": (0, (8, 2, 1, 2)),
                     "SymFormer": (0, (5, 2)), "ParaFormer": (0, (1, 1))}


def plot_sweep_epochs(asym: dict[tuple[float, str], dict[str, list[float]]],
                      refs: dict[str, list[float]], path: str | os.PathLike,
                      title: str,
                      ratio_label: str = _MIXER_LABELS["ratio"]) -> None:
    """Two panels against epoch: ‖W̃‖/‖W1ᵀ‖ of each AsymMixer run (from its start, log
    axis) and the test accuracy of every run. Colour: λ; marker and line: where W̃ started;
    references in black. A zero start's epoch 0 (W̃ = 0) has no place on the log axis: its
    line starts at epoch 1 instead of dropping off the bottom."""
    fig = Figure(figsize=(12, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    lams = sorted({lam for lam, _ in asym}, reverse=True)
    for (lam, init), s in asym.items():
        marker, ls = _INIT_STYLES.get(init, ("o", "-"))
        style = dict(marker=marker, ls=ls, markersize=3, color=f"C{lams.index(lam) % 10}",
                     label=f"λ = {lam:g}, W̃ {init}")
        ratio = [v if v > 0 else math.nan for v in s["ratio"]]
        ax1.plot(range(len(ratio)), ratio, **style)
        ax2.plot(range(1, len(s["acc"]) + 1), s["acc"], **style)
    for label, acc in refs.items():
        ax2.plot(range(1, len(acc) + 1), acc, color="k", lw=1,
                 ls=_REFERENCE_STYLES.get(label, "--"), label=label)
    ax1.set_yscale("log")
    ax1.set_ylabel(ratio_label)
    ax1.set_title("size of the symmetry-breaking matrix")
    ax2.set_ylabel("test top-1 (%)")
    ax2.set_title("accuracy")
    every = [v for s in asym.values() for v in s["acc"]] + [v for a in refs.values() for v in a]
    if every:  # the first epoch, far below, would flatten the differences at the end
        late = sorted(every)[len(every) // 4]
        ax2.set_ylim(math.floor(late) - 1, math.ceil(max(every)) + 0.5)
    for ax in (ax1, ax2):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def plot_symmetry(series: dict[tuple[int, str, str], list], path: str | os.PathLike,
                  title: str = "weight symmetry during training",
                  references: dict[tuple[str, str], list] | None = None) -> None:
    """Write a grid: one column per part (token/channel MLP, a ViT's ``mlp`` and ``attn``…),
    its measures below each other, one line per block against epoch.

    ``series`` maps ``(block, part, measure)`` to ``[(epoch, value), ...]``; ``references``
    maps ``(part, measure)`` to ``[(block, mean, std), ...]``, the untrained reference,
    drawn as a dashed line (mean over blocks) and a band of ± one std.
    """
    if not series:
        raise ValueError("no symmetry measures (sym/... keys) in the metrics")
    columns = _symmetry_columns({(k[1], k[2]) for k in series})
    blocks = sorted({k[0] for k in series})
    cmap = matplotlib.colormaps["viridis"]
    fig, axes = _symmetry_grid(columns, sharex=True)
    for c, (part, measures) in enumerate(columns):
        for r, measure in enumerate(measures):
            ax = axes[r][c]
            for b in blocks:
                pts = series.get((b, part, measure))
                if not pts:
                    continue
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="o", ms=3, color=cmap(b / max(1, len(blocks) - 1)),
                        label=f"block {b}")
            ref = (references or {}).get((part, measure))
            if ref:
                mean = sum(m for _, m, _ in ref) / len(ref)
                std = max(s for _, _, s in ref)
                ax.axhline(mean, color="0.4", ls="--", lw=1, label="untrained (random)")
                ax.axhspan(mean - std, mean + std, color="0.6", alpha=0.2, lw=0)
            _symmetry_axes(ax, part, measure, last=r == len(measures) - 1, xlabel="epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _finish_grid(fig, axes, len(columns), title, path)


def plot_symmetry_blocks(values: dict[tuple[str, str], list], path: str | os.PathLike,
                         title: str = "weight symmetry per block",
                         initial: dict[tuple[str, str], list] | None = None,
                         references: dict[tuple[str, str], list] | None = None) -> None:
    """Write a grid like :func:`plot_symmetry` with the block on the x axis: the measures of
    ``values`` (``(part, measure) → [(block, value), ...]``), those of ``initial`` (epoch 0,
    same form) dotted, and the untrained reference (``(part, measure) → [(block, mean,
    std), ...]``) dashed with a band of ± one std."""
    if not values:
        raise ValueError("no symmetry measures to draw")
    columns = _symmetry_columns(set(values))
    fig, axes = _symmetry_grid(columns, sharex=True)
    for c, (part, measures) in enumerate(columns):
        for r, measure in enumerate(measures):
            ax = axes[r][c]
            ref = sorted((references or {}).get((part, measure), []))
            if ref:
                xs, means, stds = (np.array(v, dtype=float) for v in zip(*ref, strict=True))
                ax.plot(xs, means, color="0.4", ls="--", lw=1, label="untrained (random)")
                ax.fill_between(xs, means - stds, means + stds, color="0.6", alpha=0.2, lw=0)
            start = sorted((initial or {}).get((part, measure), []))
            if start:
                ax.plot(*zip(*start, strict=True), color="tab:orange", ls=":", marker=".",
                        label="epoch 0")
            ax.plot(*zip(*sorted(values[(part, measure)]), strict=True), color="tab:blue",
                    marker="o", ms=4, label="measured")
            _symmetry_axes(ax, part, measure, last=r == len(measures) - 1, xlabel="block")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _finish_grid(fig, axes, len(columns), title, path)


def _finish_grid(fig: Figure, axes: Any, n_columns: int, title: str,
                 path: str | os.PathLike) -> None:
    axes[0][n_columns - 1].legend(fontsize=8, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def _symmetry_columns(keys: set[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """``[(part, [measures drawn])]``: token and channel MLPs first, then the other MLPs,
    then attention, by name; measures in the order of :data:`SYMMETRY_LABELS`."""
    order = {"token": 0, "channel": 1}
    attention = {p for p, m in keys if _is_attention_measure(m)}
    parts = sorted({p for p, _ in keys}, key=lambda p: (p in attention, order.get(p, 2), p))
    columns = [(p, [m for m in SYMMETRY_LABELS if (p, m) in keys]) for p in parts]
    columns = [(p, ms) for p, ms in columns if ms]
    if not columns:
        raise ValueError("none of the symmetry measures that are drawn is present")
    return columns


def _symmetry_grid(columns: list[tuple[str, list[str]]], **kwargs: Any) -> tuple[Any, Any]:
    rows = max(len(ms) for _, ms in columns)
    fig, axes = subplots(rows, len(columns), figsize=(5 * len(columns), 3.2 * rows),
                         squeeze=False, **kwargs)
    for c, (_, measures) in enumerate(columns):
        for r in range(len(measures), rows):
            axes[r][c].set_visible(False)  # a part with fewer measures than the tallest
    return fig, axes


_PART_TITLES = {"token": "token-mixing MLP", "channel": "channel-mixing MLP"}


def _is_attention_measure(measure: str) -> bool:
    return measure.startswith(("qk_", "vo_"))


def _symmetry_axes(ax: Any, part: str, measure: str, last: bool, xlabel: str) -> None:
    kind = "attention" if _is_attention_measure(measure) else "MLP"
    ax.set_title(_PART_TITLES.get(part, f"{kind}: {part}"))
    # no offset notation, and a minimum span so a flat line does not look jagged
    ax.ticklabel_format(axis="y", useOffset=False)
    lo, hi = ax.get_ylim()
    if hi - lo < 0.05:
        mid = (lo + hi) / 2
        ax.set_ylim(mid - 0.025, mid + 0.025)
    ax.set_ylabel(SYMMETRY_LABELS[measure])
    ax.grid(alpha=0.3)
    if last:
        ax.set_xlabel(xlabel)
        ax.xaxis.set_tick_params(labelbottom=True)


def plot_run_curves(rows: Sequence[dict[str, Any]], path: str | os.PathLike,
                    title: str) -> None:
    """One run's loss (left) and top-1 accuracy (right) per epoch, train and test."""
    fig, (loss_ax, acc_ax) = subplots(1, 2, figsize=(10, 3.8))
    epochs = [r["epoch"] for r in rows]
    for ax, key, label in ((loss_ax, "loss", "loss"), (acc_ax, "acc", "top-1 (%)")):
        ax.plot(epochs, [r[f"train_{key}"] for r in rows], marker="o", ms=3, label="train")
        ax.plot(epochs, [r[f"test_{key}"] for r in rows], marker="o", ms=3, label="test")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def plot_capacity(name: str, sweep: dict[str, Any], path: str | os.PathLike,
                  criterion: float) -> None:
    """One figure of a ``hamixer memory capacity`` sweep: retrieval against the load, with
    the theory (dashed) beside each measured curve."""
    if name == "classical":
        fig, axes = subplots(1, 2, figsize=(10, 3.8))
        for units in sorted({r["N"] for r in sweep["rows"]}):
            rows = [r for r in sweep["rows"] if r["N"] == units]
            alpha = [r["alpha"] for r in rows]
            axes[0].plot(alpha, [r["retrieved"] for r in rows], marker="o", label=f"N = {units}")
            axes[1].plot(alpha, [r["overlap"] for r in rows], marker="o", label=f"N = {units}")
        theory = sweep["theory"]
        loads, overlaps = zip(*theory["overlap_curve"], strict=True)
        axes[1].plot(loads, overlaps, "k--", label="AGS m(α)")
        for ax in axes:
            ax.axvline(theory["alpha_c"], color="k", lw=0.8, ls=":")
            ax.set_xlabel("load α = P / N")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        axes[0].axvline(theory["alpha_at_criterion"], color="grey", lw=0.8, ls="--")
        axes[0].set_ylabel(f"fraction retrieved (overlap ≥ {criterion})")
        axes[1].set_ylabel("mean overlap of the fixed point")
        fig.suptitle("Classical Hopfield network: dotted α_c = 0.138 (AGS); dashed: AGS m(α) "
                     f"and the load where it falls to {criterion}", fontsize=9)
    elif name == "polynomial":
        degrees = sorted({r["n"] for r in sweep["rows"]})
        fig, axes = subplots(1, len(degrees), figsize=(4.2 * len(degrees), 3.6), squeeze=False)
        for ax, n in zip(axes[0], degrees, strict=True):
            for units in sorted({r["N"] for r in sweep["rows"] if r["n"] == n}):
                rows = [r for r in sweep["rows"] if r["n"] == n and r["N"] == units]
                load = [r["load"] for r in rows]
                (line,) = ax.plot(load, [r["retrieved"] for r in rows], marker="o",
                                  label=f"N = {units}")
                ax.plot(load, [r["theory_retrieved"] for r in rows], ls="--",
                        color=line.get_color())
            s = sweep["summary"][str(n)]
            exponent = "–" if s["exponent"] is None else f"{s['exponent']:.2f}"
            ax.set_title(f"F = x^{n}/{n}: P_c ∝ N^{exponent} (theory N^{n - 1})", fontsize=9)
            ax.set_xscale("log")
            ax.set_xlabel(f"P / N^{n - 1}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        axes[0][0].set_ylabel(f"fraction retrieved (overlap ≥ {criterion})")
        fig.suptitle("Dense associative memories; dashed: one-step signal-to-noise theory",
                     fontsize=9)
    elif name == "exponential":
        fig, axes = subplots(1, 2, figsize=(10, 3.8))
        for lag in dict.fromkeys(r["lagrangian"] for r in sweep["rows"]):
            rows = [r for r in sweep["rows"] if r["lagrangian"] == lag]
            axes[0].plot([r["P_over_N"] for r in rows], [r["retrieved"] for r in rows],
                         marker="o", label=lag)
        axes[0].set_xscale("log")
        axes[0].set_xlabel(f"P / N  (N = {sweep['rows'][0]['N']})")
        axes[0].set_ylabel(f"fraction retrieved (overlap ≥ {criterion})")
        axes[0].legend(fontsize=8)
        sizes = [g["N"] for g in sweep["growth"]]
        caps = [g["capacity"] for g in sweep["growth"]]
        axes[1].semilogy(sizes, caps, marker="o", label="log-sum-exp P_c, measured")
        rate = sweep["summary"]["theory_rate"]
        if caps and caps[0]:
            axes[1].semilogy(sizes, [caps[0] * math.exp(rate * (n - sizes[0])) for n in sizes],
                             "k--", label=f"guaranteed rate exp({rate:.3f} N)")
        axes[1].set_xlabel("N")
        axes[1].set_ylabel("capacity P_c")
        axes[1].legend(fontsize=8)
        for ax in axes:
            ax.grid(alpha=0.3)
        fig.suptitle("Exponential regime: log-sum-exp retrieves at P ≫ N", fontsize=9)
    elif name == "images":
        lags = list(dict.fromkeys(r["lagrangian"] for r in sweep["rows"]))
        fig, axes = subplots(1, len(lags), figsize=(4.2 * len(lags), 3.6), squeeze=False)
        for ax, lag in zip(axes[0], lags, strict=True):
            for source, style in (("images", "-"), ("random", "--")):
                rows = [r for r in sweep["rows"] if r["lagrangian"] == lag and
                        r["source"] == source]
                ax.plot([r["P"] for r in rows], [r["retrieved"] for r in rows], ls=style,
                        marker="o", label=source)
            ax.set_xscale("log")
            ax.set_title(lag, fontsize=9)
            ax.set_xlabel(f"P (N = {sweep['N']})")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        axes[0][0].set_ylabel(f"fraction retrieved (overlap ≥ {criterion})")
        fig.suptitle("Correlated (image) memories against random ones", fontsize=9)
    elif name == "beta":
        counts = sorted({r["P"] for r in sweep["rows"]})
        fig, axes = subplots(1, len(counts), figsize=(3.2 * len(counts), 3.4), squeeze=False,
                             sharey=True)
        for ax, count in zip(axes[0], counts, strict=True):
            rows = [r for r in sweep["rows"] if r["P"] == count]
            betas = [r["beta"] for r in rows]
            for key, label in (("retrieved", "retrieved"), ("other_pattern", "another pattern"),
                               ("mixture", "metastable mixture")):
                ax.plot(betas, [r[key] for r in rows], marker="o", label=label)
            ax.set_xscale("log")
            ax.set_xlabel("β")
            ax.set_title(f"P = {count}", fontsize=9)
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("fraction of probes")
        axes[0][-1].legend(fontsize=7)
        fig.suptitle(f"Softmax memory on images (N = {sweep['N']}): β trades mixtures for "
                     "retrieval", fontsize=9)
    else:
        raise ValueError(f"no figure for sweep {name!r}")
    fig.tight_layout()
    save_figure(fig, path)
