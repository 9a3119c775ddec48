"""Command-line flags shared by the commands (``train``, ``compare``, ``sweep``, …), how they
become a TrainConfig, and how a command that trains several runs finishes.

Precedence: built-in defaults < the YAML config (``--config``, else the shipped config named
after the dataset, if any) < ``--set KEY=VALUE`` < explicit flags.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigError
from ..runs import LAST_CHECKPOINT, has_checkpoint
from ..train.config import COMPILE_MODES, CONFIG_DIR, TrainConfig, load_yaml, merge, parse_kv

T = TypeVar("T")

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


#: timm's names of our flags (timm's train.py is what users of this field bring).
TIMM_ALIASES = {"--label-smoothing": ("--smoothing",), "--batch-size": ("-b",),
                "--compile": ("--torchcompile",), "--compile-mode": ("--torchcompile-mode",)}


def add_config_arguments(p: argparse.ArgumentParser, compare: bool = False) -> None:
    S = argparse.SUPPRESS
    if not compare:
        p.add_argument("--model", default=S,
                       help="registered name (`hamixer models`) or a family, e.g. paramixer "
                            "(the size fitting the dataset is picked)")
    p.add_argument("--model-kwargs", nargs="+", metavar="K=V", default=S,
                   help="model keyword arguments, e.g. n_iter=2 asym_lambda=1e-3")
    if not compare:
        p.add_argument("--initial-checkpoint", default=S, metavar="PATH",
                       help="start from these weights (timm's flag): .safetensors/.pth/... in "
                            "hamixer's, timm's or the official paramixer/iMixer layout")
    p.add_argument("--dataset", default=S, help="digits (built in), mnist, fashion-mnist, "
                   "cifar10, cifar100, imagefolder")
    p.add_argument("--data-dir", default=S, help="where the dataset files are")
    p.add_argument("--download", action="store_true", default=S,
                   help="download the dataset if it is missing")
    p.add_argument("--epochs", type=int, default=S)
    p.add_argument("--batch-size", *TIMM_ALIASES["--batch-size"], type=int, default=S)
    p.add_argument("--in-chans", type=int, default=S,
                   help="input channels of the model (timm's flag; the images are converted)")
    p.add_argument("--num-classes", type=int, default=S,
                   help="classifier outputs (timm's flag; default: the dataset's classes)")
    p.add_argument("--aa", default=S, metavar="rand-m9-mstd0.5-inc1",
                   help="timm's RandAugment string: rand-mM[-nN][-mstdS][-inc1]")
    p.add_argument("--config", default=None, metavar="FILE.yaml",
                   help="YAML settings (a path or a shipped name: "
                        f"{', '.join(sorted(x.stem for x in CONFIG_DIR.glob('*.yaml')))})")
    p.add_argument("--set", nargs="+", metavar="K=V", default=None, dest="set_values",
                   help="any config setting, e.g. reprob=0.25 mixup=0.8")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=S)
    p.add_argument("--amp", action="store_true", default=S,
                   help="mixed precision: bfloat16 on CPU, float16 + GradScaler on CUDA")
    p.add_argument("--compile", *TIMM_ALIASES["--compile"], action="store_true", default=S,
                   dest="compile", help="torch.compile the training step (timm's "
                   "--torchcompile); checkpoints keep the plain module's keys")
    p.add_argument("--compile-mode", *TIMM_ALIASES["--compile-mode"], default=S,
                   metavar="MODE", help="torch.compile's mode (timm's --torchcompile-mode; "
                   f"implies --compile): {', '.join(COMPILE_MODES)}; reduce-overhead replays "
                   "CUDA graphs, max-autotune also searches GEMM kernels")
    p.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=S,
                   help="TensorFloat-32 float32 matmuls and convolutions on CUDA (default: on, "
                        "as timm's train.py; --no-tf32: full float32); no effect on a CPU")
    p.add_argument("--channels-last", action="store_true", default=S,
                   help="images and the model's 4-D weights in channels-last memory order "
                        "(timm's flag): speeds up convolutions on CUDA (timm's ConvNets, the "
                        "conv stems of its ViT and MlpMixer); no effect on the result, nor on "
                        "1-channel images (the same bytes), and hamixer's Mixers embed patches "
                        "as a GEMM on unfolded patches, which reads either layout")
    if not compare:
        p.add_argument("--seed", type=int, default=S)
    p.add_argument("--quiet", action="store_true", default=S, help="no progress bar or log")
    p.add_argument("--model-ema", action="store_true", default=S,
                   help="keep an exponential moving average of the weights (timm ModelEmaV3); "
                        "evaluate and checkpoint it, log the raw weights' accuracy beside it")
    p.add_argument("--init", choices=["default", "symmetric"], default=S,
                   help="symmetric: start free MLPs (vanillamixer, paramixer, a timm model's) "
                        "at W2 = W1ᵀ and attention at W_K = W_Q, W_V = W_K and W_O = W_Qᵀ per "
                        "head exactly, to watch training break the symmetry")
    p.add_argument("--no-symmetry", action="store_true", dest="no_symmetry",
                   help="do not log the weight-symmetry measures every epoch (sym/... keys "
                        "in metrics.jsonl, symmetry.png)")
    group = p.add_argument_group("recipe (override the YAML)")
    for flag, _, typ, help_ in RECIPE_FLAGS:
        group.add_argument(flag, *TIMM_ALIASES.get(flag, ()), type=typ, default=S, help=help_)


def parse_randaugment(text: str) -> dict[str, Any]:
    """timm's RandAugment string (``rand-m9-mstd0.5-inc1``, ``rand-m7-n3``) as settings.

    ``inc1`` (severity that grows with the magnitude for every op) is how torchvision's
    RandAugment, which the pipeline uses, already behaves; ``inc0`` is not available.
    """
    parts = text.split("-")
    if parts[0] != "rand":
        raise ConfigError(f"--aa {text!r}: only RandAugment strings (rand-m9-...) are supported")
    out: dict[str, Any] = {"randaugment_n": 2}  # timm's default number of ops
    keys = {"mstd": "randaugment_mstd", "m": "randaugment_m", "n": "randaugment_n",
            "inc": None}
    for part in parts[1:]:
        key = next((k for k in keys if part.startswith(k)), None)
        try:
            value = float(part[len(key):]) if key else None
        except ValueError:
            value = None
        if key is None or value is None:
            raise ConfigError(f"--aa {text!r}: cannot read {part!r} (m<magnitude>, n<ops>, "
                              "mstd<std>, inc1)")
        if key == "inc":
            if value != 1:
                raise ConfigError(f"--aa {text!r}: only inc1 (torchvision's RandAugment)")
        else:
            out[keys[key]] = int(value) if key == "n" else value
    return out


def resume_from(path: str, out: str | None) -> dict[str, Any]:
    """``--resume PATH`` (a checkpoint file or a run directory) as ``out`` + ``resume``."""
    run_dir = Path(path) if Path(path).is_dir() else Path(path).parent
    check_resumable(run_dir, f"--resume {path}")
    if out is not None and Path(out).resolve() != run_dir.resolve():
        raise ConfigError(f"--resume {path} is a run in {run_dir}, not in --out {out}")
    return {"out": str(run_dir), "resume": True}


def check_resumable(run_dir: Any, flag: str = "--resume") -> None:
    """Refuse to resume a folder without the checkpoint where training stopped
    (``last.json``): a mistyped or emptied folder would start over and overwrite the run."""
    run_dir = Path(run_dir)
    if has_checkpoint(run_dir, LAST_CHECKPOINT):
        return
    if not run_dir.is_dir():
        raise ConfigError(f"{flag}: no checkpoint there ({run_dir} does not exist)")
    found = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("."))
    held = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
    raise ConfigError(f"{flag}: no checkpoint there (no {LAST_CHECKPOINT} in {run_dir}, which "
                      f"holds {held or 'nothing'}); resuming would start the run over")


def _epochs(n: float) -> str:
    return f"{n:g} epoch{'s' if n != 1 else ''}"


def _fit_recipe_warmup(cfg: TrainConfig, recipe: str, recipe_epochs: int) -> TrainConfig:
    """A shipped recipe's warm-up longer than the run the user asked for (``--epochs 1`` on
    digits, whose recipe warms up for 2 of its 20): the learning rate would rise for the
    whole run and never reach its peak. The warm-up keeps the recipe's share of the run
    instead, and a warning line says so (unless ``--quiet``; ``config.yaml`` records it)."""
    import sys

    share = min(1.0, cfg.warmup_epochs / recipe_epochs)
    fitted = share * cfg.epochs
    if not cfg.quiet:
        print(f"warning: {recipe} warms up for {_epochs(cfg.warmup_epochs)} (of its "
              f"{recipe_epochs}), longer than this run's {_epochs(cfg.epochs)}: warming up "
              f"for {fitted:.3g} epochs instead, the recipe's share ({share:.0%}); "
              "--warmup-epochs N sets it", file=sys.stderr)
    return merge(cfg, {"warmup_epochs": fitted}, recipe)


def resolve_model_name(name: str, dataset: str) -> str:
    """A family name (``paramixer``, or ``vit`` for the timm presets) becomes the registered
    size that fits ``dataset``."""
    from ..data import dataset_info
    from ..models.registry import FAMILIES
    from ..models.timm_models import PRESETS

    sized = f"{name}_{dataset_info(dataset).model_size}"
    if name in FAMILIES or sized in PRESETS:
        return sized
    return name


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    cfg = base or TrainConfig()
    given = vars(args)
    dataset = given.get("dataset", cfg.dataset)
    chosen: set[str] = set()  # the settings the user gave (not the shipped recipe's)
    recipe = None  # the shipped recipe the settings start from, if any
    if args.config:
        from ..train.config import find_config_file

        settings = load_yaml(args.config)
        path = find_config_file(args.config)
        if path.resolve().parent == CONFIG_DIR.resolve():
            recipe = path.name
        else:  # the user's own file: its settings are theirs
            chosen |= set(settings)
        cfg = merge(cfg, settings, args.config)
    elif (CONFIG_DIR / f"{dataset}.yaml").is_file():
        recipe = f"{dataset}.yaml"
        cfg = merge(cfg, load_yaml(CONFIG_DIR / recipe), recipe)
    recipe_epochs = cfg.epochs
    if args.set_values:
        settings = parse_kv(args.set_values)
        chosen |= set(settings)
        cfg = merge(cfg, settings, "--set")
    flags: dict[str, Any] = {}
    for key in ("model", "dataset", "data_dir", "download", "epochs", "batch_size", "device",
                "amp", "compile", "compile_mode", "tf32", "channels_last", "seed", "quiet",
                "out", "resume", "model_ema", "initial_checkpoint"):
        if key in given and given[key] is not None:
            flags[key] = given[key]
    if "compile_mode" in given:  # timm's --torchcompile-mode names how to compile: it compiles
        flags["compile"] = True
    for _, field_name, _, _ in RECIPE_FLAGS:
        if field_name in given:
            flags[field_name] = given[field_name]
    if "clip_grad" in flags and flags["clip_grad"] == 0:
        flags["clip_grad"] = None
    if "model_kwargs" in given:
        flags["model_kwargs"] = parse_kv(given["model_kwargs"])
    for key in ("init", "in_chans", "num_classes"):
        if key in given:
            flags["model_kwargs"] = {**flags.get("model_kwargs", {}), key: given[key]}
    if "aa" in given:
        flags.update(parse_randaugment(given["aa"]))
    resume = given.get("resume")
    if isinstance(resume, str):  # timm's --resume PATH: a checkpoint or its run directory
        flags.update(resume_from(resume, given.get("out")))
    cfg = merge(cfg, flags, "command line")
    chosen |= set(flags)
    if cfg.warmup_epochs > cfg.epochs:
        if "warmup_epochs" in {k.replace("-", "_") for k in chosen}:
            raise ConfigError(f"warmup_epochs {cfg.warmup_epochs:g} is longer than the run "
                              f"({_epochs(cfg.epochs)}): the learning rate would never reach "
                              "its peak; shorten the warm-up or train longer")
        if recipe is not None:
            cfg = _fit_recipe_warmup(cfg, recipe, recipe_epochs)
    if resume is True and cfg.out:  # the plain flag: continue the run in --out
        check_resumable(cfg.out)
    cfg = merge(cfg, {"model": resolve_model_name(cfg.model, cfg.dataset)}, "model")
    return cfg.validate()


# ------------------------------------------------------- commands that train several runs
def add_jobs_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("-J", "--jobs", default="auto", metavar="N",
                   help="trainings at a time, each in its own process with its share of the "
                        "CPU threads (or its own GPU); 1: one after the other, here; default "
                        "auto: one per GPU, or on a CPU as many as the usable cores allow at "
                        "--threads (default: OMP_NUM_THREADS, else 1) each")


def check_jobs(jobs: str | int) -> int | None:
    """``--jobs`` as a number of workers, None for ``auto``."""
    if str(jobs) == "auto":
        return None
    try:
        n = int(jobs)
    except ValueError:
        raise ConfigError(f"--jobs must be a number or auto, got {jobs!r}") from None
    if n < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    return n


def comma_list(text: str, flag: str, kind: Callable[[str], T], what: str,
               valid: Callable[[T], bool] = lambda value: True) -> list[T]:
    """``flag``'s comma-separated distinct values, each read by ``kind`` (``int``, ``float``)
    and accepted by ``valid``; ``what`` names them in the one-line error ("integers")."""
    try:
        values = [kind(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"{flag} must be comma-separated {what}, got {text!r}") from None
    if not values or len(set(values)) != len(values) or not all(map(valid, values)):
        raise ConfigError(f"{flag} must be distinct {what}, got {text!r}")
    return values


def positive_ints(text: str, flag: str) -> list[int]:
    """``flag``'s comma-separated distinct positive integers, e.g. ``--n-iters 1,2,3``."""
    return comma_list(text, flag, int, "positive integers", lambda n: n >= 1)


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """``flag``'s comma-separated distinct integers, e.g. ``--seeds 0,1,2``."""
    return comma_list(text, flag, int, "integers")


def finish(out: Path, table: str, files: Sequence[str]) -> None:
    """Record the command beside the results, print the table and what was written."""
    from ..provenance import record_command

    record_command(out)
    print()
    print(table)
    print(f"\nwrote {', '.join(str(out / f) for f in files)}")
