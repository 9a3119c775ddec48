"""``hamixer eval``: top-1/top-5 accuracy of a trained checkpoint on a dataset's test split."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "eval"
HELP = "evaluate a checkpoint (directory or file) on a dataset: top-1/top-5 accuracy"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._weights import add_weight_arguments

    p.add_argument("--checkpoint", default=None,
                   help="a run directory (uses best, else last) or a .json/.safetensors file")
    add_weight_arguments(p)
    p.add_argument("--dataset", default=None, help="default: the dataset it was trained on "
                   "(required with --model)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--split", choices=["test", "train"], default="test")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--amp", action="store_true", help="bfloat16 (CPU) / float16 (CUDA) autocast")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    import json

    import torch

    from ..data import dataset_info, load_split
    from ..data.pipeline import ImageBatches
    from ..errors import ConfigError, HamixerError
    from ..train.loop import evaluate
    from ..train.setup import select_device

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    device = select_device(args.device)
    model, meta = _model_and_meta(args, device)
    ds = meta["dataset"]
    name = args.dataset or ds["name"]
    dataset_info(name)
    data_dir = args.data_dir
    if data_dir is None and name == ds["name"]:
        data_dir = meta.get("config", {}).get("data_dir")
    split = load_split(name, args.split == "train", data_dir, img_size=ds["img_size"],
                       in_chans=ds["in_chans"])
    if split.images.shape[-1] != ds["in_chans"]:
        raise HamixerError(f"{name} has {split.images.shape[-1]} channels; the model was "
                           f"trained on {ds['in_chans']} ({ds['name']})")
    if len(split.classes) != ds["num_classes"]:
        raise HamixerError(f"{name} has {len(split.classes)} classes; the model predicts "
                           f"{ds['num_classes']} ({ds['name']})")
    if name != ds["name"]:
        import sys

        print(f"warning: the model was trained on {ds['name']}, not {name}: the accuracy "
              f"compares {ds['name']}'s class numbers with {name}'s labels", file=sys.stderr)
    batches = ImageBatches(split, args.batch_size, ds["img_size"], tuple(ds["mean"]),
                           tuple(ds["std"]), ds["num_classes"], train=False, device=device,
                           limit=args.limit)
    amp_dtype = None
    if args.amp:
        amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    res = evaluate(model, batches, device, amp_dtype)
    weights = meta.get("weights", "model")  # "ema": the run's weight average; "file"
    out = {"checkpoint": meta["path"], "model": meta["model"], "epoch": meta["epoch"],
           "weights": weights, "dataset": name, "split": args.split, "images": res["n"],
           "top1": res["top1"], "top5": res["top5"], "loss": res["loss"]}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        ema = ", EMA weights" if weights == "ema" else ""
        # with five classes or fewer every image is in its top five: nothing to report
        top5 = f"top-5 {res['top5']:.2f}%  " if ds["num_classes"] > 5 else ""
        when = f"epoch {meta['epoch']}{ema}" if meta["epoch"] is not None else meta["path"]
        print(f"{meta['model']} ({when}) on {name} {args.split} "
              f"({res['n']} images): top-1 {res['top1']:.2f}%  {top5}loss {res['loss']:.4f}")
    return 0


def _model_and_meta(args: argparse.Namespace, device: Any) -> tuple[Any, dict[str, Any]]:
    """The model to evaluate: a run's checkpoint (``--checkpoint``), or ``--model`` with
    weights from ``--initial-checkpoint``, described by the model's own input settings."""
    from ..errors import ConfigError
    from ..train.checkpoint import load_model
    from ._weights import model_from_args

    if (args.checkpoint is None) == (args.model is None):
        raise ConfigError("pass either --checkpoint (a run) or --model NAME with "
                          "--initial-checkpoint PATH")
    if args.checkpoint is not None:
        if args.initial_checkpoint or args.model_kwargs:
            raise ConfigError("--initial-checkpoint and --model-kwargs go with --model; "
                              "--checkpoint holds its own model")
        return load_model(args.checkpoint, device=device)
    if args.dataset is None:
        raise ConfigError("--model needs --dataset (there is no run to take it from)")
    model, meta = model_from_args(args)
    cfg = model.pretrained_cfg
    in_chans, img_size = cfg["input_size"][0], cfg["input_size"][-1]
    meta["weights"] = "file"
    meta["dataset"] = {"name": args.dataset, "num_classes": model.num_classes,
                       "in_chans": in_chans, "img_size": img_size, "mean": list(cfg["mean"]),
                       "std": list(cfg["std"])}
    return model.to(device), meta
