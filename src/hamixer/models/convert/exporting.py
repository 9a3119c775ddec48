"""A model's weights written in another layout: the state dict the external code loads
strictly, and the file (written atomically)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ...io import atomic_path
from ..imixer import InvertibleMLP
from ..timm_compat import hamixer_to_timm_key
from .key_maps import IMIXER_SPECTRAL, key_map, scalar_gains
from .layouts import LAYOUTS
from .reading import SAFETENSORS_SUFFIXES, TORCH_SUFFIXES
from .structure import require_structure


@torch.no_grad()
def to_external(model: nn.Module, layout: str) -> dict[str, Tensor]:
    """``model``'s weights as a state dict in ``layout`` (one of :data:`LAYOUTS`): what the
    external code's model of the same configuration loads with ``strict=True``.

    A tied matrix is stored once, as the official code stores it; a scalar norm gain becomes
    the [S, C] gain of the official LayerNorm; iMixer's logged σ is ``uᵀ W v``.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r} (one of {', '.join(LAYOUTS)})")
    mixer = require_structure(model, layout, "write")
    ours = model.state_dict()
    scalar = scalar_gains(model) if layout != "hamixer" else set()
    out = {}
    for key, theirs in key_map(mixer, layout).items():
        value = ours[key]
        if key in scalar:
            norm = model.get_submodule(key.rpartition(".")[0])
            value = value.expand(norm.normalized_shape)
        out[theirs] = value
    if layout == "imixer":
        out.update(_imixer_sigmas(model))
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in out.items()}


def _imixer_sigmas(model: nn.Module) -> dict[str, Tensor]:
    """``fc_sn*.weight_sigma`` of the official iMixer: σ = uᵀ W v, shape [1]."""
    out = {}
    for path, mlp in model.named_modules():
        if isinstance(mlp, InvertibleMLP):
            prefix = hamixer_to_timm_key(f"{path}.")
            for ours, theirs in IMIXER_SPECTRAL.items():
                sn, fc = getattr(mlp.f, f"sn_{ours}"), getattr(mlp.f, f"fc_{ours}")
                out[f"{prefix}{theirs}.weight_sigma"] = sn.sigma(fc.weight).reshape(1)
    return out


def save_external(model: nn.Module, path: str | os.PathLike, layout: str) -> Path:
    """Write :func:`to_external` to ``path`` atomically: ``.safetensors`` with safetensors,
    any of :data:`TORCH_SUFFIXES` with ``torch.save`` (a plain dict of tensors)."""
    path = Path(path)
    if path.suffix not in SAFETENSORS_SUFFIXES + TORCH_SUFFIXES:
        raise ConfigError(f"{path}: unknown checkpoint format (expected "
                          f"{', '.join(SAFETENSORS_SUFFIXES + TORCH_SUFFIXES)})")
    state = to_external(model, layout)
    with atomic_path(path) as tmp:
        if path.suffix in SAFETENSORS_SUFFIXES:
            from safetensors.torch import save_file

            save_file(state, str(tmp), metadata={"format": "pt", "layout": layout})
        else:
            torch.save(state, tmp)
    return path
