"""``hamixer symmetry``: how far a trained model's weights are from the symmetric (Hopfield)
configuration: W2 = W1ᵀ in its MLPs, a symmetric score in its attention heads."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

NAME = "symmetry"
HELP = ("per block: cos(W2, W1ᵀ), best fit W2 ≈ a·W1ᵀ and its residual, coupling "
        "(anti)symmetry, ‖W̃‖/‖W1ᵀ‖ of every two-layer MLP; per head the (anti)symmetric shares "
        "of W_Qᵀ W_K and W_O W_V and W_O W_V against W_Qᵀ W_K, and per layer Saponati et al.'s "
        "symmetry and directionality scores of every attention layer, each beside what an "
        "untrained layer scores (docs/symmetry.md); optionally symmetry.png over epochs")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._weights import add_weight_arguments

    p.add_argument("checkpoint", nargs="?", default=None,
                   help="a run directory (best, else last) or a .json/.safetensors checkpoint "
                        "file; or none, with --model")
    add_weight_arguments(p, pretrained=True)
    p.add_argument("--prefer", choices=["best", "last"], default="best",
                   help="which checkpoint of a run directory")
    p.add_argument("--json", action="store_true", help="print JSON rows")
    p.add_argument("--since-init", action="store_true",
                   help="also how training moved each MLP: cos(ΔW2, ΔW1ᵀ), ‖ΔW1‖/‖W1₀‖, "
                        "‖ΔW2‖/‖W2₀‖ against the run's initial weights, rebuilt from its seed "
                        "and checked against its epoch-0 measures (a run's checkpoint only)")
    p.add_argument("--no-reference", action="store_false", dest="reference",
                   help="leave out the untrained references (random matrices of the same "
                        "shapes, a few draws)")
    p.add_argument("--plot", nargs="?", const="", default=None, metavar="FILE.png",
                   help="also draw the logged measures against epoch (a run directory whose "
                        "metrics.jsonl has sym/ keys); default file: RUN_DIR/symmetry.png")
    p.add_argument("--plot-blocks", nargs="?", const="", default=None, metavar="FILE.png",
                   help="also draw the checkpoint's measures per block beside the untrained "
                        "reference; default file: RUN_DIR/symmetry-blocks.png")


def run(args: argparse.Namespace) -> int:
    import json

    from ..errors import HamixerError
    from ..experiments.symmetry import layer_scores_over_layers, symmetry_report

    model, meta = _model_and_meta(args)
    report = symmetry_report(model, references=args.reference)
    if not report["mlp"] and not report["attention"]:
        raise HamixerError(f"{meta['model']} has no two-layer MLPs or attention layers to "
                           "measure")
    updates = _since_init(model, meta) if args.since_init else None
    pngs = _plots(args, model, meta)
    if args.json:
        out = {"checkpoint": meta["path"], "model": meta["model"], "epoch": meta["epoch"],
               "rows": report["mlp"], "attention": report["attention"],
               "layer_scores": layer_scores_over_layers(report["attention"])}
        if updates is not None:
            out["since_init"] = updates
        print(json.dumps(out, indent=2))
        return 0
    when = f"epoch {meta['epoch']}, " if meta["epoch"] is not None else ""
    print(f"{meta['model']} ({when}{meta['path']})\n")
    print(_tables(report, args.reference))
    if updates is not None:
        print(f"\n{_update_section(updates, meta)}")
    for png in pngs:
        print(f"\nwrote {png}")
    return 0


def _tables(report: dict[str, list], reference: bool) -> str:
    from ..experiments.symmetry import (
        ATTENTION_NOTE,
        LAYER_SCORES_NOTE,
        REFERENCE_NOTE,
        format_attention_table,
        format_layer_scores_table,
        format_symmetry_table,
    )

    parts = []
    if report["mlp"]:
        parts.append("Two-layer MLPs:\n\n" + format_symmetry_table(report["mlp"]))
    if report["attention"]:
        parts.append("Attention, per head:\n\n" + format_attention_table(report["attention"])
                     + "\n\n" + ATTENTION_NOTE)
        parts.append("Attention, per layer (Saponati et al.'s scores):\n\n"
                     + format_layer_scores_table(report["attention"]) + "\n\n"
                     + LAYER_SCORES_NOTE)
    if reference:
        parts.append(REFERENCE_NOTE)
    return "\n\n".join(parts)


def _since_init(model: nn.Module, meta: dict[str, Any]) -> dict[str, Any]:
    from pathlib import Path

    from ..errors import HamixerError
    from ..experiments.weight_updates import (
        check_rebuilt,
        model_weight_updates,
        rebuild_initial_model,
    )

    initial = rebuild_initial_model(meta)
    rows = model_weight_updates(initial, model)
    if not rows:
        raise HamixerError(f"{meta['model']} has no two-layer MLPs to measure")
    checked = check_rebuilt(initial, Path(meta["path"]).parent)
    return {"seed": meta["config"]["seed"], "checked": checked, "rows": rows}


def _update_section(updates: dict[str, Any], meta: dict[str, Any]) -> str:
    from ..experiments.weight_updates import format_update_table

    check = ("they match the run's epoch-0 measures" if updates["checked"] else
             "the run logged no epoch-0 measures to check them against")
    return (f"Since the initial weights (rebuilt from seed {updates['seed']}; {check}):\n\n"
            + format_update_table(updates["rows"]) + "\n\ncos(ΔW2, ΔW1ᵀ): 1 when W2 moves "
            "as W1ᵀ does (tied weights), about 0 when the two are updated independently")


def _plots(args: argparse.Namespace, model: nn.Module, meta: dict[str, Any]) -> list[str]:
    from pathlib import Path

    from ..errors import HamixerError
    from ..experiments.symmetry import plot_model_symmetry_blocks, plot_run_symmetry

    # beside the run, or beside the weights file of --model --initial-checkpoint
    run_dir = Path(args.checkpoint or args.initial_checkpoint or ".")
    if not run_dir.is_dir():
        run_dir = run_dir.parent
    pngs = []
    if args.plot is not None:
        png = plot_run_symmetry(run_dir, args.plot or None,
                                title=f"weight symmetry during training: {meta['model']}")
        if png is None:
            raise HamixerError(f"{run_dir}: no symmetry measures logged (metrics.jsonl has no "
                               "sym/ keys; train without --no-symmetry)")
        pngs.append(png)
    if args.plot_blocks is not None:
        path = args.plot_blocks or run_dir / "symmetry-blocks.png"
        pngs.append(plot_model_symmetry_blocks(
            model, path, f"weight symmetry per block: {meta['model']}"
            + (f" (epoch {meta['epoch']})" if meta["epoch"] is not None else "")))
    return pngs


def _model_and_meta(args: argparse.Namespace) -> tuple[nn.Module, dict[str, Any]]:
    """A run's checkpoint, or ``--model`` with weights from a file or timm's download."""
    from ..errors import ConfigError
    from ..train.checkpoint import load_model
    from ._weights import model_from_args

    if (args.checkpoint is None) == (args.model is None):
        raise ConfigError("pass a checkpoint (a run) or --model NAME with "
                          "--initial-checkpoint PATH or --pretrained")
    if args.checkpoint is None:
        if args.plot is not None or args.since_init:
            raise ConfigError(f"{'--plot' if args.plot is not None else '--since-init'} "
                              "needs a run's checkpoint; --model has no run")
        return model_from_args(args)
    if args.initial_checkpoint or args.model_kwargs or args.pretrained:
        raise ConfigError("--initial-checkpoint, --pretrained and --model-kwargs go with "
                          "--model; a run's checkpoint holds its own model")
    return load_model(args.checkpoint, prefer=args.prefer)
