"""``hamixer symmetry``: how far a trained Mixer's MLP weights are from W2 = W1ᵀ."""

from __future__ import annotations

import argparse

NAME = "symmetry"
HELP = ("per block and MLP: cos(W2, W1ᵀ), best fit W2 ≈ a·W1ᵀ and its residual, coupling "
        "(anti)symmetry, ‖W̃‖/‖W1ᵀ‖ (docs/symmetry.md); optionally symmetry.png over "
        "epochs")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a run directory (best, else last) or a .json/"
                                      ".safetensors checkpoint file")
    p.add_argument("--prefer", choices=["best", "last"], default="best",
                   help="which checkpoint of a run directory")
    p.add_argument("--json", action="store_true", help="print JSON rows")
    p.add_argument("--plot", nargs="?", const="", default=None, metavar="FILE.png",
                   help="also draw the logged measures against epoch (a run directory whose "
                        "metrics.jsonl has sym/ keys); default file: RUN_DIR/symmetry.png")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ..errors import HamixerError
    from ..experiments.symmetry import format_symmetry_table, model_symmetry, plot_run_symmetry
    from ..train.checkpoint import load_model

    model, meta = load_model(args.checkpoint, prefer=args.prefer)
    rows = model_symmetry(model)
    if not rows:
        raise HamixerError(f"{meta['model']} has no mixing MLPs with W1/W2 to measure")
    png = None
    if args.plot is not None:
        run_dir = Path(args.checkpoint)
        if not run_dir.is_dir():
            run_dir = run_dir.parent
        png = plot_run_symmetry(run_dir, args.plot or None,
                                title=f"weight symmetry during training: {meta['model']}")
        if png is None:
            raise HamixerError(f"{run_dir}: no symmetry measures logged (metrics.jsonl has no "
                               "sym/ keys; train without --no-symmetry)")
    if args.json:
        print(json.dumps({"checkpoint": meta["path"], "model": meta["model"],
                          "epoch": meta["epoch"], "rows": rows}, indent=2))
    else:
        print(f"{meta['model']} (epoch {meta['epoch']}, {meta['path']})\n")
        print(format_symmetry_table(rows))
        if png:
            print(f"\nwrote {png}")
    return 0
