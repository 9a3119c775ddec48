"""The λ sweep: AsymMixer(λ) between SymMixer (λ → ∞) and ParaMixer (free weights).

This module aggregates finished runs and draws them; ``hamixer sweep`` (in
:mod:`hamixer.commands.sweep`) trains them. A run record is a dict with ``kind``
(``"asym"``, ``"sym"`` or ``"para"``), ``lambda`` (AsymMixer only), ``seed``,
``best_acc``, ``final_acc`` (top-1 %) and, for AsymMixer, ``breaking_ratio``
(‖W̃‖/‖W1ᵀ‖ averaged over blocks and MLPs at the end of training).
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from typing import Any

from .io import save_figure


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over seeds: one row per λ, plus the SymMixer and ParaMixer levels."""
    def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"n_seeds": len(runs), "seeds": [r["seed"] for r in runs]}
        for key in ("best_acc", "final_acc", "breaking_ratio"):
            if any(key in r for r in runs):
                out[key], out[f"{key}_std"] = _mean_std([r.get(key) for r in runs])
        return out

    lambdas = sorted({r["lambda"] for r in records if r["kind"] == "asym"}, reverse=True)
    rows = [{"lambda": lam, **summarize([r for r in records
                                         if r["kind"] == "asym" and r["lambda"] == lam])}
            for lam in lambdas]
    refs = {kind: summarize([r for r in records if r["kind"] == kind])
            for kind in ("sym", "para") if any(r["kind"] == kind for r in records)}
    return {"asym": rows, "reference": refs}


def _pm(mean: float, std: float, n: int) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"


def format_sweep_md(agg: dict[str, Any]) -> str:
    lines = ["| model | λ | best test top-1 (%) | final test top-1 (%) | ‖W̃‖/‖W1ᵀ‖ | seeds |",
             "|---|---:|---:|---:|---:|---:|"]
    names = {"sym": "SymMixer", "para": "ParaMixer"}
    if "sym" in agg["reference"]:
        r = agg["reference"]["sym"]
        lines.append(f"| SymMixer | ∞ | {_pm(r['best_acc'], r['best_acc_std'], r['n_seeds'])} | "
                     f"{_pm(r['final_acc'], r['final_acc_std'], r['n_seeds'])} | 0 | "
                     f"{r['n_seeds']} |")
    for r in agg["asym"]:
        ratio = r.get("breaking_ratio", float("nan"))
        ratio_s = "–" if math.isnan(ratio) else f"{ratio:.3g}"
        lines.append(f"| AsymMixer | {r['lambda']:g} | "
                     f"{_pm(r['best_acc'], r['best_acc_std'], r['n_seeds'])} | "
                     f"{_pm(r['final_acc'], r['final_acc_std'], r['n_seeds'])} | {ratio_s} | "
                     f"{r['n_seeds']} |")
    if "para" in agg["reference"]:
        r = agg["reference"]["para"]
        lines.append(f"| {names['para']} | (free) | "
                     f"{_pm(r['best_acc'], r['best_acc_std'], r['n_seeds'])} | "
                     f"{_pm(r['final_acc'], r['final_acc_std'], r['n_seeds'])} | – | "
                     f"{r['n_seeds']} |")
    return "\n".join(lines)


def plot_sweep(agg: dict[str, Any], path: str | os.PathLike, metric: str = "best_acc",
               title: str = "AsymMixer: accuracy vs symmetry-breaking penalty λ") -> None:
    """Two panels: test accuracy vs λ with the two reference levels; ‖W̃‖/‖W1ᵀ‖ vs λ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = agg["asym"]
    # λ = 0 sits one decade left of the smallest positive λ on the log axis, labelled "0".
    positive = [r["lambda"] for r in rows if r["lambda"] > 0]
    zero_at = (min(positive) if positive else 1.0) / 10
    lams = [r["lambda"] if r["lambda"] > 0 else zero_at for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    acc = [r[metric] for r in rows]
    err = [r.get(f"{metric}_std", 0.0) for r in rows]
    ax1.errorbar(lams, acc, yerr=err, marker="o", capsize=3, color="C0", label="AsymMixer(λ)")
    styles = {"sym": ("SymMixer (tied)", "C3"), "para": ("ParaMixer (free)", "C2")}
    for kind, (label, color) in styles.items():
        ref = agg["reference"].get(kind)
        if not ref:
            continue
        mean, std = ref[metric], ref.get(f"{metric}_std", 0.0)
        ax1.axhline(mean, color=color, ls="--", label=f"{label}: {mean:.2f}%")
        if std > 0:
            ax1.axhspan(mean - std, mean + std, color=color, alpha=0.12)
    ticks = sorted(set(lams))
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xticks(ticks, [("0" if t == zero_at and 0.0 in [r["lambda"] for r in rows]
                               else f"{t:g}") for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("penalty λ (log axis; 0 = no penalty)")
        ax.grid(alpha=0.3)
        ax.invert_xaxis()  # left: strong penalty (near-symmetric); right: free
    ax1.set_ylabel(f"test top-1 (%), {'best' if metric == 'best_acc' else 'final'} epoch")
    ax1.set_title("accuracy")
    ax1.legend(fontsize=8)
    ratios = [r.get("breaking_ratio", float("nan")) for r in rows]
    ratio_err = [r.get("breaking_ratio_std", 0.0) for r in rows]
    ax2.errorbar(lams, ratios, yerr=ratio_err, marker="s", capsize=3, color="C1")
    ax2.set_yscale("log")
    ax2.set_ylabel("‖W̃‖ / ‖W1ᵀ‖ (mean over blocks and MLPs)")
    ax2.set_title("size of the symmetry-breaking matrix")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
