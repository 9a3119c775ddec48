"""timm's feature-extraction conventions for the family: which blocks an index selects, and
the ``features_only=True`` wrapper.

timm's Mixers hand their block outputs to detection and segmentation heads through
``forward_intermediates`` and ``timm.create_model(name, features_only=True, out_indices=...)``;
ours follow the same conventions so that a backbone swaps in without other changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from timm.models import build_model_with_cfg
from torch import nn

from ..errors import ConfigError

#: What ``indices``/``out_indices`` may be: the last n blocks, or their positions (< 0 from
#: the end), as in timm.
Indices = int | Sequence[int]

#: Arguments of ``create_model`` that ask for the feature wrapper instead of a classifier.
FEATURE_ARGS = ("features_only", "out_indices", "feature_cls")

#: The default ``out_indices`` of timm's Mixers: the last three blocks.
DEFAULT_OUT_INDICES = 3


def feature_indices(num_blocks: int, indices: Indices | None = None) -> tuple[list[int], int]:
    """(the block positions ``indices`` selects, counted from 0; the largest of them).

    ``None`` selects every block, an int ``n`` the last ``n``, a sequence those positions
    (negative ones from the end), the meaning of timm's ``feature_take_indices``.
    """
    if indices is None:
        indices = num_blocks
    if isinstance(indices, int):
        if not 0 < indices <= num_blocks:
            raise ConfigError(f"the last {indices} blocks: the model has {num_blocks} "
                              f"(give 1 to {num_blocks})")
        taken = list(range(num_blocks - indices, num_blocks))
    else:
        taken = [num_blocks + i if i < 0 else i for i in indices]
        wrong = [i for i, t in zip(indices, taken, strict=True) if not 0 <= t < num_blocks]
        if wrong:
            raise ConfigError(f"block index {wrong[0]} is out of range for a model of "
                              f"{num_blocks} blocks (0 to {num_blocks - 1}, or -1 to "
                              f"-{num_blocks} from the end)")
        if not taken:
            raise ConfigError("no block index given")
    return taken, max(taken)


def as_features(model: nn.Module, name: str, pretrained_cfg: dict[str, Any],
                out_indices: Indices = DEFAULT_OUT_INDICES,
                feature_cls: str = "getter") -> nn.Module:
    """``model`` inside timm's feature wrapper, as ``timm.create_model(..., features_only=True)``
    returns its own Mixers: a module whose forward gives the feature maps of the blocks at
    ``out_indices`` (``[B, C, H, W]`` each), with ``feature_info``; the blocks after the
    last of them, the final norm and the head are pruned away."""
    if feature_cls != "getter":
        raise ConfigError(f"feature_cls must be 'getter' for {name} (its features come from "
                          f"forward_intermediates), got {feature_cls!r}")
    # timm's builder wraps what its first argument returns; the model is already built
    return build_model_with_cfg(lambda **_: model, name, pretrained=False,
                                pretrained_cfg=pretrained_cfg, features_only=True,
                                feature_cfg=dict(out_indices=out_indices, feature_cls="getter"))
