"""The datasets ``hamixer`` trains on, by name: where they live, their shape, how to load them.

``digits`` is built in (scikit-learn). The others are read from ``--data-dir`` (default
``$HAMIXER_DATA_DIR/<name>``); nothing is downloaded unless
``download=True``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, HamixerError, closest
from .arrays import (
    DATA_DIR_ENV,
    FASHION_MNIST_CLASSES,
    ArraySplit,
    default_data_dir,
    load_digits_arrays,
    load_idx_dataset,
)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    in_chans: int
    img_size: int  # native size (imagefolder: the size images are resized to)
    num_classes: int  # 0: read from the data (imagefolder)
    model_size: str  # registry size suffix that fits, e.g. "t4_28"
    how_to_get: str


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", 1, 8, 10, "n2_8", "built in (scikit-learn)"),
    "mnist": DatasetInfo("mnist", 1, 28, 10, "t4_28",
                         "put train-images-idx3-ubyte[.gz] etc. there, or pass --download"),
    "fashion-mnist": DatasetInfo("fashion-mnist", 1, 28, 10, "t4_28",
                                 "put train-images-idx3-ubyte[.gz] etc. there, or pass "
                                 "--download"),
    "cifar10": DatasetInfo("cifar10", 3, 32, 10, "t4_32",
                           "extract cifar-10-python.tar.gz there, or pass --download"),
    "cifar100": DatasetInfo("cifar100", 3, 32, 100, "t4_32",
                            "extract cifar-100-python.tar.gz there, or pass --download"),
    "imagefolder": DatasetInfo("imagefolder", 3, 32, 0, "t4_32",
                               "make ROOT/train/<class>/*.png and ROOT/test/<class>/*.png"),
}

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte")
_URLS = {
    "mnist": [f"https://ossci-datasets.s3.amazonaws.com/mnist/{f}.gz" for f in _IDX_FILES],
    "fashion-mnist": [f"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{f}.gz"
                      for f in _IDX_FILES],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"],
    "cifar100": ["https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"],
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}{closest(name, DATASETS)} "
                          f"(choose from {', '.join(DATASETS)})")
    return DATASETS[name]


def resolve_data_dir(name: str, data_dir: str | Path | None, download: bool = False) -> Path:
    """The folder to read ``name`` from; a one-line error saying where it looked otherwise."""
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if path.is_dir() or download:
            return path
        raise HamixerError(f"{name}: --data-dir {path} does not exist "
                           f"({dataset_info(name).how_to_get})")
    found = default_data_dir(name)
    if found is not None:
        return found
    if download:
        return Path.home() / ".cache" / "hamixer" / name
    env = os.environ.get(DATA_DIR_ENV)
    looked = (f"looked in {Path(env) / name}, from {DATA_DIR_ENV}={env}" if env
              else f"{DATA_DIR_ENV} is not set")
    raise HamixerError(f"{name} not found: pass --data-dir PATH or set {DATA_DIR_ENV} "
                       f"({looked}); {dataset_info(name).how_to_get}")


def download_dataset(name: str, root: Path) -> None:
    """Fetch the official archives into ``root`` (only when the user asked with --download)."""
    from torchvision.datasets.utils import download_and_extract_archive, download_url

    if name not in _URLS:
        return
    root.mkdir(parents=True, exist_ok=True)
    try:
        for url in _URLS[name]:
            fname = url.rsplit("/", 1)[1]
            if name.startswith("cifar"):
                if not any(root.glob("cifar-*-python")):
                    download_and_extract_archive(url, str(root), filename=fname)
            elif not (root / fname).is_file():
                download_url(url, str(root), filename=fname)
    except (OSError, RuntimeError) as err:
        raise HamixerError(f"download of {name} into {root} failed: {err}") from None


def load_split(name: str, train: bool, data_dir: str | Path | None = None,
               download: bool = False, img_size: int | None = None,
               in_chans: int | None = None) -> ArraySplit:
    """One split of dataset ``name`` as uint8 images ``[N, H, W, C]`` and int64 labels.

    ``img_size`` only applies to ``imagefolder``, whose images are resized when loaded; the
    others keep their native size (the pipeline resizes batches). ``in_chans`` converts any
    dataset's images to that many channels (grey ↔ RGB), so a model's ``in_chans`` decides.
    """
    info = dataset_info(name)
    where = name
    if name == "digits":
        if data_dir is not None:
            raise ConfigError(f"digits are built in (scikit-learn): --data-dir {data_dir} "
                              "would not be read; leave it out")
        split = load_digits_arrays(train)
    else:
        root = resolve_data_dir(name, data_dir, download)
        where = f"{name} ({root})"
        if download:
            download_dataset(name, root)
        if name in ("mnist", "fashion-mnist"):
            classes = FASHION_MNIST_CLASSES if name == "fashion-mnist" else None
            split = load_idx_dataset(root, train, classes)
        elif name in ("cifar10", "cifar100"):
            from .cifar import load_cifar

            split = load_cifar(name, root, train)
        else:
            from .imagefolder import folder_channels, load_image_folder

            # the train split decides the channels of both splits (grey folder → 1)
            split = load_image_folder(root, train, img_size or info.img_size,
                                      in_chans or folder_channels(root))
    if split.images.ndim == 3:
        split.images = split.images[..., None]
    if in_chans is not None:
        split.images = to_channels(split.images, in_chans)
    check_split(split, f"{where} {'train' if train else 'test'} split", train,
                folders=info.num_classes == 0)
    return split


def check_split(split: ArraySplit, where: str, train: bool, folders: bool = False) -> None:
    """Refuse a split a classifier cannot learn from or be scored on: labels outside its
    classes; for training, fewer than two classes or, where each class is a folder of the
    data (``folders``), a class without images."""
    classes = split.classes
    if len(split.labels):
        low, high = int(split.labels.min()), int(split.labels.max())
        if low < 0 or high >= len(classes):
            raise HamixerError(f"{where}: labels go from {low} to {high}, but the dataset has "
                               f"{len(classes)} classes (labels 0 to {len(classes) - 1})")
    if not train:
        return
    if len(classes) < 2:
        raise HamixerError(f"{where}: {len(classes)} class ({', '.join(classes)}); a "
                           "classifier needs at least 2")
    counts = np.bincount(split.labels, minlength=len(classes))
    empty = [classes[k] for k in np.flatnonzero(counts == 0)]
    if folders and empty:
        more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
        raise HamixerError(f"{where}: no images in the class folder"
                           f"{'s' if len(empty) > 1 else ''} "
                           f"{', '.join(map(repr, empty[:5]))}{more}")


#: ITU-R 601-2 luma weights, the grey level of an RGB pixel (as PIL's "L" mode computes it).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_channels(images: np.ndarray, in_chans: int) -> np.ndarray:
    """uint8 images ``[N, H, W, C]`` with ``in_chans`` channels: grey repeated into RGB, or
    RGB reduced to its luma; unchanged when they already have that many."""
    have = images.shape[-1]
    if have == in_chans:
        return images
    if have == 1 and in_chans == 3:
        return np.repeat(images, 3, axis=-1)
    if have == 3 and in_chans == 1:
        grey = images.astype(np.float32) @ _LUMA
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None]
    raise ConfigError(f"in_chans={in_chans}: the images have {have} channel"
                      f"{'s' if have > 1 else ''}; only grey (1) and RGB (3) convert")
