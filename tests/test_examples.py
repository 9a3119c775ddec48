"""examples/: the LFW image-folder writer, and the recipe an image folder gets by default."""

import importlib.util
from pathlib import Path

import numpy as np

from hamixer.cli.flags import config_from_args
from hamixer.cli.main import build_parser
from hamixer.data.imagefolder import load_image_folder

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lfw_writer_makes_a_grey_two_class_folder_with_every_fourth_image_held_out(tmp_path):
    lfw = _load_example("lfw_faces_folder")
    images = np.random.default_rng(0).integers(0, 256, (16, 25, 25), dtype=np.uint8)
    assert lfw.write_folder(images, tmp_path) == {"train": 12, "test": 4}
    train = load_image_folder(tmp_path, train=True, img_size=25)
    test = load_image_folder(tmp_path, train=False, img_size=25)
    assert train.classes == list(lfw.CLASSES) and train.images.shape == (12, 25, 25, 1)
    assert test.labels.tolist() == [0, 0, 1, 1]
    # the files are the images, unchanged: image 3 of class 1 is the first test image there
    np.testing.assert_array_equal(test.images[2, ..., 0], images[8 + 3])


def test_an_image_folder_trains_with_its_own_recipe_by_default(tmp_path):
    args = build_parser().parse_args(["train", "--dataset", "imagefolder", "--data-dir",
                                      str(tmp_path)])
    cfg = config_from_args(args)
    assert cfg.model == "paramixer_t4_32" and cfg.resolved_lr == 1e-3
    assert cfg.hflip == 0.5 and cfg.crop_padding == 4
