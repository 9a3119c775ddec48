"""The one way a model is trained by a command: the trainer with the weight-symmetry
measures logged every epoch and drawn at the end. ``hamixer train`` trains one run through
:func:`train_measured`; the runs of a plan (``compare``, ``sweep``, their workers and array
tasks) through :func:`train_run`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..train.config import TrainConfig

if TYPE_CHECKING:
    from torch import nn


def measure_hooks(run_dir: str | None) -> tuple[Callable[[nn.Module, int], dict], ...]:
    """The per-epoch hooks of a run that measures its weights: the symmetry measures, and how
    the MLPs moved since the start (a new hook per run: it holds the run's start)."""
    from .symmetry import symmetry_hook
    from .weight_updates import UpdateHook

    return symmetry_hook, UpdateHook(run_dir)


def settle_init(cfg: TrainConfig, in_plan: bool) -> TrainConfig:
    """``cfg`` with its ``init=symmetric`` settled for its model. The symmetric start ties
    the two matrices of free MLPs; a model whose MLPs are tied already has nothing to tie.
    In a plan of runs (``in_plan``: one ``--init symmetric`` shared by every model of
    ``compare`` or ``sweep``) such a model starts as usual, the setting dropped; asked for
    that model alone it is a :class:`ConfigError`, since it would have no effect."""
    from ..models.registry import has_free_mlps

    if cfg.model_kwargs.get("init") != "symmetric" or has_free_mlps(cfg.model):
        return cfg
    if not in_plan:
        raise ConfigError(f"--init symmetric ties free MLPs (vanillamixer, paramixer, timm "
                          f"models); {cfg.model} has none, so it would have no effect")
    return dataclasses.replace(cfg, model_kwargs={k: v for k, v in cfg.model_kwargs.items()
                                                  if k != "init"})


@dataclass
class TrainedRun:
    """What :func:`train_measured` did: the run's summary and the plots it drew."""

    summary: dict[str, Any]
    plots: list[str] = field(default_factory=list)


def _silent(line: str) -> None:
    """The log of a run in a plan: its progress is the plan's one line per run."""


def train_measured(cfg: TrainConfig, symmetry: bool = True, in_plan: bool = True,
                   log: Callable[[str], None] | None = _silent,
                   on_epoch: Callable[[dict[str, Any]], None] | None = None) -> TrainedRun:
    """Train ``cfg`` (resuming from ``cfg.out``), its ``--init symmetric`` settled by
    :func:`settle_init`; with ``symmetry``, log the weight-symmetry measures and how the MLPs
    moved since the start every epoch, and draw them into ``symmetry.png`` (against epoch)
    and ``symmetry-blocks.png`` (per block, the last epoch) on the main process. ``log`` and
    ``on_epoch`` are the trainer's (``log=None``: print unless quiet)."""
    from ..train.distributed import is_main_process
    from ..train.run import run_training
    from .symmetry import plot_run_symmetry, plot_run_symmetry_blocks

    cfg = settle_init(cfg, in_plan)
    summary = run_training(cfg, hooks=measure_hooks(cfg.out) if symmetry else (), log=log,
                           on_epoch=on_epoch)
    plots: list[str | None] = []
    if symmetry and is_main_process():  # under torchrun or srun, rank 0 writes
        plots = [plot_run_symmetry(cfg.out), plot_run_symmetry_blocks(cfg.out)]
    return TrainedRun(summary, [p for p in plots if p])


def train_run(cfg: TrainConfig, symmetry: bool = True) -> dict[str, Any]:
    """One run of a plan: :func:`train_measured` without a log of its own (a tied model's
    shared ``--init symmetric`` dropped); returns the run's summary."""
    return train_measured(cfg, symmetry, in_plan=True).summary
