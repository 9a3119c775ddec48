"""Training: configuration, the loop, checkpoints (safetensors + JSON)."""

from .checkpoint import load_model
from .config import TrainConfig
from .engine import EpochHook, evaluate, run_training

__all__ = ["EpochHook", "TrainConfig", "evaluate", "load_model", "run_training"]
