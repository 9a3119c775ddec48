"""Key mapping between timm's ``MlpMixer`` and our ``mlpmixer_*`` models.

Only the MLP names differ: timm's ``mlp_tokens``/``mlp_channels`` are our
``token_mlp``/``channel_mlp``. Stem, norms and head have the same names and shapes.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

_TIMM_TO_OURS = ((".mlp_tokens.", ".token_mlp."), (".mlp_channels.", ".channel_mlp."))


def timm_to_hamixer_key(key: str) -> str:
    for theirs, ours in _TIMM_TO_OURS:
        key = key.replace(theirs, ours)
    return key


def hamixer_to_timm_key(key: str) -> str:
    for theirs, ours in _TIMM_TO_OURS:
        key = key.replace(ours, theirs)
    return key


def timm_mixer_state_dict_to_hamixer(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A timm ``mixer_*`` state dict with its keys renamed for ``mlpmixer_*``."""
    return {timm_to_hamixer_key(k): v for k, v in state_dict.items()}


def hamixer_state_dict_to_timm_mixer(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """An ``mlpmixer_*`` state dict with its keys renamed for timm's ``mixer_*``."""
    return {hamixer_to_timm_key(k): v for k, v in state_dict.items()}

