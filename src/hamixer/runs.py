"""The run directory: the one reader of what a training run writes.

A run directory holds ``config.yaml``, ``metrics.jsonl`` (one JSON row per finished epoch,
``epoch`` counted from 1), ``summary.json`` (once the run ends), checkpoints and, for the
commands that record it, ``command.txt`` and ``iterated_energy.json`` (the energy after each
application of each block, :mod:`hamixer.experiments.iterations`).
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: The files that say a folder holds the results of a command (its run), by command: a
#: command refuses to write into a folder holding any of them but its own run's to continue.
RUN_RECORDS: dict[str, tuple[str, ...]] = {
    "training run": ("last.json", "best.json", "metrics.jsonl", "summary.json"),
    "memory run": ("model.safetensors", "config.json"),
    "dynamics run": ("dynamics.json",),
    "comparison": ("results.json",),
    "sweep": ("sweep.json",),
}


def run_records(folder: str | os.PathLike) -> dict[str, list[str]]:
    """The runs ``folder`` holds: kind → the record files of that kind found there."""
    folder = Path(folder)
    found = {kind: [n for n in names if (folder / n).is_file()]
             for kind, names in RUN_RECORDS.items()}
    return {kind: names for kind, names in found.items() if names}


def refuse_existing_run(folder: str | os.PathLike, flag: str = "--out") -> None:
    """A one-line error if ``folder`` already holds a run of any command (its files would be
    overwritten); a new or empty folder passes."""
    from .errors import HamixerError

    found = run_records(folder)
    if found:
        what = "; ".join(f"a {kind} ({', '.join(names)})" for kind, names in found.items())
        raise HamixerError(f"{folder} already holds {what}; choose another {flag}")


def read_metrics(run_dir: str | os.PathLike, upto_epoch: int | None = None
                 ) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl`` (none if the run has not finished an epoch yet)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows if upto_epoch is None else [r for r in rows if r["epoch"] <= upto_epoch]


def read_init_metrics(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``init_metrics.json``: the measures of the untrained model (epoch 0), or None."""
    path = Path(run_dir) / "init_metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def read_summary(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``summary.json`` of a finished run, or None."""
    path = Path(run_dir) / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


#: The record of a run's best checkpoint's iterated energies.
ITERATED_ENERGY = "iterated_energy.json"


def read_iterated_energy(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``iterated_energy.json``, or None; a damaged one is the user's to delete."""
    from .errors import HamixerError

    path = Path(run_dir) / ITERATED_ENERGY
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HamixerError(f"{path}: not a readable record ({err}); delete it to measure "
                           "again") from None
    if not isinstance(record, dict):
        raise HamixerError(f"{path}: not a record of iterated energies; delete it")
    return record


def mean_std(values: Iterable[float | None]) -> tuple[float, float]:
    """Mean and sample standard deviation over the values that are numbers (NaN and None are
    left out); NaN, NaN when none is; a standard deviation of 0 for a single value."""
    kept = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not kept:
        return math.nan, math.nan
    return statistics.fmean(kept), statistics.stdev(kept) if len(kept) > 1 else 0.0


def format_mean_std(mean: float, std: float, n: int, digits: int = 2) -> str:
    """``mean ± std`` for several seeds, ``mean`` for one, ``–`` for none."""
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def format_measure(v: float, digits: int) -> str:
    """``v`` with ``digits`` decimals, or two significant digits where those decimals would
    show 0 (a breaking ratio at λ = 10 is ~1e-4); below 1e-9, a zero's rounding noise."""
    if math.isnan(v):
        return "nan"
    if 1e-9 <= abs(v) < 0.5 * 10.0 ** -digits:
        return f"{v:.1e}"
    return f"{v:.{digits}f}"


#: timm's ``summary.csv`` columns ← our ``metrics.jsonl`` keys.
SUMMARY_CSV = {"epoch": "epoch", "train_loss": "train_loss", "eval_loss": "test_loss",
               "eval_top1": "test_acc", "eval_top5": "test_top5", "lr": "lr"}


def write_metrics(run_dir: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write ``metrics.jsonl`` (one JSON row per finished epoch) and timm's ``summary.csv``
    (epoch, train_loss, eval_loss, eval_top1, eval_top5, lr), each atomically."""
    from .io import write_text

    rows = list(rows)
    write_text(Path(run_dir) / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    lines = [",".join(SUMMARY_CSV)]
    lines += [",".join(str(r[key]) for key in SUMMARY_CSV.values()) for r in rows]
    write_text(Path(run_dir) / "summary.csv", "\n".join(lines) + "\n")
