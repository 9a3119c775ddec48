"""``hamixer train``: train one model, evaluating every epoch; checkpoints and metrics in --out."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "train"
HELP = "train a model on an image dataset (metrics.jsonl, checkpoints, summary.json in --out)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._launcher import add_launcher_arguments
    from ._wandb import add_wandb_arguments
    from .flags import add_config_arguments

    p.add_argument("--out", "--output", default=argparse.SUPPRESS,
                   help="output directory (timm: --output)")
    p.add_argument("--resume", nargs="?", const=True, default=argparse.SUPPRESS,
                   metavar="PATH", help="continue the run in --out from its last checkpoint; "
                   "or, as timm's --resume PATH, the run of that checkpoint")
    add_wandb_arguments(p)
    add_config_arguments(p)
    add_launcher_arguments(p, plan=False)


def run(args: argparse.Namespace) -> int:
    import json

    from ..experiments.training import settle_init, train_measured
    from ..provenance import record_command
    from ..train.distributed import is_main_process
    from ._wandb import require_wandb, wandb_sink
    from .flags import config_from_args

    cfg = config_from_args(args)
    if cfg.initial_checkpoint:
        cfg = with_fitted_kwargs(cfg)
    cfg = settle_init(cfg, in_plan=False)  # refused for a tied model before anything is written
    if getattr(args, "launcher", None):  # submit it; the job's tasks run this command
        from ._launcher import submit_training

        return submit_training(args, cfg)
    sink = None
    if args.log_wandb:
        sink = wandb_sink(require_wandb(), args.wandb_project, str(cfg.out), cfg.to_dict())
    trained = train_measured(cfg, symmetry=not args.no_symmetry, in_plan=False, log=None,
                             on_epoch=sink)
    if not is_main_process():  # under torchrun or srun, rank 0 writes and reports
        return 0
    record_command(cfg.out)
    write_args(args, cfg.out)
    pngs = [plot_run_curves(cfg.out, cfg.model), *trained.plots]
    if not cfg.quiet:
        keys = ("model", "dataset", "epochs", "best_test_acc", "final_test_acc",
                "train_images_per_s", "total_seconds", "peak_memory_mb")
        print(json.dumps({k: trained.summary[k] for k in keys}))
        print(f"wrote {', '.join(pngs)}")
    return 0


def with_fitted_kwargs(cfg: Any) -> Any:
    """``cfg`` with the model arguments that its initial checkpoint's weights fix (the
    official final norm per token, say) where the command line does not set them; the head
    stays the dataset's."""
    from ..train.config import merge
    from ._weights import fitted_model_kwargs

    fitted = fitted_model_kwargs(cfg.model, cfg.initial_checkpoint, keep_head=False)
    if not fitted:
        return cfg
    return merge(cfg, {"model_kwargs": {**fitted, **cfg.model_kwargs}}, "--initial-checkpoint")


def write_args(args: argparse.Namespace, out: str) -> None:
    """timm's ``args.yaml``: the command's flags as given (``config.yaml`` is the resolved
    configuration the run used)."""
    from pathlib import Path

    import yaml

    from ..io import write_text
    from ..runs import ARGS

    given = {k: v for k, v in vars(args).items() if k not in ("func", "command_parser")}
    write_text(Path(out) / ARGS, yaml.safe_dump(given, sort_keys=False))


def plot_run_curves(out: str, model: str) -> str:
    """``curves.png`` of one run: loss and top-1 per epoch, train and test; the title names
    the model and the run's last two path parts (``seed0`` alone says little)."""
    from pathlib import Path

    from ..plots import plot_run_curves as draw
    from ..runs import CURVES_PLOT, read_metrics

    path = Path(out) / CURVES_PLOT
    run = "/".join(Path(out).resolve().parts[-2:])
    draw(read_metrics(out), path, f"{model} ({run}): loss and top-1 per epoch")
    return str(path)
