"""Whole datasets as numpy arrays (images uint8 ``[N, H, W]`` or ``[N, H, W, C]``, labels)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import HamixerError
from .idx import read_idx

#: Where tests and commands look for data when no ``--data-dir`` is given.
DATA_DIR_ENV = "HAMIXER_DATA_DIR"


@dataclass
class ArraySplit:
    images: np.ndarray  # uint8, [N, H, W] (grayscale) or [N, H, W, C]
    labels: np.ndarray  # int64, [N]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)


FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]
MNIST_CLASSES = [str(i) for i in range(10)]


def default_data_dir(name: str) -> Path | None:
    """``$HAMIXER_DATA_DIR/<name>`` if that folder exists, else None.

    ``HAMIXER_DATA_DIR`` names the folder that *contains* the dataset folders; without it
    (or ``--data-dir``) a dataset that is not built in is not found: the package looks in no
    place of its own.
    """
    env = os.environ.get(DATA_DIR_ENV)
    found = Path(env) / name if env else None
    return found if found is not None and found.is_dir() else None


def _find(data_dir: Path, stem: str) -> Path:
    for suffix in (".gz", ""):
        p = data_dir / f"{stem}{suffix}"
        if p.is_file():
            return p
    raise HamixerError(f"missing {stem}[.gz] in {data_dir}")


def load_idx_dataset(data_dir: str | os.PathLike, train: bool,
                     classes: list[str] | None = None) -> ArraySplit:
    """MNIST-style IDX files from ``data_dir`` (``train-*`` or ``t10k-*``, gz or not)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise HamixerError(f"data directory not found: {data_dir}")
    prefix = "train" if train else "t10k"
    images = read_idx(_find(data_dir, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(data_dir, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or images.dtype != np.uint8:
        raise HamixerError(f"{data_dir}: images must be uint8 [N, H, W], got {images.dtype} "
                           f"{images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise HamixerError(f"{data_dir}: {len(images)} images but labels of shape {labels.shape}")
    if len(images) == 0:
        raise HamixerError(f"{data_dir}: the {prefix} split is empty")
    return ArraySplit(images, labels.astype(np.int64), classes or MNIST_CLASSES)


def load_digits_arrays(train: bool, test_fraction: float = 0.2, seed: int = 0) -> ArraySplit:
    """scikit-learn's 8×8 digits (1,797 images, 0–16 grey levels) with a fixed stratified split.

    Grey levels are rescaled to 0–255 uint8 so every dataset shares one pixel range.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    x_tr, x_te, y_tr, y_te = train_test_split(images, bunch.target, test_size=test_fraction,
                                              random_state=seed, stratify=bunch.target)
    x, y = (x_tr, y_tr) if train else (x_te, y_te)
    return ArraySplit(np.ascontiguousarray(x), y.astype(np.int64), MNIST_CLASSES)
