"""``hamixer train``: train one model, evaluating every epoch; checkpoints and metrics in --out."""

from __future__ import annotations

import argparse

NAME = "train"
HELP = "train a model on an image dataset (metrics.jsonl, checkpoints, summary.json in --out)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .flags import add_config_arguments

    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--resume", action="store_true", default=argparse.SUPPRESS,
                   help="continue the run in --out from its last checkpoint")
    add_config_arguments(p)


def run(args: argparse.Namespace) -> int:
    import json

    from ..errors import ConfigError
    from ..experiments.symmetry import plot_run_symmetry, symmetry_hook
    from ..models.registry import has_free_mlps
    from ..provenance import record_command
    from ..train.run import run_training
    from .flags import config_from_args

    cfg = config_from_args(args)
    if cfg.model_kwargs.get("init") == "symmetric" and not has_free_mlps(cfg.model):
        raise ConfigError(f"--init symmetric ties free MLPs (vanillamixer, paramixer); "
                          f"{cfg.model} has none, so it would have no effect")
    hooks = () if args.no_symmetry else (symmetry_hook,)
    summary = run_training(cfg, hooks=hooks)
    record_command(cfg.out)
    png = None if args.no_symmetry else plot_run_symmetry(cfg.out)
    if not cfg.quiet:
        keys = ("model", "dataset", "epochs", "best_test_acc", "final_test_acc",
                "train_images_per_s", "total_seconds", "peak_memory_mb")
        print(json.dumps({k: summary[k] for k in keys}))
        if png:
            print(f"wrote {png}")
    return 0
