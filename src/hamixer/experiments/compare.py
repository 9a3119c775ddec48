"""Train several models under one budget and tabulate them (``hamixer compare``).

Every model gets the same config, seed, data order and number of epochs; only the model
differs. Runs live in ``OUT/<model>/seed<k>`` and are resumed, so an interrupted comparison
continues and a finished one is only re-tabulated. ``jobs`` trains that many at a time
(:mod:`hamixer.experiments.jobs`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..io import write_json, write_text
from ..plots import plot_curves
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
    curves: dict[str, list[list[dict[str, Any]]]] = {}
    for job, summary in zip(plan, summaries, strict=True):
        runs.setdefault(job.cfg.model, []).append(summary)
        # the run directory as planned (a summary's "out" is where it was trained)
        curves.setdefault(job.cfg.model, []).append(read_metrics(job.cfg.out or ""))
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
    plot_curves(curves, out / "curves.png", f"{base.dataset}: test accuracy")
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


