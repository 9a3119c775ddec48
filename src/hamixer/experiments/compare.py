"""Train several models under one budget and tabulate them (``hamixer compare``).

Every model gets the same config, seed, data order and number of epochs; only the model
differs. Runs live in ``OUT/<model>/seed<k>`` and are resumed, so an interrupted comparison
continues and a finished one is only re-tabulated. ``jobs`` trains that many at a time
(:mod:`hamixer.experiments.jobs`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..io import save_figure, write_json, write_text
from ..runs import format_mean_std, mean_std, read_metrics
from ..train.config import TrainConfig
from .jobs import Job, run_jobs


def run_compare(base: TrainConfig, models: Sequence[str], seeds: Sequence[int], out: Path,
                log: Callable[[str], None] = print, symmetry: bool = True,
                command: str | None = None, jobs: int = 1) -> dict[str, Any]:
    """Train each of ``models`` for each of ``seeds``; write results.{md,json} and curves.png."""
    plan = [Job(f"{model} seed {seed}",
                dataclasses.replace(base, model=model, seed=seed,
                                    out=str(out / model / f"seed{seed}"), resume=True),
                symmetry)
            for model in models for seed in seeds]
    summaries = run_jobs(plan, jobs, log, progress=not base.quiet)
    runs: dict[str, list[dict[str, Any]]] = {}
    for job, summary in zip(plan, summaries, strict=True):
        runs.setdefault(job.cfg.model, []).append(summary)
    rows = []
    for model, summaries in runs.items():
        best = mean_std(s["best_test_acc"] for s in summaries)
        final = mean_std(s["final_test_acc"] for s in summaries)
        secs = mean_std(s["total_seconds"] for s in summaries)
        ips = mean_std(s["train_images_per_s"] for s in summaries)
        rows.append({"model": model, "params": summaries[0]["params"], "seeds": list(seeds),
                     "best_test_acc": best[0], "best_test_acc_std": best[1],
                     "final_test_acc": final[0], "final_test_acc_std": final[1],
                     "seconds": secs[0], "seconds_std": secs[1],
                     "train_images_per_s": ips[0], "n": len(summaries)})
    results = {"dataset": base.dataset, "epochs": base.epochs, "batch_size": base.batch_size,
               "seeds": list(seeds), "config": {**base.to_dict(), "model": None, "out": None},
               "models": rows, "runs": runs, "command": command}
    write_json(out / "results.json", results)
    table = format_table(rows, len(seeds))
    header = (f"# {base.dataset}: {base.epochs} epochs, batch {base.batch_size}, "
              f"seeds {', '.join(map(str, seeds))}\n\n")
    if base.model_kwargs:
        # the names in the table are the registered ones; say what was changed in them
        header += ("model arguments: "
                   + ", ".join(f"{k}={v}" for k, v in base.model_kwargs.items()) + "\n\n")
    write_text(out / "results.md", header + table + "\n")
    plot_curves({m: [read_metrics(s["out"]) for s in ss] for m, ss in runs.items()},
                out / "curves.png", f"{base.dataset}: test accuracy")
    return {"results": results, "table": table}


def format_table(rows: list[dict[str, Any]], n_seeds: int) -> str:
    lines = ["| model | params | best test acc (%) | final test acc (%) | time (s) | img/s |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['params'] / 1e6:.3f} M | "
            f"{format_mean_std(r['best_test_acc'], r['best_test_acc_std'], n_seeds)} | "
            f"{format_mean_std(r['final_test_acc'], r['final_test_acc_std'], n_seeds)} | "
            f"{format_mean_std(r['seconds'], r['seconds_std'], n_seeds, 0)} | "
            f"{r['train_images_per_s']:.0f} |")
    return "\n".join(lines)


def plot_curves(curves: dict[str, list[list[dict[str, Any]]]], path: Path, title: str) -> None:
    """Test accuracy against epoch, one line per model (mean over seeds, ± std band)."""
    import numpy as np
    from matplotlib.figure import Figure

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
    from matplotlib.ticker import MaxNLocator

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
