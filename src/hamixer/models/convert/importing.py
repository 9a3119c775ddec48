"""Weights in any layout loaded into a model: translated, checked key by key and shape by
shape, and loaded strictly (or one line saying what does not fit)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from torch import Tensor, nn

from ...errors import ConfigError
from ..mixer import HamMixer
from .key_maps import ignored_on_import, key_map, scalar_gains
from .layouts import resolve_layout
from .reading import as_state_dict, unwrap_state_dict
from .structure import model_name, require_structure


def from_external(model: nn.Module, state: Mapping[str, Tensor], layout: str = "auto"
                  ) -> dict[str, Tensor]:
    """``state`` (in ``layout``) as a state dict that ``model`` loads strictly."""
    state = unwrap_state_dict(state)
    layout = resolve_layout(layout, state)
    mapping = key_map(require_structure(model, layout, "load"), layout)
    _check_keys(model, state, mapping, layout)
    expected = model.state_dict()
    scalar = scalar_gains(model) if layout != "hamixer" else set()
    out, wrong = {}, []
    for ours, theirs in mapping.items():
        value = state[theirs]
        if ours in scalar and value.shape != expected[ours].shape:
            value = _uniform_gain(value, theirs)
        if value.shape != expected[ours].shape:
            wrong.append(f"{theirs} {list(value.shape)} (model: {list(expected[ours].shape)})")
        out[ours] = value
    if wrong:
        more = f" (+{len(wrong) - 2} more)" if len(wrong) > 2 else ""
        raise ConfigError(f"the {layout} state dict does not fit {model_name(model)}: shapes "
                          f"differ: {'; '.join(wrong[:2])}{more}")
    return out


def _check_keys(model: nn.Module, state: Mapping[str, Tensor], mapping: Mapping[str, str],
                layout: str) -> None:
    wanted = set(mapping.values())
    missing = [k for k in mapping.values() if k not in state]
    unexpected = [k for k in state if k not in wanted and not ignored_on_import(k, layout)]
    if missing or unexpected:
        parts = [f"{what} {_few(keys)}" for what, keys in
                 (("missing", missing), ("unexpected", unexpected)) if keys]
        raise ConfigError(f"the {layout} state dict does not fit {model_name(model)}: "
                          f"{'; '.join(parts)}")


def _few(keys: Iterable[str], n: int = 2) -> str:
    keys = list(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _uniform_gain(value: Tensor, key: str) -> Tensor:
    """A [S, C] gain as our one scalar, when all its entries are equal (else no model of
    ours with a scalar gain computes the same function)."""
    flat = value.reshape(-1)
    if flat.numel() and bool((flat == flat[0]).all()):
        return flat[0].clone()
    raise ConfigError(f"{key}: the file's LayerNorm gain varies over (S, C) and this model's "
                      "is one scalar; build it with norm_affine='elementwise'")


def load_external(model: nn.Module, source: Mapping[str, Tensor] | str | os.PathLike,
                  layout: str = "auto") -> str:
    """Load weights in any of :data:`LAYOUTS` into ``model``; return the layout used.

    ``source`` is a state dict or a checkpoint file (:func:`read_state_dict`); ``layout``
    ``"auto"`` is :func:`detect_layout`. A model that is not one of hamixer's (a timm
    model) loads a plain state dict strictly. Raises :class:`ConfigError` when the weights
    do not fit, saying which keys or shapes differ or which model argument would fit.
    """
    state = as_state_dict(source)
    if not isinstance(model, HamMixer) and layout in ("auto", "hamixer"):
        _load_strict(model, state, source)
        return "hamixer"
    layout = resolve_layout(layout, state)
    _load_strict(model, from_external(model, state, layout), source)
    return layout


def load_state_dict_strict(model: nn.Module, state: Mapping[str, Tensor]) -> str | None:
    """``model.load_state_dict(state, strict=True)``; None when it fits, else the line of
    torch's error that says what does not (for a one-line message)."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        lines = [x.strip() for x in str(err).splitlines() if x.strip()]
        return (lines[1] if len(lines) > 1 else lines[0])[:200]
    return None


def _load_strict(model: nn.Module, state: Mapping[str, Tensor], source: Any) -> None:
    where = source if isinstance(source, (str, os.PathLike)) else "the state dict"
    detail = load_state_dict_strict(model, state)
    if detail is not None:
        raise ConfigError(f"{where}: weights do not fit {model_name(model)} ({detail})")


def fitting_kwargs(source: Mapping[str, Tensor] | str | os.PathLike, layout: str = "auto"
                   ) -> dict[str, Any]:
    """Model arguments that the weights in ``source`` fix, for a registered name of the
    matching family to load them: ``num_classes`` (0 without a head) and, for the official
    layout, ``final_norm="token"``, ``mlp_bias`` and ``norm_affine="elementwise"`` where the
    block gains vary over (S, C) (the scalar gain of our parallel families cannot hold them).
    """
    state = as_state_dict(source)
    layout = resolve_layout(layout, state)
    head = state.get("head.weight")
    kwargs: dict[str, Any] = {"num_classes": int(head.shape[0]) if head is not None else 0}
    if layout != "paramixer":
        return kwargs
    kwargs["final_norm"] = "token"
    kwargs["mlp_bias"] = any(re.fullmatch(r"blocks\.\d+\.mlp_\w+\.fc\d\.bias", k) for k in state)
    gains = [v for k, v in state.items() if re.fullmatch(r"blocks\.\d+\.norm\d?\.weight", k)]
    if any(bool((g != g.reshape(-1)[0]).any()) for g in gains):
        kwargs["norm_affine"] = "elementwise"
    return kwargs
