"""The run directory: the names of the files a training run writes, and the one reader of them.

A run directory holds ``config.yaml``, ``metrics.jsonl`` (one JSON row per finished epoch,
``epoch`` counted from 1), ``summary.json`` (once the run ends), checkpoints and, for the
commands that record it, ``command.txt`` and ``iterated_energy.json`` (the energy after each
application of each block, :mod:`hamixer.measures.iterated_energy`). The trainer writes them
under the names below; everything else finds and reads them here (checkpoints are loaded by
:mod:`hamixer.train.checkpoint`).
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# ------------------------------------------------------------ the files of a training run
#: The resolved configuration (:mod:`hamixer.train.config`).
CONFIG = "config.yaml"
#: timm's ``args.yaml``: the command's flags as given.
ARGS = "args.yaml"
#: One JSON row per finished epoch, and timm's ``summary.csv`` beside it.
METRICS = "metrics.jsonl"
METRICS_CSV = "summary.csv"
#: What the per-epoch hooks return for the untrained model (epoch 0).
INIT_METRICS = "init_metrics.json"
#: The record of a finished run.
SUMMARY = "summary.json"
#: The records of the checkpoint where training stopped and of the best one.
LAST_CHECKPOINT = "last.json"
BEST_CHECKPOINT = "best.json"
#: The logged weight symmetry over epochs and per block (``hamixer symmetry --plot``).
SYMMETRY_PLOT = "symmetry.png"
SYMMETRY_BLOCKS_PLOT = "symmetry-blocks.png"
#: Loss and top-1 per epoch of a run (``hamixer train``), or test top-1 of every run of a
#: comparison (``hamixer compare``).
CURVES_PLOT = "curves.png"
#: The record of a run's best checkpoint's iterated energies.
ITERATED_ENERGY = "iterated_energy.json"

# ------------------------------------------------------------ the records of other commands
#: ``hamixer memory train``: the energy memory's weights and its configuration.
MEMORY_WEIGHTS = "model.safetensors"
MEMORY_CONFIG = "config.json"
DYNAMICS = "dynamics.json"
COMPARISON = "results.json"
COMPARISON_TABLE = "results.md"
SWEEP = "sweep.json"
#: What a plan's submission to Slurm records beside its runs (job id, runs, their logs).
SUBMITTED = "submitted.json"

#: The files that say a folder holds the results of a command (its run), by command: a
#: command refuses to write into a folder holding any of them but its own run's to continue.
RUN_RECORDS: dict[str, tuple[str, ...]] = {
    "training run": (LAST_CHECKPOINT, BEST_CHECKPOINT, METRICS, SUMMARY),
    "memory run": (MEMORY_WEIGHTS, MEMORY_CONFIG),
    "dynamics run": (DYNAMICS,),
    "comparison": (COMPARISON,),
    "sweep": (SWEEP,),
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


def has_checkpoint(run_dir: str | os.PathLike, name: str = LAST_CHECKPOINT) -> bool:
    """Whether ``run_dir`` holds the record of a checkpoint (by default ``last.json``, where
    training stopped: a run that can be resumed)."""
    return (Path(run_dir) / name).is_file()


def read_metrics(run_dir: str | os.PathLike, upto_epoch: int | None = None
                 ) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl`` (none if the run has not finished an epoch yet)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows if upto_epoch is None else [r for r in rows if r["epoch"] <= upto_epoch]


def read_record(path: str | os.PathLike) -> Any:
    """A JSON record of a run (``summary.json``, ``results.json``, …), or None when there is
    none; a damaged one is one line."""
    from .errors import HamixerError

    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HamixerError(f"{path}: not valid JSON ({err})") from None


def read_init_metrics(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``init_metrics.json``: the measures of the untrained model (epoch 0), or None."""
    return read_record(Path(run_dir) / INIT_METRICS)


def read_summary(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``summary.json`` of a finished run, or None."""
    return read_record(Path(run_dir) / SUMMARY)


def read_checkpoint_record(run_dir: str | os.PathLike, name: str = LAST_CHECKPOINT
                           ) -> dict[str, Any] | None:
    """The record of a checkpoint (epoch, step, metrics, …; ``last.json`` by default) as far
    as it can be read now, or None: for following a run that is still writing it. Loading the
    checkpoint is :func:`hamixer.train.checkpoint.load_checkpoint`'s."""
    try:
        meta = json.loads((Path(run_dir) / name).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def read_config(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``config.yaml``, the run's resolved settings, or None when it has none; a damaged one
    is one line."""
    import yaml

    from .errors import HamixerError

    path = Path(run_dir) / CONFIG
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise HamixerError(f"{path}: not a readable configuration (not UTF-8 text)") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)  # yaml's own message spans several lines
        where = f", line {mark.line + 1}" if mark else ""
        raise HamixerError(f"{path}: not a readable configuration (invalid YAML{where})"
                           ) from None
    if not isinstance(data, dict):
        raise HamixerError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


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
    write_text(Path(run_dir) / METRICS, "".join(json.dumps(r) + "\n" for r in rows))
    lines = [",".join(SUMMARY_CSV)]
    lines += [",".join(str(r[key]) for key in SUMMARY_CSV.values()) for r in rows]
    write_text(Path(run_dir) / METRICS_CSV, "\n".join(lines) + "\n")
