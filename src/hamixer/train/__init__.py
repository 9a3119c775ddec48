"""The trainer: configuration, setup, the loops, a resumable run, checkpoints (safetensors
+ JSON), data-parallel processes. It knows nothing of experiments or the command line.

The names below are imported on first use (PEP 562), so that :mod:`hamixer.train.config`
(what the command line's flags need) comes without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .checkpoint import load_model
    from .config import TrainConfig
    from .loop import evaluate
    from .run import EpochHook, run_training

#: name → the module of this package that defines it.
_LAZY_ATTRIBUTES = {"load_model": ".checkpoint", "TrainConfig": ".config", "evaluate": ".loop",
                    "EpochHook": ".run", "run_training": ".run"}

__all__ = ["EpochHook", "TrainConfig", "evaluate", "load_model", "run_training"]


def __getattr__(name: str) -> Any:
    if name in _LAZY_ATTRIBUTES:
        value = getattr(importlib.import_module(_LAZY_ATTRIBUTES[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_ATTRIBUTES})
