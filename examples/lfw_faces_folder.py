"""Write scikit-image's LFW subset as an image folder: real photos to try the
``imagefolder`` recipe on.

scikit-image ships 200 grey 25×25 crops of Labeled Faces in the Wild photos
(``skimage.data.lfw_subset``): the first 100 are faces, the next 100 are crops of the same
photos that are not faces. This writes them as PNG files in the layout ``hamixer train
--dataset imagefolder`` reads, every fourth image of each class held out for testing::

    pip install scikit-image
    python examples/lfw_faces_folder.py data/lfw-faces
    hamixer train --dataset imagefolder --data-dir data/lfw-faces

    data/lfw-faces/train/face/000.png ... (75 per class)
    data/lfw-faces/test/face/003.png ...  (25 per class)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

CLASSES = ("face", "nonface")  # skimage's order: images 0–99, then 100–199
TEST_EVERY = 4  # images 3, 7, 11, ... of each class are the test split


def load_lfw_subset() -> np.ndarray:
    """The 200 images as uint8 [200, 25, 25]."""
    try:
        from skimage.data import lfw_subset
    except ImportError:
        sys.exit("this example needs scikit-image: pip install scikit-image")
    return np.round(lfw_subset() * 255).astype(np.uint8)


def write_folder(images: np.ndarray, root: Path) -> dict[str, int]:
    """PNG files under root/{train,test}/<class>/; returns the number of files per split."""
    from PIL import Image

    counts = {"train": 0, "test": 0}
    per_class = len(images) // len(CLASSES)
    for label, name in enumerate(CLASSES):
        for i in range(per_class):
            split = "test" if i % TEST_EVERY == TEST_EVERY - 1 else "train"
            path = root / split / name / f"{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[label * per_class + i]).save(path)  # uint8 2-D: grey (L)
            counts[split] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="folder to write (created)")
    root = parser.parse_args().root
    if root.exists() and any(root.iterdir()):
        sys.exit(f"{root} exists and is not empty")
    counts = write_folder(load_lfw_subset(), root)
    print(f"{root}: {counts['train']} training and {counts['test']} test images, "
          f"classes {', '.join(CLASSES)}")


if __name__ == "__main__":
    main()
