"""What a file is, from its first bytes rather than its name: a command given the wrong file
(a picture as a checkpoint, a pickle as a config) says what it got instead of failing to
decode it."""

from __future__ import annotations

import json
import os
from pathlib import Path

#: Leading bytes → what they start.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"PK\x03\x04", "a zip archive (torch.save writes these)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"%PDF", "a PDF document"),
    (b"\x93NUMPY", "a numpy .npy array"),
    (b"\x89HDF", "an HDF5 file"),
)
#: The header of a safetensors file is at most this long (the format's own limit).
_SAFETENSORS_MAX_HEADER = 100_000_000


def is_safetensors(head: bytes, size: int) -> bool:
    """Whether a file of ``size`` bytes starting with ``head`` is a safetensors file: an
    8-byte little-endian header length, then that many bytes of JSON starting with ``{``."""
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n <= min(size - 8, _SAFETENSORS_MAX_HEADER) and head[8:9] == b"{"


def file_kind(path: str | os.PathLike) -> str:
    """``"json"``, ``"safetensors"``, ``"pickle"``, ``"text"`` or a description of what the
    file holds (``"a PNG image"``, ``"empty"``, ``"binary data"``)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        return "empty"
    if is_safetensors(head, size):
        return "safetensors"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if head[:1] == b"\x80" and head[1:2] in bytes(range(2, 6)):  # pickle protocol 2-5
        return "pickle"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:  # not a multi-byte character cut off by the read
            return "binary data"
        text = head[:err.start].decode("utf-8")
    if "\x00" in text:
        return "binary data"
    if text.lstrip().startswith("{"):
        try:
            json.loads(path.read_text(encoding="utf-8"))
            return "json"
        except (UnicodeDecodeError, ValueError):
            return "text"
    return "text"


def describe_file(path: str | os.PathLike) -> str:
    """What ``path`` holds, for a message: ``a PNG image``, ``a Python pickle``, ..."""
    kind = file_kind(path)
    return {"json": "a JSON file", "safetensors": "a safetensors file",
            "pickle": "a Python pickle (never unpickled here: it can run code)",
            "text": "a text file", "empty": "an empty file"}.get(kind, kind)
