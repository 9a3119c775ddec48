"""Train the λ sweep (``hamixer sweep``): AsymMixer at each λ plus SymMixer and ParaMixer.

Every run shares the config, seed, data order and budget; only the model (and λ) differ. Runs
live in ``OUT/<model>[-lambda<λ>]/seed<k>`` and are resumed like ``compare``'s, so an
interrupted sweep continues and a finished one is only re-tabulated. Aggregation and plots are
in :mod:`hamixer.sweep`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..io import write_json, write_text
from .config import TrainConfig

#: The λ grid of THEORY §3.
DEFAULT_LAMBDAS = (1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 0.0)


def run_name(model: str, lam: float | None) -> str:
    return model if lam is None else f"{model}-lambda{lam:g}"


def final_breaking_ratio(run_dir: Path) -> float:
    """‖W̃‖/‖W1ᵀ‖ of the last checkpoint, averaged over the token and channel MLP means."""
    from ..symmetry import flat_symmetry
    from .checkpoint import load_model

    model, _ = load_model(run_dir, prefer="last")
    flat = flat_symmetry(model)
    vals = [flat[f"sym/mean.{k}.breaking_ratio"] for k in ("token", "channel")
            if f"sym/mean.{k}.breaking_ratio" in flat]
    return sum(vals) / len(vals) if vals else float("nan")


def run_sweep(base: TrainConfig, lambdas: Sequence[float], seeds: Sequence[int], out: Path,
              references: bool = True, symmetry: bool = True, command: str | None = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the sweep; write ``sweep.json``, ``sweep.md`` and ``sweep.png`` into ``out``."""
    from ..provenance import versions
    from ..sweep import aggregate, format_sweep_md, plot_sweep
    from .cli_args import resolve_model_name
    from .compare import train_run

    size = {k: resolve_model_name(k, base.dataset) for k in ("asymmixer", "symmixer",
                                                              "paramixer")}
    plan: list[tuple[str, float | None]] = [("asym", lam) for lam in lambdas]
    if references:
        plan = [("sym", None), *plan, ("para", None)]
    kinds = {"asym": "asymmixer", "sym": "symmixer", "para": "paramixer"}
    records: list[dict[str, Any]] = []
    total, k = len(plan) * len(seeds), 0
    for kind, lam in plan:
        model = size[kinds[kind]]
        kwargs = dict(base.model_kwargs)
        kwargs.pop("asym_lambda", None)
        if lam is not None:
            kwargs["asym_lambda"] = lam
        for seed in seeds:
            k += 1
            run_dir = out / run_name(model, lam) / f"seed{seed}"
            cfg = dataclasses.replace(base, model=model, model_kwargs=kwargs, seed=seed,
                                      out=str(run_dir), resume=True)
            s = train_run(cfg, symmetry)
            rec = {"kind": kind, "model": model, "seed": seed, "best_acc": s["best_test_acc"],
                   "final_acc": s["final_test_acc"], "seconds": s["total_seconds"],
                   "out": str(run_dir)}
            if lam is not None:
                rec["lambda"] = lam
                rec["breaking_ratio"] = final_breaking_ratio(run_dir)
            records.append(rec)
            ratio = f"  ‖W̃‖/‖W1ᵀ‖ {rec['breaking_ratio']:.3g}" if lam is not None else ""
            log(f"[{k}/{total}] {run_name(model, lam)} seed {seed}: best {rec['best_acc']:.2f}%"
                f"  final {rec['final_acc']:.2f}%{ratio}  {rec['seconds']:.0f}s")
    agg = aggregate(records)
    table = format_sweep_md(agg)
    write_json(out / "sweep.json", {
        "dataset": base.dataset, "epochs": base.epochs, "batch_size": base.batch_size,
        "lambdas": list(lambdas), "seeds": list(seeds), "models": size,
        "config": {**base.to_dict(), "model": None, "out": None},
        "records": records, "aggregate": agg, "command": command, "versions": versions()})
    header = (f"# λ sweep on {base.dataset}: {base.epochs} epochs, batch {base.batch_size}, "
              f"seeds {', '.join(map(str, seeds))}\n\n")
    footer = f"\n\nCommand: `{command}`\n" if command else "\n"
    write_text(out / "sweep.md", header + table + footer)
    plot_sweep(agg, out / "sweep.png",
               title=f"{size['asymmixer']} on {base.dataset}: accuracy vs penalty λ "
                     f"({base.epochs} epochs, {len(seeds)} seed{'s' if len(seeds) > 1 else ''})")
    return {"records": records, "aggregate": agg, "table": table}
