"""``hamixer energy``: the energy of the features each block of a trained model iterates."""

from __future__ import annotations

import argparse

NAME = "energy"
HELP = ("per block of a trained parallel model: the energy of its input and after each of "
        "its n_iter applications, on test images (does each step descend?)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a run directory (best, else last) or a checkpoint file")
    p.add_argument("--prefer", choices=["best", "last"], default="best")
    p.add_argument("--dataset", default=None, help="default: the dataset it was trained on")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--images", type=int, default=256, help="test images to average over")
    p.add_argument("--pseudo", action="store_true",
                   help="AsymMixer: the pseudo-energy (W̃ left out)")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    import json

    from ..errors import ConfigError
    from ..experiments.iterations import (
        descent_summary,
        format_iterated_energies,
        iterated_energies,
        test_images,
    )
    from ..train.checkpoint import load_model

    if args.images < 1:
        raise ConfigError(f"--images must be >= 1, got {args.images}")
    model, meta = load_model(args.checkpoint, prefer=args.prefer)
    name = args.dataset or meta["dataset"]["name"]
    images = test_images(meta, args.images, name, args.data_dir)
    try:
        per_block = iterated_energies(model, images, pseudo=args.pseudo)
    except ConfigError as err:  # the library's argument is this command's flag
        raise ConfigError(str(err).replace("pass pseudo=True", "pass --pseudo")) from err
    summary = descent_summary(per_block)
    if args.json:
        print(json.dumps({"checkpoint": meta["path"], "model": meta["model"],
                          "n_iter": model.n_iter, "images": len(images),
                          "energies": per_block, **summary}, indent=2))
        return 0
    print(f"{meta['model']} (n_iter {model.n_iter}, epoch {meta['epoch']}) on {len(images)} "
          f"{name} test images: mean energy of each block's state\n")
    print(format_iterated_energies(per_block))
    print(f"\n{summary['lowered']} of {summary['applications']} applications lowered the "
          f"energy; largest rise {summary['largest_rise']:.3g}")
    return 0
