"""hamixer's names in timm's registry, without importing timm (and torch) at ``import hamixer``.

timm finds a model by name in a dict that :func:`timm.models.register_model` fills when the
module defining the model is imported; it has no plug-in look-up. Importing
:mod:`hamixer.models` registers the whole family, so what is left is to import it whenever
timm is there to register in:

* timm already imported: import :mod:`hamixer.models` at once (torch is loaded anyway);
* otherwise: a one-shot import hook imports :mod:`hamixer.models` right after timm's own
  ``__init__`` has run, so ``import hamixer; import timm; timm.create_model("symmixer_...")``
  works as it did when ``import hamixer`` imported the models.

A process that never imports timm (``hamixer --help``, a user of :mod:`hamixer.ham`) never
pays for it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importlib.abc imports importlib.resources: 40 ms of start-up
    from importlib.abc import Loader

_MODELS = "hamixer.models"
_TIMM = "timm"


def register_when_timm_loads() -> None:
    """Register the family in timm now if timm is loaded, else as soon as it is."""
    if _TIMM in sys.modules:
        importlib.import_module(_MODELS)
    elif not any(isinstance(f, _AfterTimm) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterTimm())


class _AfterTimm:
    """A finder (``sys.meta_path``) that finds nothing itself: it hands out timm's own spec
    with a loader that registers the family after timm has run."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != _TIMM:
            return None
        sys.meta_path.remove(self)  # one shot; the other finders now find timm as usual
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _ThenRegister(spec.loader)
        return spec


class _ThenRegister:
    """A loader: timm's, followed by ``import hamixer.models``."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # timm sees its own loader (for its resources), as without the hook
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        if _MODELS not in sys.modules:  # in sys.modules: it is the one importing timm
            importlib.import_module(_MODELS)
