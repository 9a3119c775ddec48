"""Multi-process data-parallel training under ``torchrun`` (gloo on CPU, NCCL on CUDA).

``torchrun --nproc_per_node=N -m hamixer train ...`` starts N copies of the command with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set. Every rank walks the same global permutation of
each epoch; each global batch of ``--batch-size`` images is cut into N equal contiguous
slices, one per rank, and DistributedDataParallel averages the gradients, so an update equals
the single-process update on the whole global batch (up to float summation order). Only
rank 0 writes files and shows progress. A run started without a launcher is one process and
everything here is a no-op; under torchrun even a single process joins a process group and
DistributedDataParallel, so ``--nproc_per_node=1`` exercises the backend (NCCL on a GPU).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import ConfigError

#: What torchrun (or any launcher of env:// process groups) puts in every process's environment.
LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class DistContext:
    """Which process this is; ``enabled`` when it belongs to a process group."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    launched: bool = False  # started by a launcher (torchrun), possibly as its only process

    @property
    def enabled(self) -> bool:
        return self.world > 1 or self.launched

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if ``flag`` is true on any rank (keeps ranks in lock-step)."""
        if not self.enabled:
            return flag
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum over ranks (float64)."""
        if not self.enabled:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()


def init_distributed(device_name: str) -> tuple[DistContext, torch.device | None]:
    """Join the process group torchrun describes in the environment.

    Returns the context and, for CUDA, this rank's device (``cuda:LOCAL_RANK``); ``None``
    means "choose the device as usual".
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    launched = all(os.environ.get(name) for name in LAUNCHER_VARS)
    if world <= 1 and not launched:
        return DistContext(), None
    import torch.distributed as dist

    ctx = DistContext(rank=int(os.environ["RANK"]), world=world,
                      local_rank=int(os.environ.get("LOCAL_RANK", "0")), launched=launched)
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if device_name.startswith("cuda") and not use_cuda:
        raise ConfigError("--device cuda: no CUDA device is available")
    device = None
    if use_cuda:
        if ctx.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {ctx.local_rank} but only "
                              f"{torch.cuda.device_count()} CUDA devices")
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return ctx, device


def shutdown_distributed(ctx: DistContext) -> None:
    if ctx.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
