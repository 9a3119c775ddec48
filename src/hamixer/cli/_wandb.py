"""``--log-wandb`` (timm's flag): each epoch's metrics row sent to Weights & Biases.

wandb is an optional extra (``pip install 'hamixer[wandb]'``); without it the flag is refused
with one line before anything is trained or written.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError


def add_wandb_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-wandb", action="store_true",
                   help="log every epoch's metrics to Weights & Biases (timm's flag; needs "
                        "the optional extra: pip install 'hamixer[wandb]')")
    p.add_argument("--wandb-project", default="hamixer", metavar="NAME",
                   help="the W&B project of --log-wandb (default: hamixer)")


def require_wandb() -> Any:
    """The wandb module, or a :class:`ConfigError` saying how to install it."""
    try:
        import wandb
    except ImportError:
        raise ConfigError("--log-wandb needs wandb, which is not installed: "
                          "pip install 'hamixer[wandb]' (or pip install wandb)") from None
    return wandb


def wandb_sink(wandb: Any, project: str, run_name: str,
               config: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """What logs one epoch's row to a W&B run (step = epoch); the run starts with the first
    row, so a run that fails to start writes nothing to W&B either."""
    started = []

    def log_row(row: dict[str, Any]) -> None:
        if not started:
            wandb.init(project=project, name=run_name, config=config)
            started.append(True)
        wandb.log({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))

    return log_row
