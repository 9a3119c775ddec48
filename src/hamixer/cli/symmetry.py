"""``hamixer symmetry``: how far a trained model's weights are from the symmetric (Hopfield)
configuration: W2 = W1ᵀ in its MLPs, a symmetric score in its attention heads."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

NAME = "symmetry"
HELP = ("per block: cos(W2, W1ᵀ), best fit W2 ≈ a·W1ᵀ and its residual, coupling "
        "(anti)symmetry, ‖W̃‖/‖W1ᵀ‖ of every two-layer MLP, and the (anti)symmetric shares of "
        "W_Qᵀ W_K and W_O W_V of every attention layer, each beside what an untrained layer "
        "scores (docs/symmetry.md); optionally symmetry.png over epochs")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a run directory (best, else last) or a .json/"
                                      ".safetensors checkpoint file")
    p.add_argument("--prefer", choices=["best", "last"], default="best",
                   help="which checkpoint of a run directory")
    p.add_argument("--json", action="store_true", help="print JSON rows")
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
    from ..experiments.symmetry import symmetry_report
    from ..train.checkpoint import load_model

    model, meta = load_model(args.checkpoint, prefer=args.prefer)
    report = symmetry_report(model, references=args.reference)
    if not report["mlp"] and not report["attention"]:
        raise HamixerError(f"{meta['model']} has no two-layer MLPs or attention layers to "
                           "measure")
    pngs = _plots(args, model, meta)
    if args.json:
        print(json.dumps({"checkpoint": meta["path"], "model": meta["model"],
                          "epoch": meta["epoch"], "rows": report["mlp"],
                          "attention": report["attention"]}, indent=2))
        return 0
    print(f"{meta['model']} (epoch {meta['epoch']}, {meta['path']})\n")
    print(_tables(report, args.reference))
    for png in pngs:
        print(f"\nwrote {png}")
    return 0


def _tables(report: dict[str, list], reference: bool) -> str:
    from ..experiments.symmetry import (
        ATTENTION_NOTE,
        REFERENCE_NOTE,
        format_attention_table,
        format_symmetry_table,
    )

    parts = []
    if report["mlp"]:
        parts.append("Two-layer MLPs:\n\n" + format_symmetry_table(report["mlp"]))
    if report["attention"]:
        parts.append("Attention:\n\n" + format_attention_table(report["attention"]) + "\n\n"
                     + ATTENTION_NOTE)
    if reference:
        parts.append(REFERENCE_NOTE)
    return "\n\n".join(parts)


def _plots(args: argparse.Namespace, model: nn.Module, meta: dict[str, Any]) -> list[str]:
    from pathlib import Path

    from ..errors import HamixerError
    from ..experiments.symmetry import plot_model_symmetry_blocks, plot_run_symmetry

    run_dir = Path(args.checkpoint)
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
            model, path, f"weight symmetry per block: {meta['model']} (epoch {meta['epoch']})"))
    return pngs
