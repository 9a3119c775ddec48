"""The one place a device name (``auto``, ``cpu``, ``cuda``, ``cuda:1``) becomes a device,
where the CPU cores this process may use are counted, and where mixed precision is switched
on (:func:`autocast`, for the trainer and the benchmarks alike)."""

from __future__ import annotations

import contextlib
import os

import torch

from .errors import ConfigError


def select_device(name: str) -> torch.device:
    """``auto`` is CUDA when a GPU is there, else the CPU; asking for CUDA without one, or
    for a device torch does not know, is a :class:`ConfigError`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r} (auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return device


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask: a container's or
    ``taskset``'s share, not the machine's count), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity masks on this platform
        return os.cpu_count() or 1


def autocast(device: torch.device, dtype: torch.dtype | None,
             cache_enabled: bool = True) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``'s kind, or nothing (float32) when
    ``dtype`` is None. ``cache_enabled=False`` keeps no cache of casts (a recorded CUDA graph
    replays the casts it captured, and the cache would live outside it)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache_enabled)
