"""Multi-process data-parallel training under ``torchrun`` (gloo on CPU, NCCL on CUDA).

``torchrun --nproc_per_node=N -m hamixer train ...`` starts N copies of the command with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set. Every rank walks the same global permutation of
each epoch; each global batch of ``--batch-size`` images is cut into N equal contiguous
slices, one per rank, and DistributedDataParallel averages the gradients, so an update equals
the single-process update on the whole global batch (up to float summation order). Only
rank 0 writes files and shows progress. A run started without a launcher is one process and
everything here is a no-op; under torchrun even a single process joins a process group and
DistributedDataParallel, so ``--nproc_per_node=1`` exercises the backend (NCCL on a GPU).

``srun hamixer train ...`` (and ``--launcher slurm``, whose tasks srun starts) needs no
torchrun: each task reads its rank, the number of tasks and its rank on its node from Slurm's
``SLURM_PROCID``/``SLURM_STEP_NUM_TASKS``/``SLURM_LOCALID``, as timm's ``srun`` support does,
and the group meets on the first node of the step (``SLURM_STEP_NODELIST``) at a port derived
from the job id. torchrun's variables, where set, take precedence (``srun torchrun ...``). A
batch script's own shell is no step (Slurm sets no ``SLURM_STEP_NUM_TASKS`` there), so
``hamixer train`` started in it directly is one process however many tasks the job has.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch

from ..errors import ConfigError

#: What torchrun (or any launcher of env:// process groups) puts in every process's environment.
LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
#: What srun puts in the environment of every task of a job step.
SLURM_STEP_VARS = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", "SLURM_JOB_ID")
#: The group's port on the first node is this plus the job id modulo PORT_SPAN: two jobs
#: sharing a node meet at different ports (unless ``MASTER_PORT`` says otherwise).
SLURM_BASE_PORT, PORT_SPAN = 15000, 20000


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


@dataclass(frozen=True)
class Rendezvous:
    """Where and as whom this process joins the group (from a launcher's variables)."""

    rank: int
    world: int
    local_rank: int
    address: str | None = None  # None: env:// (torchrun's MASTER_ADDR/MASTER_PORT)
    port: int | None = None
    launcher: str = "torchrun"


def expand_nodelist(nodelist: str) -> list[str]:
    """Slurm's compressed host list (``gpu[01-03,07],login1``, ``r[1-2]-n[1-2]``) as host
    names, in order."""
    hosts: list[str] = []
    for name in re.findall(r"(?:[^,\[]|\[[^\]]*\])+", nodelist):
        names = [""]
        for literal, ranges in re.findall(r"([^\[]*)(?:\[([^\]]*)\])?", name):
            suffixes = [literal]
            if ranges:
                suffixes = [literal + number for number in _expand_ranges(ranges)]
            names = [head + tail for head in names for tail in suffixes]
        hosts += names
    return hosts


def _expand_ranges(ranges: str) -> list[str]:
    """``01-03,07`` as ``01 02 03 07`` (zero padding kept)."""
    out = []
    for part in ranges.split(","):
        low, _, high = part.partition("-")
        out += [f"{n:0{len(low)}d}" for n in range(int(low), int(high or low) + 1)]
    return out


def slurm_rendezvous(env: dict[str, str] | os._Environ[str]) -> Rendezvous | None:
    """The process group of the Slurm job step this process is a task of (None: no step of
    several tasks)."""
    if not all(env.get(name) for name in SLURM_STEP_VARS):
        return None
    world = int(env["SLURM_STEP_NUM_TASKS"])
    if world <= 1:
        return None
    nodes = expand_nodelist(env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST", ""))
    if not nodes:
        raise ConfigError("a Slurm job step without SLURM_STEP_NODELIST: cannot tell where "
                          "its tasks meet")
    port = int(env.get("MASTER_PORT") or SLURM_BASE_PORT + int(env["SLURM_JOB_ID"]) % PORT_SPAN)
    return Rendezvous(rank=int(env["SLURM_PROCID"]), world=world,
                      local_rank=int(env["SLURM_LOCALID"]),
                      address=env.get("MASTER_ADDR") or nodes[0], port=port, launcher="slurm")


def find_rendezvous() -> Rendezvous | None:
    """torchrun's variables, else a Slurm job step's, else None (a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1 or all(os.environ.get(name) for name in LAUNCHER_VARS):
        return Rendezvous(rank=int(os.environ["RANK"]), world=world,
                          local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    return slurm_rendezvous(os.environ)


def is_main_process() -> bool:
    """Rank 0 of the launcher's group, or a process started on its own."""
    meet = find_rendezvous()
    return meet is None or meet.rank == 0


def init_distributed(device_name: str) -> tuple[DistContext, torch.device | None]:
    """Join the process group that torchrun or a Slurm job step describes in the environment.

    Returns the context and, for CUDA, this rank's device (``cuda:LOCAL_RANK``); ``None``
    means "choose the device as usual".
    """
    meet = find_rendezvous()
    if meet is None:
        return DistContext(), None
    import torch.distributed as dist

    ctx = DistContext(rank=meet.rank, world=meet.world, local_rank=meet.local_rank,
                      launched=True)
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if device_name.startswith("cuda") and not use_cuda:
        raise ConfigError("--device cuda: no CUDA device is available")
    device = None
    if use_cuda:
        device = torch.device("cuda", _cuda_index(meet))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        if meet.address is None:
            dist.init_process_group(backend)
        else:
            dist.init_process_group(backend, init_method=f"tcp://{meet.address}:{meet.port}",
                                    rank=meet.rank, world_size=meet.world)
    return ctx, device


def _cuda_index(meet: Rendezvous) -> int:
    """This rank's GPU: its local rank among the node's GPUs; a Slurm task that sees a single
    GPU (``--gpus-per-task=1``, a GPU bound to each task) takes that one."""
    count = torch.cuda.device_count()
    if meet.launcher == "slurm" and count == 1:
        return 0
    if meet.local_rank >= count:
        variable = "SLURM_LOCALID" if meet.launcher == "slurm" else "LOCAL_RANK"
        raise ConfigError(f"{variable} {meet.local_rank} but only {count} CUDA devices")
    return meet.local_rank


def shutdown_distributed(ctx: DistContext) -> None:
    if ctx.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
