"""The trainer: configuration, setup, the loops, a resumable run, checkpoints (safetensors
+ JSON), data-parallel processes. It knows nothing of experiments or the command line."""

from .checkpoint import load_model
from .config import TrainConfig
from .loop import evaluate
from .run import EpochHook, run_training

__all__ = ["EpochHook", "TrainConfig", "evaluate", "load_model", "run_training"]
