"""Checkpoints as safetensors + JSON (never pickle).

A checkpoint ``DIR/<tag>`` (``last`` or ``best``) is three files, each written atomically:

- ``<tag>.safetensors``: the model weights (the evaluated ones: the weight EMA when the run
  keeps one, so ``eval`` and :func:`load_model` give the model whose accuracy was logged);
- ``<tag>.state.safetensors``: optimiser tensors (``optim.<param>.<name>``), RNG states and,
  with a weight EMA, the raw training weights (``train.<name>``) a resumed run continues from;
- ``<tag>.json``: model name and constructor arguments, dataset, epoch, metrics, the
  resolved config, optimiser/scheduler/grad-scaler scalars and the Python/numpy RNG states.

The epoch is stamped into all three, so files from two different saves are detected, and the
JSON holds the SHA-256 of both tensor files, verified on load (a flipped bit is an error, not a
silently different model). A save within an epoch also records ``step`` (batches done) and
the running train-loss sums, so a killed run resumes mid-epoch.
:func:`load_model` rebuilds a trained model from any of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ..errors import HamixerError
from ..io import atomic_path, write_json

FORMAT = "hamixer-checkpoint"
VERSION = 1


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], epoch: int) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "epoch": str(epoch)})


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, (f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as err:
        raise HamixerError(f"{path}: not a readable safetensors file ({err})") from None


def rng_state() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Python, numpy (JSON) and torch (tensors) RNG states."""
    py = random.getstate()
    # the legacy tuple form (numpy types it as that or a dict)
    state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    name, keys, pos, has_gauss, gauss = state
    json_state = {"python": [py[0], list(py[1]), py[2]],
                  "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(gauss)]}
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    return json_state, tensors


def set_rng_state(json_state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    py = json_state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, gauss = json_state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[:torch.cuda.device_count()])


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, pstate in state["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return {"param_groups": state["param_groups"], "scalars": scalars}, tensors


def _join_optimizer(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, scalars in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(scalars)
    return {"state": state, "param_groups": meta["param_groups"]}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    if isinstance(obj, (np.generic,)):
        return obj.item()
    return obj


TRAIN_PREFIX = "train."


def save_checkpoint(out_dir: str | os.PathLike, tag: str, model: nn.Module,
                    meta: dict[str, Any], optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, scaler: Any = None,
                    ema: nn.Module | None = None) -> Path:
    """Write ``<tag>.safetensors``, ``<tag>.state.safetensors`` and ``<tag>.json``.

    With ``ema`` (the averaged copy of ``model``) the EMA weights are the checkpoint's model
    and ``model``'s own weights go into the state file.
    """
    out = Path(out_dir)
    epoch = int(meta["epoch"])
    evaluated = ema if ema is not None else model
    _save_tensors(out / f"{tag}.safetensors", evaluated.state_dict(), epoch)
    rng_json, state_tensors = rng_state()
    meta = {"format": FORMAT, "version": VERSION, **meta, "rng": rng_json,
            "weights": "ema" if ema is not None else "model"}
    if ema is not None:
        state_tensors.update({TRAIN_PREFIX + k: v for k, v in model.state_dict().items()})
    if optimizer is not None:
        opt_meta, opt_tensors = _split_optimizer(optimizer.state_dict())
        meta["optimizer"] = _jsonable(opt_meta)
        state_tensors.update(opt_tensors)
    if scheduler is not None:
        meta["scheduler"] = _jsonable(scheduler.state_dict())
    if scaler is not None:
        meta["scaler"] = _jsonable(scaler.state_dict())
    _save_tensors(out / f"{tag}.state.safetensors", state_tensors, epoch)
    meta["sha256"] = {name: sha256_file(out / name)
                      for name in (f"{tag}.safetensors", f"{tag}.state.safetensors")}
    write_json(out / f"{tag}.json", meta)  # last: its presence means the save completed
    return out / f"{tag}.json"


def resolve_checkpoint(path: str | os.PathLike, prefer: str = "best") -> Path:
    """The ``.json`` of a checkpoint given a directory, a ``.json`` or a ``.safetensors``
    file, each told by its content (a picture or a pickle named ``.json`` is neither)."""
    from ..filekind import describe_file, file_kind

    path = Path(path)
    if path.is_dir():
        for tag in (prefer, "last", "best"):
            if (path / f"{tag}.json").is_file():
                return path / f"{tag}.json"
        raise HamixerError(f"no checkpoint in {path} (expected best.json or last.json)")
    if not path.is_file():
        raise HamixerError(f"checkpoint not found: {path}")
    kind = file_kind(path)
    if kind == "json":
        return path
    if kind == "safetensors":
        stem = path.name.removesuffix(".safetensors").removesuffix(".state")
        meta = path.with_name(f"{stem}.json")
        if not meta.is_file():
            raise HamixerError(f"{path}: weights without {meta.name} beside them, which a "
                               "hamixer checkpoint keeps its model and settings in; for bare "
                               "weights pass --model NAME --initial-checkpoint PATH")
        return meta
    raise HamixerError(f"{path} is not a hamixer checkpoint but {describe_file(path)}; pass a "
                       "run directory or its best/last .json or .safetensors (weights of other "
                       "code: --model NAME --initial-checkpoint PATH)")


def read_meta(json_path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HamixerError(f"{json_path}: not a readable checkpoint ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise HamixerError(f"{json_path}: not a hamixer checkpoint")
    return meta


def load_checkpoint(path: str | os.PathLike, prefer: str = "best"
                    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """(model weights, optimiser/RNG tensors, metadata) of one checkpoint."""
    json_path = resolve_checkpoint(path, prefer)
    meta = read_meta(json_path)
    stem = json_path.name[: -len(".json")]
    for name, expected in (meta.get("sha256") or {}).items():
        file = json_path.with_name(name)
        if not file.is_file():
            raise HamixerError(f"{json_path}: {name} is missing")
        if sha256_file(file) != expected:
            raise HamixerError(f"{json_path}: checksum mismatch for {name} (the file is "
                               "corrupt or from another save)")
    weights, wmeta = _load_tensors(json_path.with_name(f"{stem}.safetensors"))
    state_path = json_path.with_name(f"{stem}.state.safetensors")
    state, smeta = _load_tensors(state_path) if state_path.is_file() else ({}, {})
    for m in (wmeta, smeta):
        if m and m.get("epoch") != str(meta["epoch"]):
            raise HamixerError(f"{json_path}: files of different saves (epoch {m.get('epoch')} "
                               f"vs {meta['epoch']}); the save was interrupted")
    meta["path"] = str(json_path)
    return weights, state, meta


def load_model(path: str | os.PathLike, prefer: str = "best",
               device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained model from a checkpoint directory or file; returns (model, meta).

    ``meta`` holds ``model``, ``model_kwargs``, ``dataset`` (name, classes, size,
    normalisation), ``epoch``, ``metrics`` and the training ``config``.
    """
    from ..models import create_model

    weights, _, meta = load_checkpoint(path, prefer)
    model = create_model(meta["model"], **meta.get("model_kwargs", {}))
    load_weights(model, weights, meta)
    return model.to(device).eval(), meta


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], meta: dict[str, Any]
                 ) -> None:
    """``model.load_state_dict`` with a one-line error when the checkpoint does not fit."""
    from ..models.convert import load_state_dict_strict

    detail = load_state_dict_strict(model, weights)
    if detail is not None:
        raise HamixerError(f"{meta.get('path', 'checkpoint')}: weights of {meta['model']} do "
                           f"not fit this model ({detail})")


def split_ema_weights(weights: dict[str, torch.Tensor], state: dict[str, torch.Tensor],
                      meta: dict[str, Any]
                      ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """(raw training weights, EMA weights or None) of a loaded checkpoint."""
    if meta.get("weights") != "ema":
        return weights, None
    raw = {k[len(TRAIN_PREFIX):]: v for k, v in state.items() if k.startswith(TRAIN_PREFIX)}
    if not raw:
        raise HamixerError(f"{meta.get('path', 'checkpoint')}: an EMA checkpoint without its "
                           "training weights (train.* in the state file)")
    return raw, weights


def restore_training_state(meta: dict[str, Any], state: dict[str, torch.Tensor],
                           optimizer: torch.optim.Optimizer, scheduler: Any = None,
                           scaler: Any = None) -> None:
    """Load optimiser, scheduler, grad-scaler and RNG states saved by :func:`save_checkpoint`."""
    if "optimizer" in meta:
        optimizer.load_state_dict(_join_optimizer(meta["optimizer"], state))
    if scheduler is not None and "scheduler" in meta:
        scheduler.load_state_dict(meta["scheduler"])
    if scaler is not None and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    if "rng" in meta:
        set_rng_state(meta["rng"], state)
