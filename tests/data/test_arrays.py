import gzip

import numpy as np
import pytest

from hamixer.data import load_digits_arrays, load_idx_dataset, read_idx
from hamixer.data.arrays import default_data_dir
from hamixer.errors import HamixerError


def _idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


@pytest.mark.parametrize("compress", [False, True])
def test_idx_roundtrip(tmp_path, compress):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = _idx_bytes(arr)
    p = tmp_path / ("a.gz" if compress else "a")
    p.write_bytes(gzip.compress(raw) if compress else raw)
    assert np.array_equal(read_idx(p), arr)


def test_idx_rejects_bad_magic_and_truncation(tmp_path):
    arr = np.zeros((2, 2, 2), np.uint8)
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02" + _idx_bytes(arr)[2:])
    with pytest.raises(HamixerError, match="magic"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(_idx_bytes(arr)[:-1])
    with pytest.raises(HamixerError, match="truncated"):
        read_idx(short)


def test_digits_split_is_fixed_and_stratified():
    tr, te = load_digits_arrays(True), load_digits_arrays(False)
    assert len(tr) + len(te) == 1797 and tr.images.shape[1:] == (8, 8)
    assert tr.images.dtype == np.uint8 and tr.images.max() == 255
    assert np.array_equal(load_digits_arrays(False).labels, te.labels)
    counts = np.bincount(te.labels)
    assert counts.min() >= 34 and counts.max() <= 37


def test_fashion_mnist_if_present():
    d = default_data_dir("fashion-mnist")
    if d is None:
        pytest.skip("Fashion-MNIST not found: set HAMIXER_DATA_DIR to the folder holding "
                    "fashion-mnist/")
    te = load_idx_dataset(d, train=False)
    assert te.images.shape == (10000, 28, 28) and set(np.unique(te.labels)) == set(range(10))


def test_missing_dir_is_clear(tmp_path):
    with pytest.raises(HamixerError, match="not found"):
        load_idx_dataset(tmp_path / "nope", train=True)
