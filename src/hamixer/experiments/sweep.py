"""The λ sweep (``hamixer sweep``): AsymMixer(λ) between SymMixer (λ → ∞) and the free Mixers.

Every run shares the config, seed, data order and budget; only the model, λ and where the
breaking matrix W̃ starts (``breaking_init``) differ. Runs live in
``OUT/<model>[-lambda<λ>][-<breaking_init>]/seed<k>`` (no suffix for the default ``xavier``)
and are resumed like ``compare``'s, so an interrupted sweep continues, a finished one is only
re-tabulated, and two sweeps with the same ``OUT`` share the runs they have in common.

A run record is a dict with ``kind`` (``"asym"``, or a reference: ``"sym"``, ``"para"``,
``"vanilla"``), for AsymMixer ``lambda``, ``breaking_init`` and ``breaking_ratio``
(‖W̃‖/‖W1ᵀ‖ averaged over the token and channel MLPs at the end of training), and
``seed``, ``best_acc``, ``final_acc`` (top-1 %).
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..io import write_json, write_text
from ..runs import format_mean_std, mean_std, read_init_metrics, read_metrics
from ..train.config import TrainConfig
from .jobs import Job, run_jobs

#: The λ grid of THEORY §3, from strong penalty to none.
DEFAULT_LAMBDAS = (10.0, 1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 0.0)
#: Reference families: kind → (family, name in tables). ``vit`` is timm's ViT at the Mixers'
#: size (the ``vit_*`` presets), to read the λ curve against a Transformer.
REFERENCES = {"sym": ("symmixer", "SymMixer"), "para": ("paramixer", "ParaMixer"),
              "vanilla": ("vanillamixer", "vanilla Mixer"), "vit": ("vit", "ViT")}
DEFAULT_REFERENCES = ("sym", "para", "vanilla")


def run_name(model: str, lam: float | None, breaking_init: str = "xavier") -> str:
    name = model if lam is None else f"{model}-lambda{lam:g}"
    return name if breaking_init == "xavier" else f"{name}-{breaking_init}"


def is_end(lam: float) -> bool:
    """The ends of the λ range (λ ≥ 1: near-tied; λ = 0: free), where the paper's claim is
    sharpest and a sweep spends its seeds first."""
    return lam >= 1 or lam == 0


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """What a sweep trains: the λ grid, the W̃ starts, the seeds and the references."""

    lambdas: Sequence[float]
    seeds: Sequence[int]
    breaking_inits: Sequence[str] = ("xavier",)
    references: Sequence[str] = DEFAULT_REFERENCES
    #: seeds for 0 < λ < 1 (default: ``seeds``); the ends and the references get ``seeds``
    mid_seeds: Sequence[int] | None = None
    #: W̃ starts for 0 < λ < 1 (default: ``breaking_inits``); the ends get ``breaking_inits``
    mid_breaking_inits: Sequence[str] | None = None

    def seeds_for(self, lam: float | None) -> Sequence[int]:
        if lam is None or is_end(lam) or self.mid_seeds is None:
            return self.seeds
        return self.mid_seeds

    def inits_for(self, lam: float) -> Sequence[str]:
        if is_end(lam) or self.mid_breaking_inits is None:
            return self.breaking_inits
        return self.mid_breaking_inits

    def entries(self) -> list[tuple[str, float | None, str, int]]:
        """(kind, λ, breaking_init, seed), one pass over the grid per seed, so that a sweep
        cut short has whole curves for its first seeds."""
        grid: list[tuple[str, float | None, str]] = [(k, None, "xavier")
                                                     for k in self.references]
        grid += [("asym", lam, init) for lam in self.lambdas for init in self.inits_for(lam)]
        seeds = list(dict.fromkeys([*self.seeds, *(self.mid_seeds or [])]))
        return [(kind, lam, init, seed) for seed in seeds for kind, lam, init in grid
                if seed in self.seeds_for(lam)]


#: The logged means of ‖W̃‖/‖W1ᵀ‖ over the blocks, one per MLP kind.
_RATIO_KEYS = tuple(f"sym/mean.{k}.breaking_ratio" for k in ("token", "channel"))


def breaking_ratio(row: dict[str, Any]) -> float:
    """‖W̃‖/‖W1ᵀ‖ of one row of measures, averaged over the token and channel MLP means
    (NaN if the row has none)."""
    vals = [row[k] for k in _RATIO_KEYS if k in row]
    return sum(vals) / len(vals) if vals else math.nan


def final_breaking_ratio(run_dir: str | os.PathLike) -> float:
    """:func:`breaking_ratio` at the end of a run: from the last row of ``metrics.jsonl``
    when the symmetry measures were logged, else from the last checkpoint."""
    rows = read_metrics(run_dir)
    if rows and _RATIO_KEYS[0] in rows[-1]:
        return breaking_ratio(rows[-1])
    from ..train.checkpoint import load_model
    from .symmetry import flat_symmetry

    return breaking_ratio(flat_symmetry(load_model(run_dir, prefer="last")[0]))


def run_sweep(base: TrainConfig, plan: SweepPlan, out: Path, symmetry: bool = True,
              command: str | None = None, jobs: int = 1, size: str | None = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the sweep; write ``sweep.json``, ``sweep.md`` (with the ends against their
    references), ``sweep.png`` (against λ) and ``sweep-epochs.png`` (per epoch) into ``out``.

    ``size`` (e.g. ``"m4_28"``) picks the registered size of every model; by default, the
    one that fits the dataset."""
    from ..data import dataset_info
    from ..provenance import versions

    families = {"asym": "asymmixer", **{k: fam for k, (fam, _) in REFERENCES.items()}}
    size = size or dataset_info(base.dataset).model_size
    size = {kind: f"{fam}_{size}" for kind, fam in families.items()}
    entries = plan.entries()
    run_jobs_plan = []
    for kind, lam, init, seed in entries:
        kwargs = {k: v for k, v in base.model_kwargs.items()
                  if k not in ("asym_lambda", "breaking_init")}
        if lam is not None:
            kwargs.update(asym_lambda=lam, breaking_init=init)
        name = run_name(size[kind], lam, init)
        cfg = dataclasses.replace(base, model=size[kind], model_kwargs=kwargs, seed=seed,
                                  out=str(out / name / f"seed{seed}"), resume=True)
        run_jobs_plan.append(Job(f"{name} seed {seed}", cfg, symmetry))
    summaries = run_jobs(run_jobs_plan, jobs, log, progress=not base.quiet)
    records = []
    for (kind, lam, init, seed), job, s in zip(entries, run_jobs_plan, summaries, strict=True):
        rec = {"kind": kind, "model": job.cfg.model, "seed": seed, "best_acc": s["best_test_acc"],
               "final_acc": s["final_test_acc"], "seconds": s["total_seconds"],
               "out": job.cfg.out}
        if lam is not None:
            rec.update({"lambda": lam, "breaking_init": init,
                        "breaking_ratio": final_breaking_ratio(job.cfg.out or "")})
        records.append(rec)
    agg = aggregate(records)
    table = format_sweep_md(agg)
    write_json(out / "sweep.json", {
        "dataset": base.dataset, "epochs": base.epochs, "batch_size": base.batch_size,
        "lambdas": list(plan.lambdas), "seeds": list(plan.seeds),
        "mid_seeds": None if plan.mid_seeds is None else list(plan.mid_seeds),
        "breaking_inits": list(plan.breaking_inits),
        "mid_breaking_inits": (None if plan.mid_breaking_inits is None
                               else list(plan.mid_breaking_inits)),
        "models": size,
        "config": {**base.to_dict(), "model": None, "out": None},
        "records": records, "aggregate": agg, "command": command, "versions": versions()})
    middle = middle_note(plan.mid_seeds, plan.mid_breaking_inits)
    header = (f"# λ sweep on {base.dataset}: {base.epochs} epochs, batch {base.batch_size}, "
              f"seeds {', '.join(map(str, plan.seeds))}{middle}\n\n")
    footer = f"\n\nCommand: `{command}`\n" if command else "\n"
    ends = format_ends_md(agg)
    write_text(out / "sweep.md", header + table + (f"\n\n{ends}" if ends else "") + footer)
    from ..plots import plot_sweep, plot_sweep_epochs  # matplotlib: not for `sweep --help`

    n_seeds = len(plan.seeds)
    seeds_text = f"{n_seeds} seed{'s' if n_seeds > 1 else ''}"
    plot_sweep(agg, out / "sweep.png",
               title=f"{size['asym']} on {base.dataset}: accuracy vs penalty λ "
                     f"({base.epochs} epochs, {seeds_text})")
    plot_sweep_epochs(*epoch_series(records), out / "sweep-epochs.png",
                      title=f"{size['asym']} on {base.dataset}, per epoch (mean over seeds)")
    return {"records": records, "aggregate": agg, "table": table, "ends": ends}


def middle_note(mid_seeds: Sequence[int] | None, mid_inits: Sequence[str] | None) -> str:
    """What the middle of the λ range gets where it differs from the ends (a sweep's
    ``mid_seeds`` and ``mid_breaking_inits``), for a table's header."""
    parts = []
    if mid_seeds is not None:
        parts.append(f"seeds {', '.join(map(str, mid_seeds))}")
    if mid_inits is not None:
        parts.append(f"W̃ start {', '.join(mid_inits)}")
    return f" (0 < λ < 1: {'; '.join(parts)})" if parts else ""


# ------------------------------------------------------------------------ aggregation
def _summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n_seeds": len(runs), "seeds": [r["seed"] for r in runs]}
    for key in ("best_acc", "final_acc", "breaking_ratio"):
        if any(key in r for r in runs):
            out[key], out[f"{key}_std"] = mean_std(r.get(key) for r in runs)
    return out


def aggregate(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over seeds: one row per (λ, breaking_init), plus the reference levels."""
    asym = [r for r in records if r["kind"] == "asym"]
    inits = list(dict.fromkeys(r.get("breaking_init", "xavier") for r in asym))
    rows = []
    for init in inits:
        for lam in sorted({r["lambda"] for r in asym}, reverse=True):
            runs = [r for r in asym
                    if r["lambda"] == lam and r.get("breaking_init", "xavier") == init]
            if runs:
                rows.append({"lambda": lam, "breaking_init": init, **_summarize(runs)})
    refs = {kind: _summarize([r for r in records if r["kind"] == kind])
            for kind in REFERENCES if any(r["kind"] == kind for r in records)}
    return {"asym": rows, "reference": refs}


def format_sweep_md(agg: dict[str, Any]) -> str:
    """The sweep as a Markdown table: SymMixer, AsymMixer from large λ to 0, free Mixers."""
    inits = {r.get("breaking_init", "xavier") for r in agg["asym"]}
    with_init = inits != {"xavier"}
    head = "| model | λ |" + (" W̃ start |" if with_init else "")
    lines = [head + " best test top-1 (%) | final test top-1 (%) | ‖W̃‖/‖W1ᵀ‖ | seeds |",
             "|---|---:|" + ("---|" if with_init else "") + "---:|---:|---:|---:|"]

    def line(name: str, lam: str, init: str, r: dict[str, Any], ratio: str) -> str:
        n = r["n_seeds"]
        return (f"| {name} | {lam} |" + (f" {init} |" if with_init else "")
                + f" {format_mean_std(r['best_acc'], r['best_acc_std'], n)} |"
                f" {format_mean_std(r['final_acc'], r['final_acc_std'], n)} | {ratio} | {n} |")

    refs = agg["reference"]
    if "sym" in refs:
        lines.append(line("SymMixer", "∞", "–", refs["sym"], "0"))
    for r in agg["asym"]:
        ratio = r.get("breaking_ratio", math.nan)
        lines.append(line("AsymMixer", f"{r['lambda']:g}", r.get("breaking_init", "xavier"),
                          r, "–" if math.isnan(ratio) else f"{ratio:.3g}"))
    for kind in ("para", "vanilla", "vit"):
        if kind in refs:
            lines.append(line(REFERENCES[kind][1], "(free)", "–", refs[kind], "–"))
    return "\n".join(lines)


def format_ends_md(agg: dict[str, Any]) -> str:
    """The ends of the λ range against the reference each should meet (THEORY §3): λ ≥ 1
    against SymMixer, λ = 0 against ParaMixer (the same function class). An end *meets* its
    reference when the difference of the mean best accuracies is at most one standard
    deviation over seeds (the larger of the two); with one seed that cannot be said."""
    refs = agg["reference"]
    lines = []
    for r in agg["asym"]:
        ref_kind = "sym" if r["lambda"] >= 1 else "para" if r["lambda"] == 0 else None
        ref = refs.get(ref_kind) if ref_kind else None
        if ref is None:
            continue
        delta = r["best_acc"] - ref["best_acc"]
        sigma = max(r["best_acc_std"], ref["best_acc_std"])
        n = min(r["n_seeds"], ref["n_seeds"])
        verdict = ("– (one seed)" if n < 2 else
                   f"{'yes' if abs(delta) <= sigma else 'no'} (σ = {sigma:.2f})")
        lines.append(f"| {r['lambda']:g} | {r.get('breaking_init', 'xavier')} | "
                     f"{REFERENCES[ref_kind][1]} | {delta:+.2f} | {verdict} |")
    if not lines:
        return ""
    return "\n".join(["| λ | W̃ start | reference | Δ best top-1 (points) | meets it |",
                      "|---:|---|---|---:|---|", *lines])


def epoch_series(records: Sequence[dict[str, Any]]) -> tuple[
        dict[tuple[float, str], dict[str, list[float]]], dict[str, list[float]]]:
    """Per epoch, mean over seeds: for each AsymMixer (λ, W̃ start) ``{"ratio": ‖W̃‖/‖W1ᵀ‖
    from epoch 0, "acc": test top-1 from epoch 1}``; for each reference (by its name in
    tables) its test top-1."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for r in records:
        label = (REFERENCES[r["kind"]][1] if r["kind"] != "asym" else
                 (r["lambda"], r.get("breaking_init", "xavier")))
        groups.setdefault(label, []).append(r)
    asym, refs = {}, {}
    for label, runs in groups.items():
        per_seed = [read_metrics(r["out"]) for r in runs if r.get("out")]
        per_seed = [rows for rows in per_seed if rows]
        if not per_seed:
            continue
        n = min(len(rows) for rows in per_seed)
        acc = [statistics.fmean(rows[i]["test_acc"] for rows in per_seed) for i in range(n)]
        if runs[0]["kind"] != "asym":
            refs[label] = acc
            continue
        inits = [read_init_metrics(r["out"]) for r in runs if r.get("out")]
        start = ([statistics.fmean(breaking_ratio(i) for i in inits)]
                 if inits and all(inits) else [math.nan])
        asym[label] = {"ratio": start + [statistics.fmean(breaking_ratio(rows[i])
                                                          for rows in per_seed)
                                         for i in range(n)], "acc": acc}
    return asym, refs


# ------------------------------------------------------------------------------ figure
