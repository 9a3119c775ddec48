"""The one place a device name (``auto``, ``cpu``, ``cuda``, ``cuda:1``) becomes a device,
and where the CPU cores this process may use are counted."""

from __future__ import annotations

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
