"""One training run of an experiment: the trainer with the weight-symmetry measures logged
every epoch and drawn at the end."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..train.config import TrainConfig

if TYPE_CHECKING:
    from torch import nn


def measure_hooks(run_dir: str | None) -> tuple[Callable[[nn.Module, int], dict], ...]:
    """The per-epoch hooks of a run that measures its weights: the symmetry measures, and how
    the MLPs moved since the start (a new hook per run: it holds the run's start)."""
    from .symmetry import symmetry_hook
    from .weight_updates import UpdateHook

    return symmetry_hook, UpdateHook(run_dir)


def as_trained(cfg: TrainConfig) -> TrainConfig:
    """The settings a run of a plan is trained with: a shared ``--init symmetric`` applies to
    the free models only, so a tied one (SymMixer) is trained, and recorded, without it."""
    from ..models.registry import has_free_mlps

    if cfg.model_kwargs.get("init") == "symmetric" and not has_free_mlps(cfg.model):
        return dataclasses.replace(cfg, model_kwargs={k: v for k, v in cfg.model_kwargs.items()
                                                      if k != "init"})
    return cfg


def train_run(cfg: TrainConfig, symmetry: bool = True) -> dict[str, Any]:
    """Train ``cfg`` (resuming from ``cfg.out``); with ``symmetry``, log the weight-symmetry
    measures and how the MLPs moved since the start every epoch, and draw them into
    ``symmetry.png`` (against epoch) and ``symmetry-blocks.png`` (per block, the last
    epoch). Returns the run's summary."""
    from ..train.run import run_training
    from .symmetry import plot_run_symmetry, plot_run_symmetry_blocks

    cfg = as_trained(cfg)
    summary = run_training(cfg, hooks=measure_hooks(cfg.out) if symmetry else (),
                           log=lambda s: None)
    if symmetry:
        plot_run_symmetry(cfg.out)
        plot_run_symmetry_blocks(cfg.out)
    return summary
