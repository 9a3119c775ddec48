"""The training configuration: one dataclass, filled from defaults < YAML file < command line.

The resolved configuration is saved with every run (``config.yaml``) and inside checkpoints,
so a run can be repeated or resumed from what it wrote.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any

import yaml

from ..errors import ConfigError, closest

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
#: ``torch.compile``'s modes (its documentation's list); ``default`` is its default.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class TrainConfig:
    """Every setting of ``hamixer train`` (the paper's recipe, THEORY §6, at CPU scale)."""

    # what
    model: str = "paramixer_n2_8"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    # weights to start from (timm's --initial-checkpoint): a state dict file in any layout of
    # hamixer.models.convert
    initial_checkpoint: str | None = None
    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    img_size: int | None = None  # default: the model's (imagefolder images are resized to it)
    limit_train: int | None = None  # first N training images only (quick runs, tests)
    limit_test: int | None = None
    # how long
    epochs: int = 30
    batch_size: int = 64
    # optimiser: AdamW, lr = base_lr · batch_size / lr_base_size unless lr is given
    opt: str = "adamw"
    lr: float | None = None
    base_lr: float = 5e-4
    lr_base_size: int = 512
    weight_decay: float = 0.05
    # timm exempts 1-D parameters and biases from weight decay; the joint norm's per-(token,
    # channel) gains are 2-D, so they decay with the matrices unless this is false
    norm_weight_decay: bool = True
    opt_eps: float = 1e-8
    clip_grad: float | None = 1.0
    # schedule: cosine with linear warm-up, stepped every update
    sched: str = "cosine"
    warmup_epochs: float = 1.0
    warmup_lr: float = 1e-6
    min_lr: float = 1e-5
    # regularisation and augmentation
    label_smoothing: float = 0.1
    drop_path: float = 0.0
    crop_padding: int = 0
    hflip: float = 0.0
    randaugment_n: int = 0  # RandAugment ops per image (0: off); the paper uses 2, m9, mstd 0.5
    randaugment_m: float = 9.0
    randaugment_mstd: float = 0.5
    reprob: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    # weight EMA (timm's ModelEmaV3), updated after every step: when on, the EMA weights are
    # evaluated, saved as the checkpoint's model and pick `best`; the raw weights' test
    # accuracy is logged beside them (raw_test_acc)
    model_ema: bool = False
    model_ema_decay: float = 0.999
    # ramp the decay up as 1 - (1 + step)^(-2/3) until it reaches model_ema_decay, so the
    # average does not drag the random initialisation through a short run
    model_ema_warmup: bool = True
    # machine
    device: str = "auto"
    amp: bool = False
    amp_dtype: str = "auto"  # auto: bfloat16 on CPU, float16 with a GradScaler on CUDA
    # torch.compile the training forward and backward; evaluation, hooks and checkpoints use
    # the plain module, so saved keys never carry the compiled wrapper's `_orig_mod.` prefix
    compile: bool = False
    # torch.compile's mode (COMPILE_MODES; null: its default), with compile only
    compile_mode: str | None = None
    # TensorFloat-32 for float32 matrix products and cuDNN convolutions on CUDA, on as in
    # timm's train.py; set for the run only, and never on a CPU (which has no TF32)
    tf32: bool = True
    # images and 4-D weights in channels-last memory order (timm's --channels-last): faster
    # convolutions on CUDA, the same result
    channels_last: bool = False
    seed: int = 0
    threads: int | None = None  # torch CPU threads (default: torch's choice)
    # output
    out: str | None = None
    resume: bool = False
    save_best: bool = True
    quiet: bool = False
    # mid-epoch saves of `last` (a killed run loses at most this much work): every N steps
    # (0: off) and at the first step after this many seconds since the last save (0: off)
    checkpoint_every_steps: int = 0
    checkpoint_every_seconds: float = 60.0

    def validate(self) -> TrainConfig:
        """Check every field's type (from its annotation) and range; raise
        :class:`ConfigError` naming the first that is wrong."""
        for f in fields(self):
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name)))
        for name, bounds in RANGES.items():
            check_range(name, getattr(self, name), bounds)
        checks = [
            (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
             f"device must be auto, cpu or cuda, got {self.device!r}"),
            (self.amp_dtype in ("auto", "bfloat16", "float16"),
             f"amp_dtype must be auto, bfloat16 or float16, got {self.amp_dtype!r}"),
            (self.sched in ("cosine", "step", "plateau", "poly", "tanh", "multistep", "none"),
             f"unknown sched {self.sched!r}"),
            (self.compile_mode in (None, *COMPILE_MODES),
             f"compile_mode must be one of {', '.join(COMPILE_MODES)}, "
             f"got {self.compile_mode!r}"),
            (self.compile_mode is None or self.compile,
             f"compile_mode {self.compile_mode!r} needs compile: true (--compile)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        return self

    @property
    def resolved_lr(self) -> float:
        """The peak learning rate: explicit, or linearly scaled from ``base_lr``."""
        if self.lr is not None:
            return self.lr
        return self.base_lr * self.batch_size / self.lr_base_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The range of every numeric setting (YAML, ``--set``, flags and Python alike), as
#: (lowest, highest, whether each end is allowed); None: unbounded. A null optional setting
#: (``lr``, ``clip_grad``, ``threads``, ...) is "not set" and has no range.
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "img_size": (1, None, True, True), "limit_train": (1, None, True, True),
    "limit_test": (1, None, True, True), "epochs": (1, None, True, True),
    "batch_size": (1, None, True, True), "lr": (0, None, False, True),
    "base_lr": (0, None, False, True), "lr_base_size": (1, None, True, True),
    "weight_decay": (0, None, True, True), "opt_eps": (0, None, False, True),
    "clip_grad": (0, None, False, True), "warmup_epochs": (0, None, True, True),
    "warmup_lr": (0, None, True, True), "min_lr": (0, None, True, True),
    "label_smoothing": (0, 1, True, False), "drop_path": (0, 1, True, False),
    "crop_padding": (0, None, True, True), "hflip": (0, 1, True, True),
    # torchvision's RandAugment has 31 magnitude bins, 0-30
    "randaugment_n": (0, None, True, True), "randaugment_m": (0, 30, True, True),
    "randaugment_mstd": (0, None, True, True), "reprob": (0, 1, True, True),
    "mixup": (0, None, True, True), "cutmix": (0, None, True, True),
    "mixup_prob": (0, 1, True, True), "mixup_switch_prob": (0, 1, True, True),
    "model_ema_decay": (0, 1, True, False),
    "seed": (0, 2**63 - 1, True, True),  # torch, numpy and Python seed from a 64-bit int
    "threads": (1, None, True, True), "checkpoint_every_steps": (0, None, True, True),
    "checkpoint_every_seconds": (0, None, True, True),
}


def check_range(name: str, value: float | None, bounds: tuple[float | None, float | None,
                                                              bool, bool]) -> None:
    """A :class:`ConfigError` naming ``name``, its range and ``value`` when it is outside."""
    low, high, low_ok, high_ok = bounds
    if value is None:
        return
    below = low is not None and (value < low or (value == low and not low_ok))
    above = high is not None and (value > high or (value == high and not high_ok))
    if not (below or above):
        return
    if high is None:
        allowed = f"{'>=' if low_ok else '>'} {low}"
    elif low is None:
        allowed = f"{'<=' if high_ok else '<'} {high}"
    else:
        allowed = f"in {'[' if low_ok else '('}{low}, {high}{']' if high_ok else ')'}"
    raise ConfigError(f"{name} must be {allowed}, got {value}")


FIELD_NAMES = tuple(f.name for f in fields(TrainConfig))
#: Each field's annotation, resolved (the module has postponed annotations).
_HINTS = typing.get_type_hints(TrainConfig)


def _field_type(name: str) -> tuple[type, bool]:
    """The type a field holds and whether it may be None, read from its annotation."""
    hint = _HINTS[name]
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, UnionType) \
        else (hint,)
    kinds = [a for a in args if a is not type(None)]
    return typing.get_origin(kinds[0]) or kinds[0], len(kinds) < len(args)


def _number(value: Any) -> float | None:
    """``value`` as a float if it is a number or a number's text (YAML 1.1 reads ``1e-3`` as
    a string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _coerce(name: str, value: Any) -> Any:
    """``value`` checked against the annotation of field ``name`` (``X | None`` included):
    ints are fine for floats and numbers written as text are read as numbers."""
    kind, optional = _field_type(name)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name} must be set (it cannot be null)")
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
    elif kind is float:
        number = _number(value)
        if number is None:
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(number):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        return number
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value  # exact, however large (a float would round it)
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
        number = _number(value)
        if number is None or not number.is_integer() or isinstance(value, float):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        return int(number)
    elif kind is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping of KEY: VALUE, got {value!r}")
    elif kind is str and not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value


def find_config_file(name: str | os.PathLike) -> Path:
    """A YAML path, or the name of a shipped config (``digits``, ``fashion-mnist``, ...)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / f"{path.stem}.yaml"
    if not path.suffix and shipped.is_file():
        return shipped
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    raise ConfigError(f"config file not found: {name} (shipped configs: {', '.join(names)})")


class _DuplicateKey(Exception):
    """A key set twice in one mapping (the message names it and both lines)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that sets one key twice (PyYAML keeps the
    last silently: ``epochs: 1`` then ``epochs: 2`` would train 2 epochs)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _DuplicateKey(f"{key!r} is set twice (lines {seen[key]} and {line}); "
                                    "keep one")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str, source: str) -> Any:
    """YAML ``text`` (safe types only, no key twice); ``source`` names it in errors."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except _DuplicateKey as err:
        raise ConfigError(f"{source}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}:{where} invalid YAML") from None


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    from ..filekind import describe_file

    path = find_config_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML file ({describe_file(path)})") from None
    data = read_yaml(text, str(path))
    if data is None:
        raise ConfigError(f"{path}: no settings in it (an empty file would replace the "
                          "dataset's recipe by the defaults); leave --config out to use the "
                          "recipe")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def merge(base: TrainConfig, overrides: dict[str, Any], source: str) -> TrainConfig:
    """A copy of ``base`` with ``overrides`` applied; unknown keys are an error."""
    updates = {}
    for key, value in overrides.items():
        key = key.replace("-", "_")
        if key not in FIELD_NAMES:
            raise ConfigError(f"{source}: unknown setting {key!r}{closest(key, FIELD_NAMES)}")
        try:
            updates[key] = _coerce(key, value)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
    if "model_kwargs" in updates:  # kwargs merge rather than replace
        updates["model_kwargs"] = {**base.model_kwargs, **updates["model_kwargs"]}
    return dataclasses.replace(base, **updates)


def parse_kv(items: list[str] | None) -> dict[str, Any]:
    """``["k=v", ...]`` with YAML-typed values (``drop_rate=0.1``, ``mlp_ratio=[0.5,4]``)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected KEY=VALUE, got {item!r}")
        try:
            parsed = yaml.load(value, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
        except (yaml.YAMLError, _DuplicateKey):
            raise ConfigError(f"cannot parse value of {item!r}") from None
        if isinstance(parsed, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        out[key.strip()] = parsed
    return out


def save_config(cfg: TrainConfig, path: str | os.PathLike) -> None:
    from ..io import write_text

    write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
