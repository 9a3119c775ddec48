"""The energy of the features a block iterates (``n_iter``), as a run records it: measured
(:mod:`hamixer.measures.iterated_energy`) on the test images of the run's best checkpoint,
kept in its ``iterated_energy.json``, and tabulated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ..measures.iterated_energy import descent_summary, iterated_energies


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
    from ..runs import BEST_CHECKPOINT, ITERATED_ENERGY, read_iterated_energy
    from ..train.checkpoint import load_model, read_meta

    best = Path(run_dir) / BEST_CHECKPOINT
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

