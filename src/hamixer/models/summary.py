"""Parameter and multiply-accumulate counts of a model at its input size."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class ModelSummary:
    name: str
    params: int
    gmacs: float
    input_size: tuple[int, int, int]

    def as_dict(self) -> dict:
        return asdict(self)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_macs(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one forward pass on one image (matmuls and convolutions)."""
    was_training = model.training
    model.eval()
    x = torch.zeros(1, *input_size, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2


def summarize(name: str, model: nn.Module) -> ModelSummary:
    input_size = tuple(model.pretrained_cfg["input_size"])
    return ModelSummary(name, count_params(model), count_macs(model, input_size) / 1e9,
                        input_size)
