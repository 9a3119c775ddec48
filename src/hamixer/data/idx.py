"""Reader for the IDX format of MNIST and Fashion-MNIST (optionally gzip-compressed).

Layout: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then
one big-endian uint32 per dimension and the data. Anything else is rejected with a
one-line :class:`~hamixer.errors.HamixerError` that names the file.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import HamixerError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MAX_ELEMENTS = 1 << 31  # refuse headers that claim absurd sizes before allocating


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        if head == b"\x1f\x8b":
            try:
                return gzip.decompress(f.read())
            except (OSError, EOFError, zlib.error) as err:
                raise HamixerError(f"{path}: corrupt gzip data ({err})") from None
        return f.read()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into a numpy array of its declared shape."""
    path = Path(path)
    if not path.is_file():
        raise HamixerError(f"IDX file not found: {path}")
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise HamixerError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise HamixerError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    count = int(np.prod(shape, dtype=np.int64))
    if count > _MAX_ELEMENTS:
        raise HamixerError(f"{path}: IDX header claims {count} elements")
    body = data[4 + 4 * ndim:]
    if len(body) != count * dtype.itemsize:
        raise HamixerError(f"{path}: truncated or oversized IDX file: header says {shape} "
                           f"({count * dtype.itemsize} bytes), file has {len(body)} bytes")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
