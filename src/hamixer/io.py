"""Files are written whole or not at all: a temporary file in the same folder, then rename;
and values compared as a file gives them back."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import HamixerError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    if path.is_dir():  # else the rename fails naming the temporary file, not the user's path
        raise HamixerError(f"cannot write {path}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise HamixerError(f"cannot write {path}: {err.strerror or err}") from None
    os.close(fd)
    # mkstemp creates 0600; give the final file the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        try:
            os.replace(tmp_path, path)
        except OSError as err:
            raise HamixerError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 150) -> None:
    """Save a matplotlib figure atomically as PNG (the format is explicit: the name is .tmp)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")


def as_read_back(value: Any) -> Any:
    """``value`` as YAML or JSON gives it back once saved: tuples as lists, at any depth (so a
    saved setting compares equal to the one it was saved from)."""
    if isinstance(value, (list, tuple)):
        return [as_read_back(v) for v in value]
    if isinstance(value, dict):
        return {k: as_read_back(v) for k, v in value.items()}
    return value
