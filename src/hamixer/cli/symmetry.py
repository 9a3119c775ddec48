"""``hamixer symmetry``: how far a trained Mixer's MLP weights are from W2 = W1ᵀ."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "symmetry"
HELP = ("per block and MLP: cos(W2, W1ᵀ), best fit W2 ≈ a·W1ᵀ and its residual, coupling "
        "(anti)symmetry, ‖W̃‖/‖W1ᵀ‖ (docs/symmetry.md); optionally symmetry.png over "
        "epochs")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._weights import add_weight_arguments

    p.add_argument("checkpoint", nargs="?", default=None,
                   help="a run directory (best, else last) or a .json/.safetensors checkpoint "
                        "file; or none, with --model")
    add_weight_arguments(p, pretrained=True)
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

    model, meta = _model_and_meta(args)
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
        when = f"epoch {meta['epoch']}, " if meta["epoch"] is not None else ""
        print(f"{meta['model']} ({when}{meta['path']})\n")
        print(format_symmetry_table(rows))
        if png:
            print(f"\nwrote {png}")
    return 0


def _model_and_meta(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """A run's checkpoint, or ``--model`` with weights from a file or timm's download."""
    from ..errors import ConfigError
    from ..train.checkpoint import load_model
    from ._weights import model_from_args

    if (args.checkpoint is None) == (args.model is None):
        raise ConfigError("pass a checkpoint (a run) or --model NAME with "
                          "--initial-checkpoint PATH or --pretrained")
    if args.checkpoint is None:
        if args.plot is not None:
            raise ConfigError("--plot draws a run's logged measures; --model has no run")
        return model_from_args(args)
    if args.initial_checkpoint or args.model_kwargs or args.pretrained:
        raise ConfigError("--initial-checkpoint, --pretrained and --model-kwargs go with "
                          "--model; a run's checkpoint holds its own model")
    return load_model(args.checkpoint, prefer=args.prefer)
