"""Which layout a state dict is in: hamixer's own, timm's ``MlpMixer``, the official
ParaMixer code's or the official iMixer's (docs/checkpoints.md), told by its keys."""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from ...errors import ConfigError

#: The layouts :func:`hamixer.models.convert.load_external` reads and
#: :func:`hamixer.models.convert.to_external` writes.
LAYOUTS = ("hamixer", "timm", "paramixer", "imixer")


def detect_layout(state: Mapping[str, Tensor]) -> str:
    """Which of :data:`LAYOUTS` the keys (and norm shapes) of ``state`` are in."""
    keys = list(state)
    if any(".token_mlp." in k or ".channel_mlp." in k for k in keys):
        return "hamixer"
    if any(".mlp_tokens.fc_sn1." in k for k in keys):
        return "imixer"
    if any(".mlp_tokens." in k for k in keys):
        # the official Mixers normalise each block over (S, C): 2-D gains, or one `norm`
        joint = any(re.fullmatch(r"blocks\.\d+\.norm\.weight", k) for k in keys) or any(
            re.fullmatch(r"blocks\.\d+\.norm1\.weight", k) and v.dim() == 2
            for k, v in state.items())
        return "paramixer" if joint else "timm"
    shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
    raise ConfigError(f"the state dict fits no known layout ({', '.join(LAYOUTS)}): no "
                      f"Mixer block MLP keys (keys: {shown})")


def resolve_layout(layout: str, state: Mapping[str, Tensor]) -> str:
    if layout == "auto":
        return detect_layout(state)
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r} (one of auto, {', '.join(LAYOUTS)})")
    return layout
