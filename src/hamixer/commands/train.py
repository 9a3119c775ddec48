"""``hamixer train``: train one model, evaluating every epoch; checkpoints and metrics in --out."""

from __future__ import annotations

import argparse

NAME = "train"
HELP = "train a model on an image dataset (metrics.jsonl, checkpoints, summary.json in --out)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..train.cli_args import add_config_arguments

    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--resume", action="store_true", default=argparse.SUPPRESS,
                   help="continue the run in --out from its last checkpoint")
    add_config_arguments(p)


def run(args: argparse.Namespace) -> int:
    import json

    from ..train.cli_args import config_from_args
    from ..train.engine import run_training

    cfg = config_from_args(args)
    summary = run_training(cfg)
    if not cfg.quiet:
        keys = ("model", "dataset", "epochs", "best_test_acc", "final_test_acc",
                "train_images_per_s", "total_seconds", "peak_memory_mb")
        print(json.dumps({k: summary[k] for k in keys}))
    return 0
