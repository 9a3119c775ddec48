"""Parameter and multiply-accumulate counts of a model at its input size.

A Mixer's (or a hamixer Transformer's) blocks are identical in shape, so a model of
``num_blocks`` blocks costs its stem, norm and head plus ``num_blocks`` times one block:
:func:`summarize_by_name` builds the model with one block on the meta device (no weights are
allocated) and runs it once, reading the block's share from the per-module counts, which
lists the whole registry, up to 228 M parameters, in the time of a few small models.
"""

from __future__ import annotations

import contextlib
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
def count_macs_by_module(model: nn.Module, input_size: tuple[int, ...]) -> dict[str, int]:
    """Multiply-accumulates of one forward pass on one input (matmuls and convolutions):
    ``"Global"`` for the whole pass, and one entry per module that did any, named
    ``ClassName.path.to.module`` (a module called several times counts every call)."""
    was_training = model.training
    model.eval()
    x = torch.zeros(1, *input_size, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter, _attention_as_matmuls():
        model(x)
    model.train(was_training)
    return {name: sum(by_op.values()) // 2 for name, by_op in counter.get_flop_counts().items()}


def _attention_as_matmuls() -> contextlib.AbstractContextManager:
    """Fused attention computed by its two matmuls, which the counter sees: it knows the CUDA
    kernels' costs but not the CPU's flash attention, and missed 11 % of a ViT's MACs."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch < 2.3
        return contextlib.nullcontext()
    return sdpa_kernel(SDPBackend.MATH)


def count_macs(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass on one input (matmuls and convolutions)."""
    return count_macs_by_module(model, input_size).get("Global", 0)


def summarize(name: str, model: nn.Module) -> ModelSummary:
    """Count a built model (any device, meta included)."""
    input_size = _input_size(model)
    return ModelSummary(name, count_params(model), count_macs(model, input_size) / 1e9,
                        input_size)


def _input_size(model: nn.Module) -> tuple[int, int, int]:
    """The input size (C, H, W) of a registered model, from its timm ``pretrained_cfg``."""
    cfg = getattr(model, "pretrained_cfg", None)
    if not isinstance(cfg, dict):
        raise TypeError(f"{type(model).__name__} has no timm pretrained_cfg (a dict) to "
                        "read its input size from")
    channels, height, width = cfg["input_size"]
    return channels, height, width


def summarize_by_name(name: str) -> ModelSummary:
    """:func:`summarize` of registered ``name`` without building its weights: a hamixer
    Mixer from one block (the others are copies of its shape), anything else whole on the
    meta device. The same numbers as counting the whole model."""
    from .former import HamFormer
    from .mixer import HamMixer
    from .registry import MODEL_CONFIGS, create_model

    blocks = MODEL_CONFIGS.get(name, {}).get("num_blocks", 1)
    with torch.device("meta"):
        model = create_model(name, num_blocks=1) if blocks > 1 else create_model(name)
    if blocks > 1 and not isinstance(model, (HamMixer, HamFormer)):
        with torch.device("meta"):  # blocks of unknown shapes: the whole model
            model = create_model(name)
    if blocks == 1 or not isinstance(model, (HamMixer, HamFormer)):
        return summarize(name, model)
    input_size = _input_size(model)
    macs = count_macs_by_module(model, input_size)  # one pass: the whole and its one block
    block_macs = macs[f"{type(model).__name__}.blocks.0"]  # all n_iter applications
    params = count_params(model) + (blocks - 1) * count_params(model.blocks[0])
    return ModelSummary(name, params, (macs["Global"] + (blocks - 1) * block_macs) / 1e9,
                        input_size)
