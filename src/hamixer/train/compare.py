"""Train several models under one budget and tabulate them (``hamixer compare``).

Every model gets the same config, seed, data order and number of epochs; only the model
differs. Runs live in ``OUT/<model>/seed<k>`` and are resumed, so an interrupted comparison
continues and a finished one is only re-tabulated.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..io import save_figure, write_json, write_text
from .config import TrainConfig


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def _fmt(mean: float, std: float, n: int, digits: int = 2) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def read_curve(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def train_run(cfg: TrainConfig, symmetry: bool = True) -> dict[str, Any]:
    """One (resumable) run of a comparison or sweep; with ``symmetry``, the weight-symmetry
    measures are logged every epoch and drawn into ``symmetry.png``."""
    from ..symmetry import symmetry_hook
    from ..symmetry_plot import plot_run_symmetry
    from .cli_args import has_free_mlps
    from .engine import run_training

    if cfg.model_kwargs.get("init") == "symmetric" and not has_free_mlps(cfg.model):
        # a shared --init symmetric applies to the free models only; tied ones start tied
        cfg = dataclasses.replace(cfg, model_kwargs={k: v for k, v in cfg.model_kwargs.items()
                                                     if k != "init"})
    summary = run_training(cfg, hooks=(symmetry_hook,) if symmetry else (), log=lambda s: None)
    if symmetry:
        plot_run_symmetry(cfg.out)
    return summary


def run_compare(base: TrainConfig, models: Sequence[str], seeds: Sequence[int], out: Path,
                log: Callable[[str], None] = print, symmetry: bool = True,
                command: str | None = None) -> dict[str, Any]:
    """Train each of ``models`` for each of ``seeds``; write results.{md,json} and curves.png."""
    runs: dict[str, list[dict[str, Any]]] = {}
    total = len(models) * len(seeds)
    k = 0
    for model in models:
        for seed in seeds:
            k += 1
            run_dir = out / model / f"seed{seed}"
            cfg = dataclasses.replace(base, model=model, seed=seed, out=str(run_dir), resume=True)
            summary = train_run(cfg, symmetry)
            runs.setdefault(model, []).append(summary)
            log(f"[{k}/{total}] {model} seed {seed}: best {summary['best_test_acc']:.2f}%  "
                f"final {summary['final_test_acc']:.2f}%  {summary['total_seconds']:.0f}s  "
                f"{summary['train_images_per_s']:.0f} img/s")
    rows = []
    for model, summaries in runs.items():
        n = len(summaries)
        best = _mean_std([s["best_test_acc"] for s in summaries])
        final = _mean_std([s["final_test_acc"] for s in summaries])
        secs = _mean_std([s["total_seconds"] for s in summaries])
        ips = _mean_std([s["train_images_per_s"] for s in summaries])
        rows.append({"model": model, "params": summaries[0]["params"], "seeds": list(seeds),
                     "best_test_acc": best[0], "best_test_acc_std": best[1],
                     "final_test_acc": final[0], "final_test_acc_std": final[1],
                     "seconds": secs[0], "seconds_std": secs[1],
                     "train_images_per_s": ips[0], "n": n})
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
    plot_curves({m: [read_curve(Path(s["out"])) for s in ss] for m, ss in runs.items()},
                out / "curves.png", f"{base.dataset}: test accuracy")
    return {"results": results, "table": table}


def format_table(rows: list[dict[str, Any]], n_seeds: int) -> str:
    lines = ["| model | params | best test acc (%) | final test acc (%) | time (s) | img/s |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['params'] / 1e6:.3f} M | "
            f"{_fmt(r['best_test_acc'], r['best_test_acc_std'], n_seeds)} | "
            f"{_fmt(r['final_test_acc'], r['final_test_acc_std'], n_seeds)} | "
            f"{_fmt(r['seconds'], r['seconds_std'], n_seeds, 0)} | "
            f"{r['train_images_per_s']:.0f} |")
    return "\n".join(lines)


def plot_curves(curves: dict[str, list[list[dict[str, Any]]]], path: Path, title: str) -> None:
    """Test accuracy against epoch, one line per model (mean over seeds, ± std band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
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
    plt.close(fig)
