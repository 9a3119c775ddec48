"""State dicts in other code's layouts, translated to and from hamixer's models.

Three external layouts hold the same networks under other names (docs/checkpoints.md):

* ``"timm"``: timm's ``MlpMixer`` (``mixer_*``), our ``mlpmixer_*``.
* ``"paramixer"``: the official code of Karakida, Ota & Taki (2024), written on timm 0.9.2:
  its vanilla Mixer, ParaMixer, SymMixer and AsymMixer (and their ``n_iter`` variants), our
  ``vanillamixer_*``, ``paramixer_*``, ``symmixer_*`` and ``asymmixer_*``.
* ``"imixer"``: the official iMixer code (Ota & Taki 2023), our ``imixer_*``.

``"hamixer"`` is our own layout (a ``.safetensors`` of a run, say). A translation is exact or
refused: :func:`load_external` gives a model that computes what the external model computes
with the same weights, and :func:`to_external` a state dict that the external code loads
strictly and that computes what our model computes; where the external network cannot
express ours (or ours cannot express the file), a :class:`ConfigError` says what differs.

What a state dict cannot say is left to the model it is loaded into: the official
``aMlp`` (AsymMixer) and ``vMlp`` (ParaMixer) hold the same keys and shapes, and the number
of block iterations (``n_iter``), of fixed-point steps (iMixer's ``n_repeat``) and the
spectral bound ``coeff`` are not stored at all.

The package holds one concern per module: :mod:`.reading` (checkpoint files, read without
executing them), :mod:`.layouts` (which layout a state dict is in), :mod:`.structure` (which
models a layout can express), :mod:`.key_maps` (the names in each layout), :mod:`.importing`
and :mod:`.exporting`.
"""

from __future__ import annotations

from .exporting import save_external, to_external
from .importing import fitting_kwargs, from_external, load_external, load_state_dict_strict
from .key_maps import key_map
from .layouts import LAYOUTS, detect_layout, resolve_layout
from .reading import (
    SAFETENSORS_SUFFIXES,
    TORCH_SUFFIXES,
    WRAPPER_KEYS,
    WRAPPER_PREFIXES,
    as_state_dict,
    read_state_dict,
    unwrap_state_dict,
)
from .structure import structure_problems

__all__ = [
    "LAYOUTS", "SAFETENSORS_SUFFIXES", "TORCH_SUFFIXES", "WRAPPER_KEYS", "WRAPPER_PREFIXES",
    "as_state_dict", "detect_layout", "fitting_kwargs", "from_external", "key_map",
    "load_external", "load_state_dict_strict", "read_state_dict", "resolve_layout",
    "save_external", "structure_problems", "to_external", "unwrap_state_dict",
]
