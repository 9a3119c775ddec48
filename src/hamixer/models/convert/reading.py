"""Reading a checkpoint file without executing it: safetensors, or ``torch.load`` with
``weights_only=True``; the state dict unwrapped from a training checkpoint's entries and from
the prefixes of wrapped modules."""

from __future__ import annotations

import os
import types
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...errors import ConfigError

#: Files read with safetensors; every other accepted suffix with ``torch.load``.
SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".tar", ".ckpt")
#: Where a training checkpoint keeps the weights, in the order timm's ``load_checkpoint``
#: (what ``--initial-checkpoint`` does in timm) looks: the weight average first.
WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")
#: Prefixes of wrapped modules (DistributedDataParallel, torch.compile), dropped on reading.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of a checkpoint file, unwrapped (:func:`unwrap_state_dict`).

    ``.safetensors`` files are read with safetensors; ``.pth``, ``.pt``, ``.bin``, ``.tar``
    (timm's ``.pth.tar``) and ``.ckpt`` with ``torch.load(weights_only=True)``, which builds
    tensors and plain containers only (a timm training checkpoint's ``args`` come back as
    a ``SimpleNamespace``).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such checkpoint file")
    if path.suffix in SAFETENSORS_SUFFIXES:
        return unwrap_state_dict(_read_safetensors(path), str(path))
    if path.suffix in TORCH_SUFFIXES:
        return unwrap_state_dict(_read_pickle(path), str(path))
    raise ConfigError(f"{path}: unknown checkpoint format (expected "
                      f"{', '.join(SAFETENSORS_SUFFIXES + TORCH_SUFFIXES)})")


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise ConfigError(f"{path}: not a readable safetensors file ({err})") from None


def _namespace_allowed() -> Any:
    """A context in which ``torch.load(weights_only=True)`` reads ``argparse.Namespace``
    (timm's training checkpoints store their arguments as one) as a ``SimpleNamespace``:
    attributes only, nothing executed. PyTorch without the aliasing form reads as is."""
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:
        return nullcontext()
    try:
        return safe_globals([(types.SimpleNamespace, "argparse.Namespace")])
    except (TypeError, ValueError):
        return nullcontext()


def _read_pickle(path: Path) -> Any:
    import pickle

    try:
        with _namespace_allowed():
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        unsafe = _unsafe_globals(path)
        if not unsafe:
            raise ConfigError(f"{path}: not a readable PyTorch checkpoint (torch.load with "
                              "weights_only=True cannot parse it)") from None
        raise ConfigError(f"{path}: refused by torch.load(weights_only=True): it holds "
                          f"{unsafe}; save the state dict alone or as .safetensors") from None
    except (RuntimeError, EOFError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{path}: not a readable PyTorch checkpoint ({first[:160]})") from None


def _unsafe_globals(path: Path) -> str:
    find = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    try:
        return ", ".join(find(str(path))) if find else ""
    except Exception:  # only a better message is lost
        return ""


def unwrap_state_dict(obj: Any, source: str = "state dict") -> dict[str, Tensor]:
    """The state dict inside ``obj``: ``obj`` itself, or its entry under one of
    :data:`WRAPPER_KEYS` (timm's order), with :data:`WRAPPER_PREFIXES` removed."""
    if not isinstance(obj, Mapping):
        raise ConfigError(f"{source}: holds a {type(obj).__name__}, not a state dict")
    for key in WRAPPER_KEYS:
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    others = sorted(str(k) for k, v in obj.items() if not isinstance(v, Tensor))
    if others or not obj:
        found = f"non-tensor entries ({', '.join(others[:3])})" if others else "no tensors"
        raise ConfigError(f"{source}: not a state dict: {found}; weights are expected at the "
                          f"top level or under {', '.join(WRAPPER_KEYS)}")
    return {_strip_prefixes(k): v for k, v in obj.items()}


def _strip_prefixes(key: str) -> str:
    while key.startswith(WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def as_state_dict(source: Mapping[str, Tensor] | str | os.PathLike) -> dict[str, Tensor]:
    """A path is read (:func:`read_state_dict`); a mapping is unwrapped."""
    if isinstance(source, (str, os.PathLike)):
        return read_state_dict(source)
    return unwrap_state_dict(source)
