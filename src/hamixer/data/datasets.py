"""The datasets ``hamixer`` trains on, by name: where they live, their shape, how to load them.

``digits`` is built in (scikit-learn). The others are read from ``--data-dir`` (default
``$HAMIXER_DATA_DIR/<name>``); nothing is downloaded unless
``download=True``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, HamixerError, closest
from .arrays import (
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
    raise HamixerError(f"{name} not found: pass --data-dir PATH or set HAMIXER_DATA_DIR "
                       f"(looked in $HAMIXER_DATA_DIR/{name}); "
                       f"{dataset_info(name).how_to_get}")


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
    if name == "digits":
        split = load_digits_arrays(train)
    else:
        root = resolve_data_dir(name, data_dir, download)
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
    return split


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
