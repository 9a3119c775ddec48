"""Class-per-folder images (``ROOT/train/<class>/*.png``, ``ROOT/test/<class>/*``).

Images of any size and mode are converted to RGB or grayscale and resized to one square
size, so the whole split becomes one uint8 array like the built-in datasets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import HamixerError
from .arrays import ArraySplit

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm")
TEST_SPLIT_NAMES = ("test", "val", "validation")
#: PIL modes without colour: a folder of only these trains as one channel.
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


def _split_dir(root: Path, train: bool) -> Path:
    names = ("train",) if train else TEST_SPLIT_NAMES
    for n in names:
        if (root / n).is_dir():
            return root / n
    raise HamixerError(f"{root}: no {'/'.join(names)} sub-folder (expected ROOT/train/<class>/"
                       "*.png and ROOT/test/<class>/*.png)")


def list_classes(root: str | Path) -> list[str]:
    """Sorted class folder names of the training split (the label order)."""
    split = _split_dir(Path(root), True)
    classes = sorted(p.name for p in split.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise HamixerError(f"{split}: no class sub-folders")
    return classes


def _to_mode(img, mode: str):
    from PIL import Image

    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # >8-bit grey: rescale to 0–255
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(np.round(arr).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")  # composite on white rather than dropping to black
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    return img.convert(mode)


def _image_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.rglob("*"))
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]


def folder_channels(root: str | Path) -> int:
    """1 when every training image is grey-scale, else 3: a folder of grey images trains as
    one channel without the user saying so (only the headers are read)."""
    from PIL import Image, UnidentifiedImageError

    split = _split_dir(Path(root), True)
    for cls in list_classes(root):
        for path in _image_files(split / cls):
            try:
                with Image.open(path) as img:
                    if img.mode not in GREY_MODES:
                        return 3
            except (UnidentifiedImageError, OSError, ValueError) as err:
                raise HamixerError(f"cannot read image {path}: {err}") from None
    return 1


def load_image_folder(root: str | Path, train: bool, img_size: int,
                      in_chans: int | None = None) -> ArraySplit:
    """Every image under the split's class folders as uint8 ``[N, img_size, img_size, C]``;
    ``in_chans`` None: 1 for a folder of grey images, else 3 (:func:`folder_channels`)."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise HamixerError(f"image folder not found: {root}")
    if in_chans is None:
        in_chans = folder_channels(root)
    if in_chans not in (1, 3):
        raise HamixerError(f"imagefolder supports 1 or 3 channels, got {in_chans}")
    classes = list_classes(root)
    split = _split_dir(root, train)
    mode = "L" if in_chans == 1 else "RGB"
    images, labels = [], []
    for label, cls in enumerate(classes):
        folder = split / cls
        if not folder.is_dir():
            continue  # a class may be absent from the test split
        for path in _image_files(folder):
            try:
                with Image.open(path) as img:
                    img = _to_mode(img, mode)
                    img = img.resize((img_size, img_size), Image.Resampling.BICUBIC)
                    arr = np.asarray(img, dtype=np.uint8)
            except (UnidentifiedImageError, OSError, ValueError) as err:
                raise HamixerError(f"cannot read image {path}: {err}") from None
            images.append(arr.reshape(img_size, img_size, in_chans))
            labels.append(label)
    others = [p.name for p in split.iterdir() if p.is_dir() and p.name not in classes]
    if others:
        raise HamixerError(f"{split}: class folders {others} are not in the train split")
    if not images:
        raise HamixerError(f"{split}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return ArraySplit(np.stack(images), np.asarray(labels, dtype=np.int64), classes)
