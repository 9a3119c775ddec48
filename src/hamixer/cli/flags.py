"""Command-line flags shared by ``train`` and ``compare``, and how they become a TrainConfig.

Precedence: built-in defaults < the YAML config (``--config``, else the shipped config named
after the dataset, if any) < ``--set KEY=VALUE`` < explicit flags.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..train.config import CONFIG_DIR, TrainConfig, load_yaml, merge, parse_kv

# flag → (config field, type, help); every flag defaults to "not given".
RECIPE_FLAGS: list[tuple[str, str, Any, str]] = [
    ("--lr", "lr", float, "peak learning rate (default: base-lr × batch / 512)"),
    ("--base-lr", "base_lr", float, "learning rate per 512 images (linear scaling)"),
    ("--weight-decay", "weight_decay", float, "AdamW weight decay"),
    ("--opt", "opt", str, "timm optimizer name (default adamw)"),
    ("--sched", "sched", str, "timm scheduler: cosine, step, poly, ... or none"),
    ("--warmup-epochs", "warmup_epochs", float, "linear warm-up epochs"),
    ("--min-lr", "min_lr", float, "final learning rate of the cosine"),
    ("--clip-grad", "clip_grad", float, "gradient-norm clipping (0: off)"),
    ("--label-smoothing", "label_smoothing", float, "label smoothing"),
    ("--drop-path", "drop_path", float, "stochastic depth rate"),
    ("--crop-padding", "crop_padding", int, "random crop after zero padding by N pixels"),
    ("--hflip", "hflip", float, "horizontal flip probability"),
    ("--randaugment", "randaugment_n", int, "RandAugment ops per image (0: off)"),
    ("--randaugment-m", "randaugment_m", float, "RandAugment magnitude (0-30)"),
    ("--reprob", "reprob", float, "random erasing probability"),
    ("--mixup", "mixup", float, "mixup alpha (0: off)"),
    ("--cutmix", "cutmix", float, "cutmix alpha (0: off)"),
    ("--model-ema-decay", "model_ema_decay", float,
     "decay of the weight EMA (with --model-ema; default 0.999)"),
    ("--limit-train", "limit_train", int, "use only the first N training images"),
    ("--limit-test", "limit_test", int, "use only the first N test images"),
    ("--threads", "threads", int, "torch CPU threads"),
    ("--checkpoint-every-steps", "checkpoint_every_steps", int,
     "also save `last` every N steps within an epoch (default: every 60 s)"),
    ("--img-size", "img_size", int, "input size (default: the model's)"),
]


def add_config_arguments(p: argparse.ArgumentParser, compare: bool = False) -> None:
    S = argparse.SUPPRESS
    if not compare:
        p.add_argument("--model", default=S,
                       help="registered name (`hamixer models`) or a family, e.g. paramixer "
                            "(the size fitting the dataset is picked)")
    p.add_argument("--model-kwargs", nargs="+", metavar="K=V", default=S,
                   help="model keyword arguments, e.g. n_iter=2 asym_lambda=1e-3")
    p.add_argument("--dataset", default=S, help="digits (built in), mnist, fashion-mnist, "
                   "cifar10, cifar100, imagefolder")
    p.add_argument("--data-dir", default=S, help="where the dataset files are")
    p.add_argument("--download", action="store_true", default=S,
                   help="download the dataset if it is missing")
    p.add_argument("--epochs", type=int, default=S)
    p.add_argument("--batch-size", type=int, default=S)
    p.add_argument("--config", default=None, metavar="FILE.yaml",
                   help="YAML settings (a path or a shipped name: "
                        f"{', '.join(sorted(x.stem for x in CONFIG_DIR.glob('*.yaml')))})")
    p.add_argument("--set", nargs="+", metavar="K=V", default=None, dest="set_values",
                   help="any config setting, e.g. reprob=0.25 mixup=0.8")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=S)
    p.add_argument("--amp", action="store_true", default=S,
                   help="mixed precision: bfloat16 on CPU, float16 + GradScaler on CUDA")
    p.add_argument("--compile", "--torchcompile", action="store_true", default=S,
                   dest="compile", help="torch.compile the training step (timm's "
                   "--torchcompile); checkpoints keep the plain module's keys")
    if not compare:
        p.add_argument("--seed", type=int, default=S)
    p.add_argument("--quiet", action="store_true", default=S, help="no progress bar or log")
    p.add_argument("--model-ema", action="store_true", default=S,
                   help="keep an exponential moving average of the weights (timm ModelEmaV3); "
                        "evaluate and checkpoint it, log the raw weights' accuracy beside it")
    p.add_argument("--init", choices=["default", "symmetric"], default=S,
                   help="symmetric: start free MLPs (vanillamixer, paramixer) at W2 = W1ᵀ "
                        "exactly, to watch training break the symmetry")
    p.add_argument("--no-symmetry", action="store_true", dest="no_symmetry",
                   help="do not log the weight-symmetry measures every epoch (sym/... keys "
                        "in metrics.jsonl, symmetry.png)")
    group = p.add_argument_group("recipe (override the YAML)")
    for flag, _, typ, help_ in RECIPE_FLAGS:
        group.add_argument(flag, type=typ, default=S, help=help_)


def resolve_model_name(name: str, dataset: str) -> str:
    """A family name (``paramixer``) becomes the registered size that fits ``dataset``."""
    from ..data import dataset_info
    from ..models.registry import FAMILIES

    if name in FAMILIES:
        return f"{name}_{dataset_info(dataset).model_size}"
    return name


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    cfg = base or TrainConfig()
    given = vars(args)
    dataset = given.get("dataset", cfg.dataset)
    if args.config:
        cfg = merge(cfg, load_yaml(args.config), args.config)
    elif (CONFIG_DIR / f"{dataset}.yaml").is_file():
        cfg = merge(cfg, load_yaml(CONFIG_DIR / f"{dataset}.yaml"), f"{dataset}.yaml")
    if args.set_values:
        cfg = merge(cfg, parse_kv(args.set_values), "--set")
    flags: dict[str, Any] = {}
    for key in ("model", "dataset", "data_dir", "download", "epochs", "batch_size", "device",
                "amp", "compile", "seed", "quiet", "out", "resume", "model_ema"):
        if key in given and given[key] is not None:
            flags[key] = given[key]
    for _, field_name, _, _ in RECIPE_FLAGS:
        if field_name in given:
            flags[field_name] = given[field_name]
    if "clip_grad" in flags and flags["clip_grad"] == 0:
        flags["clip_grad"] = None
    if "model_kwargs" in given:
        flags["model_kwargs"] = parse_kv(given["model_kwargs"])
    if "init" in given:
        flags["model_kwargs"] = {**flags.get("model_kwargs", {}), "init": given["init"]}
    cfg = merge(cfg, flags, "command line")
    cfg = merge(cfg, {"model": resolve_model_name(cfg.model, cfg.dataset)}, "model")
    return cfg.validate()
