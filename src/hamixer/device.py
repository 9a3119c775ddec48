"""The one place a device name (``auto``, ``cpu``, ``cuda``, ``cuda:1``) becomes a device,
where the CPU cores this process may use are counted, and where mixed precision is switched
on (:func:`autocast`, for the trainer and the benchmarks alike)."""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

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


#: Where a CPU quota is read: cgroup v2's ``cpu.max`` ("QUOTA PERIOD" or "max PERIOD"), and
#: cgroup v1's quota and period files (a quota of -1: none).
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
                   Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))


def usable_cores() -> int:
    """The CPU cores this process may run on, at least 1: its affinity mask (a container's
    or ``taskset``'s share, not the machine's count), and fewer if a cgroup CPU quota (a
    container's ``--cpus``) allows less time than that, because threads beyond the quota
    only wait for their turn."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity masks on this platform
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return cores if quota is None else max(1, min(cores, math.floor(quota)))


def omp_threads() -> int | None:
    """The threads per process the user's ``OMP_NUM_THREADS`` asks for (its first level,
    where it lists one per nesting level, e.g. ``4,2``), or None where it is unset or not a
    positive integer."""
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(first) if first.isdigit() and int(first) > 0 else None


def cgroup_cpu_quota(cpu_max: Path = CGROUP_CPU_MAX,
                     v1: tuple[Path, Path] = CGROUP_V1_QUOTA) -> float | None:
    """The CPUs' worth of time per period that this process's cgroup may use (2.5: two and
    a half cores), or None where there is no quota or none can be read."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota, period = (f.read_text().strip() for f in v1)
        except (OSError, ValueError):
            return None
    try:
        q, p = float(quota), float(period)
    except ValueError:  # "max": no quota
        return None
    return q / p if q > 0 and p > 0 else None


def autocast(device: torch.device, dtype: torch.dtype | None,
             cache_enabled: bool = True) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``'s kind, or nothing (float32) when
    ``dtype`` is None. ``cache_enabled=False`` keeps no cache of casts (a recorded CUDA graph
    replays the casts it captured, and the cache would live outside it)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache_enabled)
