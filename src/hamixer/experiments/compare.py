"""Train several models under one budget and tabulate them (``hamixer compare``).

Every model gets the same config, seed, data order and number of epochs; only the model
differs. Runs live in ``OUT/<model>/seed<k>`` and are resumed, so an interrupted comparison
continues and a finished one is only re-tabulated. ``jobs`` trains that many at a time
(None: as many as the cores or GPUs allow, :func:`.jobs.parallelism`).

With ``n_iters`` the comparison is the n_iter study (the official code's ``_ni2/_ni3``
models): each model is trained with each block applied n times, for every n, in
``OUT/<model>-niter<n>/seed<k>``, and for the models with an energy the table says how many
of those applications lowered their block's energy (:func:`.iterations.run_descent`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..io import write_json, write_text
from ..plots import plot_curves
from ..runs import (
    COMPARISON,
    COMPARISON_TABLE,
    CURVES_PLOT,
    format_mean_std,
    mean_std,
    read_metrics,
)
from ..train.config import TrainConfig
from .cluster import check_no_active_submission
from .jobs import Job, Launcher, run_jobs


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of a comparison: a model, at one n_iter (None: as the config builds it)."""

    model: str
    n_iter: int | None = None

    @property
    def name(self) -> str:
        return self.model if self.n_iter is None else f"{self.model}-niter{self.n_iter}"

    def config(self, base: TrainConfig, seed: int, out: Path) -> TrainConfig:
        kwargs = base.model_kwargs if self.n_iter is None else {**base.model_kwargs,
                                                                "n_iter": self.n_iter}
        return dataclasses.replace(base, model=self.model, model_kwargs=kwargs, seed=seed,
                                   out=str(out / self.name / f"seed{seed}"), resume=True)


def run_compare(base: TrainConfig, models: Sequence[str], seeds: Sequence[int], out: Path,
                log: Callable[[str], None] = print, symmetry: bool = True,
                command: str | None = None, jobs: int | None = None,
                n_iters: Sequence[int] | None = None, launcher: Launcher | None = None
                ) -> dict[str, Any] | None:
    """Train each of ``models`` (at each of ``n_iters``, if given) for each of ``seeds``;
    write results.{md,json} and curves.png. With a ``launcher`` that only submits the runs,
    nothing is written here and None is returned."""
    variants = ([Variant(m) for m in models] if not n_iters else
                [Variant(m, n) for m in models for n in n_iters])
    plan = [(v, Job(f"{v.name} seed {seed}", v.config(base, seed, out), symmetry))
            for v in variants for seed in seeds]
    check_no_active_submission(out, [job for _, job in plan])
    summaries = run_jobs([job for _, job in plan], jobs, log, progress=not base.quiet,
                         launcher=launcher)
    if summaries is None:
        return None
    runs: dict[str, list[dict[str, Any]]] = {}
    curves: dict[str, list[list[dict[str, Any]]]] = {}
    descents: dict[str, list[dict[str, Any] | None]] = {}
    for (variant, job), summary in zip(plan, summaries, strict=True):
        runs.setdefault(variant.name, []).append(summary)
        # the run directory as planned (a summary's "out" is where it was trained)
        curves.setdefault(variant.name, []).append(read_metrics(job.cfg.out or ""))
        if n_iters:
            from .iterations import run_descent

            descents.setdefault(variant.name, []).append(
                run_descent(job.cfg.out or "", base.data_dir))
    rows = [_row(v, runs[v.name], seeds, descents.get(v.name)) for v in variants]
    results = {"dataset": base.dataset, "epochs": base.epochs, "batch_size": base.batch_size,
               "seeds": list(seeds), "config": {**base.to_dict(), "model": None, "out": None},
               "n_iters": list(n_iters) if n_iters else None,
               "models": rows, "runs": runs, "command": command}
    write_json(out / COMPARISON, results)
    table = format_table(rows, len(seeds))
    write_text(out / COMPARISON_TABLE, _header(base, seeds, n_iters) + table + "\n")
    plot_curves(curves, out / CURVES_PLOT, f"{base.dataset}: test accuracy")
    return {"results": results, "table": table}


def _row(variant: Variant, summaries: list[dict[str, Any]], seeds: Sequence[int],
         descents: list[dict[str, Any] | None] | None) -> dict[str, Any]:
    best = mean_std(s["best_test_acc"] for s in summaries)
    final = mean_std(s["final_test_acc"] for s in summaries)
    secs = mean_std(s["total_seconds"] for s in summaries)
    ips = mean_std(s["train_images_per_s"] for s in summaries)
    row = {"model": variant.name, "params": summaries[0]["params"], "seeds": list(seeds),
           "best_test_acc": best[0], "best_test_acc_std": best[1],
           "final_test_acc": final[0], "final_test_acc_std": final[1],
           "seconds": secs[0], "seconds_std": secs[1],
           "train_images_per_s": ips[0], "n": len(summaries)}
    if variant.n_iter is not None:
        row.update(architecture=variant.model, n_iter=variant.n_iter,
                   descent=_descent_over_seeds(descents or []))
    return row


def _descent_over_seeds(records: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The applications that lowered the energy, summed over the seeds; None unless every
    seed has a record (a model without an energy has none)."""
    done = [r for r in records if r is not None]
    if not done or len(done) < len(records):
        return None
    return {"lowered": sum(r["lowered"] for r in done),
            "applications": sum(r["applications"] for r in done),
            "largest_rise": max(r["largest_rise"] for r in done),
            "images": min(r["images"] for r in done)}


def model_arguments_line(kwargs: dict[str, Any]) -> str:
    """What the plan changed in the registered models: the names in the table are the
    registered ones, so a table of, say, AsymMixer at λ = 0 says so here."""
    return "model arguments: " + ", ".join(f"{k}={v}" for k, v in kwargs.items())


def _header(base: TrainConfig, seeds: Sequence[int], n_iters: Sequence[int] | None) -> str:
    text = (f"# {base.dataset}: {base.epochs} epochs, batch {base.batch_size}, "
            f"seeds {', '.join(map(str, seeds))}\n\n")
    if base.model_kwargs:
        text += model_arguments_line(base.model_kwargs) + "\n\n"
    if n_iters:
        text += (f"each block applied n_iter = {', '.join(map(str, n_iters))} times with "
                 "shared weights; energy descent: of the applications of every block (all "
                 "seeds, best checkpoint, test images), how many lowered the block's energy\n\n")
    return text


def format_table(rows: list[dict[str, Any]], n_seeds: int) -> str:
    study = any("n_iter" in r for r in rows)
    lines = ["| model | " + ("n_iter | " if study else "") + "params | best test acc (%) | "
             "final test acc (%) | time (s) | img/s |" + (" energy descent |" if study else ""),
             "|---|" + ("---:|" if study else "") + "---:|---:|---:|---:|---:|"
             + ("---|" if study else "")]
    for r in rows:
        name = r.get("architecture", r["model"])
        lines.append(
            f"| {name} | " + (f"{r['n_iter']} | " if study else "")
            + f"{r['params'] / 1e6:.3f} M | "
            f"{format_mean_std(r['best_test_acc'], r['best_test_acc_std'], n_seeds)} | "
            f"{format_mean_std(r['final_test_acc'], r['final_test_acc_std'], n_seeds)} | "
            f"{format_mean_std(r['seconds'], r['seconds_std'], n_seeds, 0)} | "
            f"{r['train_images_per_s']:.0f} |"
            + (f" {format_descent(r.get('descent'))} |" if study else ""))
    return "\n".join(lines)


def format_descent(d: dict[str, Any] | None) -> str:
    if d is None:
        return "–"
    rise = f", largest rise {d['largest_rise']:.3g}" if d["lowered"] < d["applications"] else ""
    return f"{d['lowered']} of {d['applications']} lowered{rise}"
