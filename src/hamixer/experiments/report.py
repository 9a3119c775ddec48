"""One Markdown report from finished run directories (``hamixer report``).

A directory's kind is read from what it holds: ``sweep.json`` (``hamixer sweep``),
``results.json`` (``hamixer compare``), ``dynamics.json`` (``hamixer dynamics``) or
``metrics.jsonl`` (``hamixer train``; with the weight-symmetry measures if they were logged).
PNGs are copied next to the report (``<report>_figures/``) so the report can be moved as a folder.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

from ..errors import HamixerError
from ..runs import (
    COMPARISON,
    CURVES_PLOT,
    DYNAMICS,
    LAST_CHECKPOINT,
    METRICS,
    SUMMARY,
    SWEEP,
    SYMMETRY_BLOCKS_PLOT,
    SYMMETRY_PLOT,
    format_measure,
    has_checkpoint,
    mean_std,
    read_config,
    read_init_metrics,
    read_metrics,
    read_record,
    read_summary,
)

KINDS = ("sweep", "compare", "dynamics", "training")


def detect_kind(run_dir: Path) -> str:
    if not run_dir.is_dir():
        raise HamixerError(f"{run_dir}: not a directory")
    records = ((SWEEP, "sweep"), (COMPARISON, "compare"), (DYNAMICS, "dynamics"),
               (METRICS, "training"))
    for name, kind in records:
        if (run_dir / name).is_file():
            return kind
    raise HamixerError(f"{run_dir}: not a run directory (no "
                       f"{', '.join(name for name, _ in records[:-1])} or {METRICS})")


class _Figures:
    """Copies PNGs into the report's figure folder under unique names; returns relative links."""

    def __init__(self, report: Path):
        self.dir = report.parent / f"{report.stem}_figures"
        self.base = report.parent
        self.used: set[str] = set()

    def target(self, label: str, name: str) -> Path:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{label}-{name}").strip("-")
        candidate, k = stem, 1
        while candidate in self.used:
            k += 1
            candidate = f"{k}-{stem}"
        self.used.add(candidate)
        self.dir.mkdir(parents=True, exist_ok=True)
        return self.dir / candidate

    def link(self, path: Path) -> str:
        return os.path.relpath(path, self.base).replace(os.sep, "/")

    def add(self, src: Path, label: str, caption: str) -> str:
        if not src.is_file():
            return ""
        dst = self.target(label, src.name)
        shutil.copyfile(src, dst)
        return f"![{caption}]({self.link(dst)})\n"


def _command_block(cmd: str | None) -> str:
    if not cmd:
        return "Command: not recorded (made outside the CLI or by an older version).\n"
    return f"Command:\n\n```\n{cmd}\n```\n"


def _versions_line(v: dict[str, str] | None) -> str:
    if not v:
        return ""
    return "Versions: " + ", ".join(f"{k} {v[k]}" for k in sorted(v)) + "\n"


def trained_on_line(summaries: list[dict[str, Any]]) -> str:
    """Where a table's runs were trained: each device with its number of runs and the torch
    versions they ran (a table may gather runs from several machines)."""
    devices: dict[str, tuple[int, set[str]]] = {}
    for s in summaries:
        device = str(s.get("device") or "unknown").split(":")[0]  # cuda:0 and cuda alike
        runs, torches = devices.get(device, (0, set()))
        torch_version = (s.get("versions") or {}).get("torch")
        devices[device] = (runs + 1, torches | ({torch_version} if torch_version else set()))
    if not devices:
        return ""
    parts = [f"{device} ({runs} run{'' if runs == 1 else 's'}"
             + (f", torch {', '.join(sorted(torches))}" if torches else "") + ")"
             for device, (runs, torches) in sorted(devices.items())]
    return "Trained on: " + "; ".join(parts) + ".\n"


def _fmt(v: Any, digits: int = 3) -> str:
    if isinstance(v, tuple):  # (mean, std) over seeds
        return f"{_fmt(v[0], digits)} ± {_fmt(v[1], digits)}"
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format_measure(v, digits) if isinstance(v, float) else str(v)


def mean_over_seeds(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One metrics row from the same epoch of several seeds: each ``sym/`` measure becomes
    (mean, sample std); other keys come from the first row. One row is returned as it is."""
    if len(rows) == 1:
        return rows[0]
    out = dict(rows[0])
    for key in rows[0]:
        vals = [r.get(key) for r in rows]
        if key.startswith("sym/") and all(isinstance(v, (int, float)) for v in vals):
            out[key] = mean_std(vals)
    return out


def _last_symmetry(run_dir: Path) -> dict[str, Any] | None:
    from .symmetry import read_run_symmetry

    rows = read_run_symmetry(run_dir)
    return rows[-1] if rows else None


_MEAN_COLS = [("cosine", "cos(W2, W1ᵀ)"), ("residual", "residual"),
              ("coupling_antisym", "‖J_anti‖/‖J‖"), ("breaking_ratio", "‖W̃‖/‖W1ᵀ‖"),
              ("update_cosine", "cos(ΔW2, ΔW1ᵀ)"),
              ("qk_sym", "‖M_sym‖/‖M‖ (QK)"), ("vo_sym", "‖N_sym‖/‖N‖ (VO)"),
              ("vo_qk_cosine", "cos(VO, QK)"), ("qk_symmetry_score", "symmetry score"),
              ("qk_directionality_score", "directionality score")]
_PART_SHORT = {"token": "tok", "channel": "ch"}


def symmetry_means_table(named_rows: list[tuple[str, dict[str, Any], dict[str, Any] | None]]
                         ) -> str:
    """``name | epoch-0 and final means of each measure``, one value per part that has it
    (token / channel MLP of a Mixer; a ViT's mlp, attn)."""
    cols = []
    for m, label in _MEAN_COLS:
        parts = _mean_parts(named_rows, m)
        if parts:
            cols.append((m, parts, f"{label} {' / '.join(_PART_SHORT.get(p, p) for p in parts)}"))
    head = ["run", "epoch"] + [label for _, _, label in cols]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|" + "---:|" * len(cols)]
    for name, last, init in named_rows:
        for row in ([init] if init else []) + [last]:
            cells = [name, str(row.get("epoch", "?"))]
            for m, parts, _ in cols:
                cells.append(" / ".join(_fmt(row.get(f"sym/mean.{p}.{m}")) for p in parts))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_parts(named_rows: list[tuple[str, dict[str, Any], dict[str, Any] | None]],
                measure: str) -> list[str]:
    """The parts with a logged mean of ``measure``: token, channel first, then by name."""
    found = {key[len("sym/mean."):].rpartition(".")[0] for _, row, _ in named_rows
             for key in row if key.startswith("sym/mean.") and key.endswith(f".{measure}")}
    if {"token", "channel"} & found:  # a Mixer: both columns, as before, even if one is empty
        found |= {"token", "channel"}
    order = {"token": 0, "channel": 1}
    return sorted(found, key=lambda p: (order.get(p, 2), p))


def _init_row(run_dir: Path) -> dict[str, Any] | None:
    return read_init_metrics(run_dir)


# ------------------------------------------------------------------------------- sections
def _sweep_models(data: dict) -> str:
    """The registered names the sweep trained, in its order (``models`` maps every role)."""
    trained = {r.get("model") for r in data.get("records") or []}
    names = dict.fromkeys((data.get("models") or {}).values())
    return ", ".join(n for n in names if not trained or n in trained)


def section_sweep(run_dir: Path, figs: _Figures) -> str:
    from .sweep import format_ends_md, format_sweep_md, middle_note

    data = read_record(run_dir / SWEEP)
    ends = format_ends_md(data["aggregate"])
    middle = middle_note(data.get("mid_seeds"), data.get("mid_breaking_inits"))
    parts = [f"## λ sweep: {data.get('dataset')} ({run_dir})\n",
             f"{data.get('epochs')} epochs, batch {data.get('batch_size')}, seeds "
             f"{', '.join(map(str, data.get('seeds', [])))}{middle}; models "
             f"{_sweep_models(data)}.\n",
             format_sweep_md(data["aggregate"]) + "\n",
             ("The ends against their references (λ ≥ 1: SymMixer, λ = 0: ParaMixer; an end "
              "meets its reference within one standard deviation over seeds):\n\n"
              + ends + "\n") if ends else "",
             figs.add(run_dir / "sweep.png", run_dir.name, "accuracy and ‖W̃‖/‖W1ᵀ‖ vs λ"),
             figs.add(run_dir / "sweep-epochs.png", run_dir.name,
                      "‖W̃‖/‖W1ᵀ‖ and accuracy per epoch"),
             _sweep_symmetry(run_dir, data),
             _command_block(data.get("command")), _versions_line(data.get("versions")),
             trained_on_line(_sweep_summaries(run_dir, data))]
    return "\n".join(p for p in parts if p)


def _record_folder(r: dict[str, Any]) -> str:
    """The folder, inside the sweep's directory, of the run a sweep record describes."""
    from .sweep import run_name

    if r.get("kind") == "asym":
        return run_name(r["model"], r["lambda"], r.get("breaking_init", "xavier"))
    return r["model"]


def _sweep_summaries(run_dir: Path, data: dict) -> list[dict[str, Any]]:
    """The summary of every run of a sweep that has one (read from its folder here)."""
    folders = [run_dir / _record_folder(r) / f"seed{r['seed']}"
               for r in data.get("records") or []]
    return [s for folder in folders if (s := read_summary(folder)) is not None]


def _sweep_symmetry(run_dir: Path, data: dict) -> str:
    """The weight symmetry, over seeds, of the free references (the default start of finding
    3) and of AsymMixer at the ends of the λ range, for each start of W̃: where each starts
    and how far from tied each ends explains the ends of finding 2."""
    from .sweep import is_end

    runs: dict[str, tuple[str, list[int]]] = {}  # label → (run folder, seeds)
    for r in data.get("records") or []:
        if r.get("kind") == "asym":
            if not is_end(r["lambda"]):
                continue
            label = f"AsymMixer λ={r['lambda']:g}, W̃ {r.get('breaking_init', 'xavier')}"
        elif r.get("kind") != "sym":  # tied: nothing to measure
            label = r["model"]
        else:
            continue
        runs.setdefault(label, (_record_folder(r), []))[1].append(r["seed"])
    rows = [row for label, (folder, ss) in runs.items() if (row := symmetry_over_runs(
        label, [run_dir / folder / f"seed{s}" for s in ss]))]
    if not rows:
        return ""
    n = max(len(ss) for _, ss in runs.values())
    over = "one seed" if n == 1 else "mean ± std over seeds"
    return (f"Weight symmetry of the free references and of AsymMixer at the ends ({over}), "
            f"mean over blocks, at epoch 0 and at the end:\n\n{symmetry_means_table(rows)}\n")


def section_compare(run_dir: Path, figs: _Figures) -> str:
    from .compare import format_table, model_arguments_line

    data = read_record(run_dir / COMPARISON)
    seeds = data.get("seeds", [])
    kwargs = (data.get("config") or {}).get("model_kwargs")
    parts = [f"## Comparison: {data.get('dataset')} ({run_dir})\n",
             f"{data.get('epochs')} epochs, batch {data.get('batch_size')}, seeds "
             f"{', '.join(map(str, seeds))}; same seed, data order and budget for every model"
             + (f"; each block applied n_iter = {', '.join(map(str, data['n_iters']))} times "
                "with shared weights (energy descent: of every block's applications, over "
                "all seeds, how many lowered its energy)" if data.get("n_iters") else "")
             + ".\n",
             *([model_arguments_line(kwargs) + "\n"] if kwargs else []),
             format_table(data["models"], len(seeds)) + "\n",
             figs.add(run_dir / CURVES_PLOT, run_dir.name, "test accuracy per epoch")]
    sym_rows = [row for r in data["models"] if (row := _seeds_symmetry(run_dir, data, r["model"]))]
    if sym_rows:
        over = (f"seed {seeds[0]}" if len(seeds) == 1 else
                f"mean ± std over seeds {', '.join(map(str, seeds))}")
        parts.append(f"Weight symmetry ({over}), mean over blocks, at epoch 0 "
                     f"(initialisation) and at the end; figures: seed {seeds[0]}:\n")
        parts.append(symmetry_means_table(sym_rows) + "\n")
        for r in data["models"]:
            name = r["model"]
            parts.append(_symmetry_png(run_dir / name / f"seed{seeds[0]}", figs,
                                       f"{run_dir.name}-{name}", f"weight symmetry: {name}"))
    runs = data.get("runs", {})
    first = next((ss[0] for ss in runs.values() if ss), {})
    parts += [_command_block(data.get("command") or _read_command(run_dir)),
              _versions_line(first.get("versions")),
              trained_on_line([s for ss in runs.values() for s in ss])]
    return "\n".join(p for p in parts if p)


def _seeds_symmetry(run_dir: Path, data: dict, model: str
                    ) -> tuple[str, dict[str, Any], dict[str, Any] | None] | None:
    """(name, final row, epoch-0 row) of one model of a comparison, over its seeds."""
    kwargs = (data.get("runs", {}).get(model) or [{}])[0].get("model_kwargs", {})
    name = model + (" (init symmetric)" if kwargs.get("init") == "symmetric" else "")
    return symmetry_over_runs(name, [run_dir / model / f"seed{s}" for s in data.get("seeds", [])])


def symmetry_over_runs(name: str, run_dirs: list[Path]
                       ) -> tuple[str, dict[str, Any], dict[str, Any] | None] | None:
    """(name, final row, epoch-0 row) over the runs (seeds) that logged the symmetry
    measures, mean ± std where there are several; None if none did."""
    from .symmetry import read_run_symmetry

    lasts, inits = [], []
    for sub in run_dirs:
        if rows := read_run_symmetry(sub):  # epoch 0 (if logged) first, each epoch after
            lasts.append(rows[-1])
            if rows[0].get("epoch") == 0 and len(rows) > 1:
                inits.append(rows[0])
    if not lasts:
        return None
    init_row = mean_over_seeds(inits) if len(inits) == len(lasts) else None
    return name, mean_over_seeds(lasts), init_row


def _read_command(run_dir: Path) -> str | None:
    from ..provenance import read_command

    return read_command(run_dir)


def _symmetry_png(run_dir: Path, figs: _Figures, label: str, caption: str) -> str:
    """The run's symmetry.png, drawn into the figure folder if the run has none."""
    from .symmetry import plot_run_symmetry

    if (run_dir / SYMMETRY_PLOT).is_file():
        return figs.add(run_dir / SYMMETRY_PLOT, label, caption)
    dst = figs.target(label, SYMMETRY_PLOT)
    if plot_run_symmetry(run_dir, dst) is None:
        return ""
    return f"![{caption}]({figs.link(dst)})\n"


def section_training(run_dir: Path, figs: _Figures) -> str:
    from .symmetry import (
        attention_rows_from_flat,
        format_symmetry_table,
        rows_from_flat,
    )

    s = read_summary(run_dir) or {}
    cfg = _run_config(run_dir)
    title = (f"{s.get('model', cfg.get('model', run_dir.name))} on "
             f"{s.get('dataset', cfg.get('dataset', '?'))}")
    parts = [f"## Training run: {title} ({run_dir})\n"]
    if s:
        init = s.get("model_kwargs", {}).get("init", "default")
        parts.append("| epochs | best test top-1 (%) | final test top-1 (%) | init | time (s) |\n"
                     "|---:|---:|---:|---|---:|\n"
                     f"| {s['epochs']} | {s['best_test_acc']:.2f} | {s['final_test_acc']:.2f} "
                     f"| {init} | {s['total_seconds']:.0f} |\n")
    elif rows := read_metrics(run_dir):  # still running or interrupted: no summary
        parts.append(f"No {SUMMARY} (unfinished run); after epoch {rows[-1]['epoch']} of "
                     f"{cfg.get('epochs', '?')}: test top-1 {rows[-1]['test_acc']:.2f}% "
                     f"(best {max(r['test_acc'] for r in rows):.2f}%).\n")
    last = _last_symmetry(run_dir)
    if last:
        init_row = _init_row(run_dir)
        parts.append("Weight symmetry, mean over blocks:\n")
        name = f"{run_dir.parent.name}/{run_dir.name}"  # the run directory, e.g. model/seed0
        parts.append(symmetry_means_table([(name, last, init_row)]) + "\n")
        parts.append(f"Per block at epoch {last.get('epoch')}:\n")
        if mlp_rows := rows_from_flat(last):
            parts.append(format_symmetry_table(mlp_rows) + "\n")
        if attention_rows := attention_rows_from_flat(last):
            parts.append(_attention_tables(attention_rows))
        label = f"{run_dir.parent.name}-{run_dir.name}"
        parts.append(_symmetry_png(run_dir, figs, label,
                                   f"weight symmetry during training: {title}"))
        parts.append(figs.add(run_dir / SYMMETRY_BLOCKS_PLOT, label,  # "" when absent
                              f"weight symmetry per block beside the untrained layers: {title}"))
    elif has_checkpoint(run_dir, LAST_CHECKPOINT):
        from ..measures.symmetry import model_attention_symmetry, model_symmetry
        from ..train.checkpoint import load_model

        model, meta = load_model(run_dir, prefer="last")
        parts.append(f"No symmetry measures were logged during this run; measured on its last "
                     f"checkpoint (epoch {meta['epoch']}, `hamixer symmetry {run_dir} "
                     f"--prefer last`):\n")
        if mlp_rows := model_symmetry(model):
            parts.append(format_symmetry_table(mlp_rows) + "\n")
        if attention_rows := model_attention_symmetry(model):
            parts.append(_attention_tables(attention_rows))
    parts += [_command_block(_read_command(run_dir)), _versions_line(s.get("versions"))]
    return "\n".join(p for p in parts if p)


def _attention_tables(rows: list[dict[str, Any]]) -> str:
    """The per-head measures and, where the rows have them, Saponati et al.'s layer scores
    (runs logged before the scores existed have none)."""
    from ..measures.symmetry import LAYER_SCORES
    from .symmetry import format_attention_table, format_layer_scores_table

    parts = [format_attention_table(rows) + "\n"]
    if any(m in r for r in rows for m in LAYER_SCORES):
        parts.append("Saponati et al.'s scores of each layer's W_Qᵀ W_K (symmetry ⟨M, Mᵀ⟩/‖M‖², "
                     "directionality (R − C)/(R + C)):\n")
        parts.append(format_layer_scores_table(rows) + "\n")
    return "\n".join(parts)


def _run_config(run_dir: Path) -> dict[str, Any]:
    """The run's settings for a title; a damaged config.yaml only costs the title its words."""
    try:
        return read_config(run_dir) or {}
    except HamixerError:
        return {}


def section_dynamics(run_dir: Path, figs: _Figures) -> str:
    data = read_record(run_dir / DYNAMICS)
    lines = ["| run | energy start | energy end | largest increase | monotone |",
             "|---|---:|---:|---:|---|"]
    for label, r in data.get("summary", {}).items():
        lines.append(f"| {label} | {r['energy_start']:.4f} | {r['energy_end']:.4f} | "
                     f"{r['max_increase']:.2e} | {'yes' if r['monotone'] else 'no'} |")
    parts = [f"## Block dynamics ({run_dir})\n", "\n".join(lines) + "\n"]
    for name, caption in (("activations.png", "activations over time"),
                          ("energy.png", "energy over time"),
                          ("landscape.png", "energy landscape and trajectories")):
        parts.append(figs.add(run_dir / name, run_dir.name, caption))
    parts.append(_command_block(_read_command(run_dir)))
    return "\n".join(p for p in parts if p)


SECTIONS = {"sweep": section_sweep, "compare": section_compare, "dynamics": section_dynamics,
            "training": section_training}


def build_report(run_dirs: list[Path], out: Path, title: str = "hamixer report") -> str:
    """The Markdown text (figures are copied as a side effect); written by the caller."""
    from ..provenance import command_line, versions

    kinds = [(d, detect_kind(d)) for d in run_dirs]  # fail before copying anything
    figs = _Figures(out)
    body = [f"# {title}\n"]
    body += [SECTIONS[kind](d, figs) for d, kind in kinds]
    cmd = command_line()
    body.append("## Provenance\n")
    body.append(_command_block(cmd).replace("Command:", "This report:", 1))
    body.append(_versions_line(versions()).replace("Versions:", "Versions (report):", 1))
    return "\n".join(body)
