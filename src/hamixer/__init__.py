"""hamixer: a Mixer block is one update of a hierarchical Hopfield network.

``import hamixer`` is instant: it imports neither torch nor timm. The model functions
(:func:`create_model`, :func:`list_models`, :func:`load_external`) and the sub-packages
(``hamixer.models``, ``hamixer.ham``, ...) are imported on first use (PEP 562). The family
still comes with timm: once timm is imported, in either order, its registry holds every
hamixer name, so ``import hamixer, timm; timm.create_model("symmixer_s16_224")`` works
(see :mod:`hamixer._timm_registration`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._timm_registration import register_when_timm_loads
from .errors import ConfigError, HamixerError
from .version import __version__

if TYPE_CHECKING:
    from .models import create_model, list_models, load_external

#: attribute → the module that defines it, imported on first use.
_LAZY_ATTRIBUTES = {"create_model": ".models", "list_models": ".models",
                    "load_external": ".models"}
_SUBPACKAGES = ("cli", "data", "device", "experiments", "ham", "io", "models", "ops", "plots",
                "provenance", "runs", "train")

__all__ = ["ConfigError", "HamixerError", "__version__", "create_model", "list_models",
           "load_external"]


def __getattr__(name: str) -> Any:
    if name in _LAZY_ATTRIBUTES:
        value = getattr(importlib.import_module(_LAZY_ATTRIBUTES[name], __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_ATTRIBUTES, *_SUBPACKAGES})


register_when_timm_loads()
