"""Loaders for CIFAR python batches, image folders and IDX files, on files generated here in
the exact real formats, and the one-line errors for missing or hostile data."""

import gzip
import io
import os
import pickle

import numpy as np
import pytest

from hamixer.cli import main
from hamixer.data import load_split
from hamixer.data.cifar import load_pickle_batch
from hamixer.errors import HamixerError


class _Py2Pickler(pickle._Pickler):
    """Writes pickles as Python 2's cPickle did: every str and bytes is a BINSTRING."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj, *_):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + len(data).to_bytes(4, "little") + data)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 1.x (what wrote the real files) named the module numpy.core.multiarray
    return buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def _write_cifar10(root, n_per_batch=6, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
    (root / "batches.meta").write_bytes(py2_pickle(
        {"num_cases_per_batch": n_per_batch, "label_names": names, "num_vis": 3072}))
    expected = {}
    for fname in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [int(x) for x in rng.integers(0, 10, n_per_batch)]
        (root / fname).write_bytes(py2_pickle(
            {"batch_label": f"{fname} of 6", "labels": labels, "data": data,
             "filenames": [f"img_{i}.png" for i in range(n_per_batch)]}))
        expected[fname] = (data, labels)
    return expected


def test_cifar10_python_batches(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    expected = _write_cifar10(root)
    assert (root / "data_batch_1").read_bytes()[:2] == b"\x80\x02"
    for data_dir in (root, tmp_path):  # the extracted folder or its parent
        train = load_split("cifar10", True, data_dir)
        test = load_split("cifar10", False, data_dir)
        assert train.images.shape == (30, 32, 32, 3) and test.images.shape == (6, 32, 32, 3)
        data, labels = expected["test_batch"]
        # row layout: 1024 red, 1024 green, 1024 blue, each row-major 32×32
        assert np.array_equal(test.images[2, 5, 7], data[2, [5 * 32 + 7, 1024 + 5 * 32 + 7,
                                                              2048 + 5 * 32 + 7]])
        assert test.labels.tolist() == labels
        assert train.classes[0] == "airplane" and len(train.classes) == 10


def test_cifar100_fine_labels(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    rng = np.random.default_rng(1)
    fine = [f"class{i}" for i in range(100)]
    (root / "meta").write_bytes(py2_pickle({"fine_label_names": fine,
                                            "coarse_label_names": [f"c{i}" for i in range(20)]}))
    for split, n in (("train", 12), ("test", 4)):
        (root / split).write_bytes(py2_pickle({
            "filenames": ["x"] * n, "batch_label": split, "data":
            rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "fine_labels": [int(v) for v in rng.integers(0, 100, n)],
            "coarse_labels": [int(v) for v in rng.integers(0, 20, n)]}))
    tr = load_split("cifar100", True, tmp_path)
    assert tr.images.shape == (12, 32, 32, 3) and len(tr.classes) == 100
    assert tr.labels.max() < 100


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_malicious_pickle_is_refused(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    _write_cifar10(root)
    marker = tmp_path / "pwned"
    (root / "data_batch_3").write_bytes(pickle.dumps({"data": _Evil(marker)}, protocol=2))
    with pytest.raises(HamixerError, match=r"data_batch_3.*refusing to load (posix|nt)\.system"):
        load_split("cifar10", True, root)
    assert not marker.exists()
    # other globals are refused too, even harmless-looking ones
    (root / "test_batch").write_bytes(pickle.dumps({"data": np.array([1, 2], dtype=object)},
                                                   protocol=2))
    with pytest.raises(HamixerError, match="not a CIFAR python batch"):
        load_pickle_batch(root / "test_batch")


def test_cifar_wrong_contents_one_line_error(tmp_path, capsys):
    root = tmp_path / "cifar-10-batches-py"
    _write_cifar10(root)
    (root / "data_batch_2").write_bytes(py2_pickle({"data": np.zeros((3, 10), np.uint8),
                                                    "labels": [0, 1, 2]}))
    with pytest.raises(HamixerError, match=r"uint8 array \[N, 3072\]"):
        load_split("cifar10", True, root)
    (root / "data_batch_2").write_bytes(b"garbage")
    rc = main(["train", "--dataset", "cifar10", "--data-dir", str(root), "--epochs", "1",
               "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "data_batch_2" in err and "\n" not in err


def _write_image_folder(root):
    from PIL import Image

    rng = np.random.default_rng(0)
    made = {"train": 0, "test": 0}
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            d = root / split / cls
            d.mkdir(parents=True)
            imgs = [
                Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), "RGB"),
                Image.fromarray(rng.integers(0, 256, (9, 9), dtype=np.uint8), "L"),
                Image.fromarray(rng.integers(0, 256, (40, 12, 4), dtype=np.uint8), "RGBA"),
                Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8), "L").convert("P"),
                Image.fromarray(rng.integers(0, 60000, (8, 8), dtype=np.uint16)),  # I;16
            ]
            for i, img in enumerate(imgs):
                img.save(d / f"{i}.png")
            Image.fromarray(rng.integers(0, 256, (33, 17, 3), dtype=np.uint8)).save(d / "x.jpg")
            (d / "notes.txt").write_text("not an image")
            made[split] += len(imgs) + 1
    return made


def test_image_folder_any_size_and_mode(tmp_path):
    made = _write_image_folder(tmp_path)
    tr = load_split("imagefolder", True, tmp_path, img_size=16)
    te = load_split("imagefolder", False, tmp_path, img_size=16, in_chans=1)
    assert tr.images.shape == (made["train"], 16, 16, 3) and tr.images.dtype == np.uint8
    assert te.images.shape == (made["test"], 16, 16, 1)
    assert tr.classes == ["cat", "dog"] and sorted(set(tr.labels.tolist())) == [0, 1]
    assert tr.images.std() > 10  # real pixels, not zeros


def test_a_folder_of_grey_images_loads_as_one_channel(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8), "L").save(
                tmp_path / split / cls / "0.png")
            Image.fromarray(rng.integers(0, 999, (7, 7), dtype=np.uint16)).save(
                tmp_path / split / cls / "1.png")  # 16-bit grey is grey too
    assert load_split("imagefolder", True, tmp_path, img_size=8).images.shape == (4, 8, 8, 1)
    assert load_split("imagefolder", False, tmp_path, img_size=8).images.shape == (4, 8, 8, 1)
    # an explicit in_chans wins; one colour image makes the folder RGB
    assert load_split("imagefolder", True, tmp_path, img_size=8, in_chans=3).images.shape[-1] == 3
    Image.fromarray(rng.integers(0, 256, (5, 5, 3), dtype=np.uint8), "RGB").save(
        tmp_path / "train" / "b" / "rgb.png")
    assert load_split("imagefolder", True, tmp_path, img_size=8).images.shape == (5, 8, 8, 3)
    assert load_split("imagefolder", False, tmp_path, img_size=8).images.shape == (4, 8, 8, 3)


def test_image_folder_errors(tmp_path):
    with pytest.raises(HamixerError, match="no train sub-folder"):
        load_split("imagefolder", True, tmp_path)
    _write_image_folder(tmp_path)
    (tmp_path / "test" / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(HamixerError, match="cannot read image .*broken.png"):
        load_split("imagefolder", False, tmp_path, img_size=8)


def _idx(arr):
    head = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.tobytes()


def test_idx_dataset_gz_and_raw(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 10), ("t10k", 4)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        (tmp_path / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(x)))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(y))
    tr = load_split("fashion-mnist", True, tmp_path)
    assert tr.images.shape == (10, 28, 28, 1) and tr.classes[0] == "T-shirt/top"
    assert load_split("mnist", False, tmp_path).images.shape == (4, 28, 28, 1)


def test_missing_dataset_says_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HAMIXER_DATA_DIR", str(tmp_path))
    rc = main(["train", "--dataset", "cifar100", "--epochs", "1", "--out",
               str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err
    assert "cifar100 not found" in err and "looked in" in err and "--data-dir" in err
    assert f"{tmp_path / 'cifar100'}, from HAMIXER_DATA_DIR={tmp_path}" in err  # the value
    rc = main(["train", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "nope"),
               "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "nope" in err and "does not exist" in err
    rc = main(["train", "--dataset", "digitz", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "did you mean: digits" in err
    assert not (tmp_path / "run").exists()
