"""Checking a model's keyword arguments against the types its constructor declares.

A user's ``--model-kwargs n_iter=2.5`` must fail with one line that names the argument, the
type it takes and the value given, before anything is built or written; the annotations of
the constructor (for HamMixer and HamFormer: the field types of their configuration,
:mod:`hamixer.models.config`) say what is valid, so every model (ours or timm's) is checked
the same way.
"""

from __future__ import annotations

import collections.abc
import math
import types
import typing
from typing import Any

from ..errors import ConfigError


def _alternatives(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _accepts(kind: Any, value: Any) -> tuple[bool, Any]:
    """Whether ``value`` is of ``kind`` (one alternative of an annotation), and the value as
    the constructor takes it (an int given for a float becomes a float)."""
    origin = typing.get_origin(kind) or kind
    if kind is type(None):
        return value is None, value
    if origin is bool:
        return isinstance(value, bool), value
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if origin is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if origin is str:
        return isinstance(value, str), value
    if origin is type:
        (base,) = typing.get_args(kind) or (object,)
        return isinstance(value, type) and issubclass(value, base), value
    if origin in (collections.abc.Sequence, list, tuple):
        (item,) = typing.get_args(kind)[:1] or (object,)
        if not isinstance(value, (list, tuple)):
            return False, value
        items = [_accepts(item, v) for v in value]
        return all(ok for ok, _ in items), type(value)(v for _, v in items)
    return True, value  # an annotation this check does not know: the constructor decides


def _describe(hint: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             type(None): "null"}
    parts = []
    for kind in _alternatives(hint):
        origin = typing.get_origin(kind) or kind
        if origin in names:
            parts.append(names[origin])
        elif origin is type:
            parts.append("a class")
        else:
            parts.append("a list of numbers")
    return " or ".join(parts)


def check_argument(name: str, key: str, value: Any, hint: Any) -> Any:
    """``value`` as model ``name``'s constructor takes argument ``key`` (annotated ``hint``;
    ``None``: unchecked), or a :class:`ConfigError` naming the argument, type and value."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"model argument {key!r} of {name} must be finite, got {value!r}")
    if hint is None:
        return value
    for kind in _alternatives(hint):
        ok, converted = _accepts(kind, value)
        if ok:
            return converted
    raise ConfigError(f"model argument {key!r} of {name} must be {_describe(hint)}, "
                      f"got {value!r}")
