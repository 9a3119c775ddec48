"""CIFAR-10/100 in the standard python-batch format, read without unpickling arbitrary objects.

The batches are pickles (Python 2, protocol 2) of a dict holding a uint8 ``data`` array
``[N, 3072]`` (R, G, B planes of 32×32) and ``labels`` (CIFAR-10) or ``fine_labels``
(CIFAR-100). A pickle can call any importable function, so :class:`SafeUnpickler` resolves
only the few numpy names that rebuild a plain array and refuses everything else.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import HamixerError
from .arrays import ArraySplit


def _plain_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:  # object arrays would carry arbitrary objects through the pickle
        raise pickle.UnpicklingError("object dtype is not allowed")
    return dtype


def _reconstruct(subtype: type, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("only numpy.ndarray may be reconstructed")
    return np.ndarray.__new__(np.ndarray, shape, _plain_dtype(dtype))


def _encode(text: str, encoding: str = "latin1") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"unexpected encoding {encoding!r}")
    return text.encode("latin1")


#: (module, name) → the only callables a CIFAR batch may reference.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _plain_dtype,
    # Python 3 writes bytes in protocol 2 as _codecs.encode(str, "latin1").
    ("_codecs", "encode"): _encode,
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild dicts, lists, strings, numbers and plain numpy arrays only."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def load_pickle_batch(path: Path) -> dict[str, Any]:
    """One python batch as a dict with ``str`` keys; a one-line error for anything unexpected."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise HamixerError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        obj = SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # noqa: BLE001 - the unpickler runs no user code: any failure
        # (struct.error, OverflowError, RecursionError, ...) means the bytes are malformed
        detail = " ".join(str(err).split())[:200] or type(err).__name__
        raise HamixerError(f"{path}: not a CIFAR python batch ({detail})") from None
    if not isinstance(obj, dict):
        raise HamixerError(f"{path}: not a CIFAR python batch (a {type(obj).__name__})")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


_LAYOUT = {
    "cifar10": dict(folder="cifar-10-batches-py", meta="batches.meta", names="label_names",
                    labels="labels", train=[f"data_batch_{i}" for i in range(1, 6)],
                    test=["test_batch"]),
    "cifar100": dict(folder="cifar-100-python", meta="meta", names="fine_label_names",
                     labels="fine_labels", train=["train"], test=["test"]),
}


def find_cifar_dir(name: str, data_dir: Path) -> Path:
    """``data_dir`` itself or its extracted sub-folder, whichever holds the meta file."""
    layout = _LAYOUT[name]
    for d in (data_dir, data_dir / layout["folder"]):
        if (d / layout["meta"]).is_file():
            return d
    raise HamixerError(f"no {name} python batches in {data_dir} (looked for {layout['meta']} "
                       f"there and in {layout['folder']}/)")


def load_cifar(name: str, data_dir: str | Path, train: bool) -> ArraySplit:
    """CIFAR-10 (``name="cifar10"``) or CIFAR-100 fine labels as uint8 ``[N, 32, 32, 3]``."""
    layout = _LAYOUT[name]
    root = find_cifar_dir(name, Path(data_dir))
    meta = load_pickle_batch(root / layout["meta"])
    if layout["names"] not in meta:
        raise HamixerError(f"{root / layout['meta']}: no {layout['names']!r} entry")
    names = meta[layout["names"]]
    if not isinstance(names, list) or not names \
            or not all(isinstance(n, (bytes, str)) for n in names):
        raise HamixerError(f"{root / layout['meta']}: {layout['names']!r} must be a list of "
                           "class names")
    classes = [n.decode("latin1") if isinstance(n, bytes) else n for n in names]
    images, labels = [], []
    for fname in layout["train" if train else "test"]:
        path = root / fname
        if not path.is_file():
            raise HamixerError(f"missing {name} batch {path}")
        batch = load_pickle_batch(path)
        data, lab = batch.get("data"), batch.get(layout["labels"])
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
                or data.shape[1] != 3072:
            raise HamixerError(f"{path}: 'data' must be a uint8 array [N, 3072]")
        try:
            lab = np.asarray(lab, dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            lab = np.zeros((0, 0), dtype=np.int64)  # reported below
        if lab.shape != (len(data),) or (len(lab) and (lab.min() < 0 or lab.max() >= len(classes))):
            raise HamixerError(f"{path}: {layout['labels']!r} must be {len(data)} labels in "
                               f"[0, {len(classes)})")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(lab)
    return ArraySplit(np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels),
                      classes)
