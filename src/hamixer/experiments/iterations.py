"""What the repeated blocks do (``n_iter``): the energy of the features a block iterates.

A model built with ``n_iter = n`` applies each block n times with shared weights. For a
SymMixer or SymFormer block each application is one Euler step, of size 1, of the dynamics
whose Lyapunov function is the block's energy (THEORY §2, §4, §8): continuous time descends
the energy, a unit step may or may not. :func:`iterated_energies` measures which: the energy
of every block's features before its first application and after each one, on real inputs.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn


@torch.no_grad()
def iterated_energies(model: nn.Module, images: Tensor, pseudo: bool = False
                      ) -> list[list[float]]:
    """Per block: the mean energy (over ``images``) of its input state, then after each of
    its ``model.n_iter`` applications; the block's final state feeds the next block.

    Raises the energy's :class:`ConfigError` for a block without one (``pseudo=True`` takes
    AsymMixer's pseudo-energy, which leaves the breaking matrix out).
    """
    from ..models.energy import block_energy

    model.eval()
    x = model.embed(images)
    per_block = []
    for block in model.blocks:
        # a parallel block's own energy (a Mixer's or a Transformer's); a serial block has
        # none, and block_energy says so in one line
        energy = getattr(block, "energy", None) or partial(block_energy, block)
        energies = [energy(x, pseudo=pseudo).mean().item()]
        for _ in range(model.n_iter):
            x = block(x)
            energies.append(energy(x, pseudo=pseudo).mean().item())
        per_block.append(energies)
    return per_block


def descent_summary(per_block: list[list[float]]) -> dict[str, Any]:
    """How many of the applications lowered their block's energy, and the largest rise."""
    steps = [(b, k, e[k + 1] - e[k]) for b, e in enumerate(per_block) for k in range(len(e) - 1)]
    rises = [d for _, _, d in steps if d > 0]
    return {"applications": len(steps), "lowered": len(steps) - len(rises),
            "largest_rise": max(rises, default=0.0),
            "total_change": sum(e[-1] - e[0] for e in per_block)}


def format_iterated_energies(per_block: list[list[float]]) -> str:
    n = len(per_block[0]) - 1 if per_block else 0
    head = "| block | input | " + " | ".join(f"after {k + 1}" for k in range(n)) + " |"
    lines = [head, "|---:|" + "---:|" * (n + 1)]
    for b, energies in enumerate(per_block):
        lines.append(f"| {b} | " + " | ".join(f"{e:.4g}" for e in energies) + " |")
    return "\n".join(lines)


#: Test images the descent is measured on (all of them where the split is smaller).
DESCENT_IMAGES = 1000


def test_images(meta: dict[str, Any], n: int, dataset: str | None = None,
                data_dir: str | None = None) -> Tensor:
    """The first ``n`` test images of the checkpoint's dataset (or ``dataset``), normalised as
    in its training."""
    from ..data import load_split
    from ..data.pipeline import ImageBatches

    ds = meta["dataset"]
    split = load_split(dataset or ds["name"], False, data_dir, False, ds["img_size"],
                       ds["in_chans"])
    batches = ImageBatches(split, n, ds["img_size"], tuple(ds["mean"]), tuple(ds["std"]),
                           ds["num_classes"], train=False, limit=n)
    return next(iter(batches.batches()))[0]


def run_descent(run_dir: str | Path, data_dir: str | None = None,
                images: int = DESCENT_IMAGES) -> dict[str, Any] | None:
    """Whether each application of each block of the run's best checkpoint lowers the block's
    energy (:func:`descent_summary` with the energies), on ``images`` test images.

    Measured once and kept in the run's ``iterated_energy.json``, which is read back while
    the checkpoint it was measured on is the run's best; so the record outlives the checkpoint
    (a table is re-made from a run's records alone). None for a model without an energy, or a
    run with neither a checkpoint nor a record.
    """
    from ..errors import ConfigError
    from ..io import write_json
    from ..models.energy import check_energy_config
    from ..runs import ITERATED_ENERGY, read_iterated_energy
    from ..train.checkpoint import load_model, read_meta

    best = Path(run_dir) / "best.json"
    record = read_iterated_energy(run_dir)
    if not best.is_file():
        return record
    files = read_meta(best).get("sha256", {})
    weights_sha = files.get("best.safetensors")
    if record is not None and record.get("weights_sha256") == weights_sha:
        return record
    if not all((best.parent / name).is_file() for name in files):
        return record  # a copy of the run without its checkpoint files, as with no best.json
    model, meta = load_model(best)
    try:  # before loading any data
        for block in getattr(model, "blocks", None) or [nn.Identity()]:
            check_energy_config(block)
    except ConfigError:  # a free Mixer (or a model without Mixer blocks): no energy
        return None
    x = test_images(meta, images, data_dir=data_dir)
    per_block = iterated_energies(model, x)
    record = {"model": meta["model"], "n_iter": model.n_iter, "epoch": meta["epoch"],
              "images": len(x), "weights_sha256": weights_sha, "energies": per_block,
              **descent_summary(per_block)}
    write_json(Path(run_dir) / ITERATED_ENERGY, record)
    return record

