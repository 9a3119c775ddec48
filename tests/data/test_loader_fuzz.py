"""Property-based fuzzing of the dataset readers: whatever the bytes, the only exception a
reader may raise is :class:`HamixerError` (a one-line message), never a traceback, and a
malicious pickle never runs. Cases hypothesis found are kept as explicit regressions below."""

import gzip
import pickle
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hamixer.data.cifar import load_cifar
from hamixer.data.idx import read_idx
from hamixer.data.imagefolder import load_image_folder
from hamixer.errors import HamixerError

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
         "truck"]


def _only_hamixer_errors(fn, *args):
    """Run a reader; success or HamixerError are both fine, anything else fails the test."""
    try:
        return fn(*args)
    except HamixerError as err:
        assert "\n" not in str(err)
        return None


# ----------------------------------------------------------------------------------- IDX
@FUZZ
@given(st.binary(max_size=200))
def test_idx_random_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("idx") / "f-idx3-ubyte"
    path.write_bytes(data)
    _only_hamixer_errors(read_idx, path)
    path.write_bytes(gzip.compress(data))
    _only_hamixer_errors(read_idx, path)


@FUZZ
@given(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]), st.integers(0, 5),
       st.lists(st.integers(0, 2**32 - 1), max_size=5), st.binary(max_size=64))
def test_idx_valid_magic_random_header_and_body(tmp_path_factory, code, ndim, dims, body):
    path = tmp_path_factory.mktemp("idx") / "f-idx3-ubyte"
    path.write_bytes(bytes([0, 0, code, ndim]) + b"".join(struct.pack(">I", d) for d in dims)
                     + body)
    out = _only_hamixer_errors(read_idx, path)
    if out is not None:
        assert out.ndim == ndim and len(dims) >= ndim


def test_idx_regressions(tmp_path):
    path = tmp_path / "f"
    cases = {
        b"": "bad magic", b"\x00\x00\x08": "bad magic", b"\x00\x00\x08\x00": "truncated",
        b"\x00\x00\x08\x01\x00\x00": "truncated",
        b"\x00\x00\x08\x01\x00\x00\x00\x02\x07": "truncated or oversized",
        b"\x00\x00\x08\x03" + b"\xff" * 12: "claims",  # 2**96 elements: refused, not allocated
        b"\x1f\x8b\x08\x00junk": "corrupt gzip",
    }
    for data, message in cases.items():
        path.write_bytes(data)
        with pytest.raises(HamixerError, match=message):
            read_idx(path)


# ---------------------------------------------------------------------------------- CIFAR
def _valid_cifar(root, n=4):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": NAMES}, protocol=2))
    batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"labels": [int(x) for x in rng.integers(0, 10, n)]}
    (root / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    return root


@FUZZ
@given(st.binary(max_size=300))
def test_cifar_random_bytes(tmp_path_factory, data):
    root = _valid_cifar(tmp_path_factory.mktemp("cifar"))
    (root / "test_batch").write_bytes(data)
    _only_hamixer_errors(load_cifar, "cifar10", root, False)
    (root / "batches.meta").write_bytes(data)
    _only_hamixer_errors(load_cifar, "cifar10", root, False)


@FUZZ
@given(st.data())
def test_cifar_mutated_valid_pickle(tmp_path_factory, data):
    root = _valid_cifar(tmp_path_factory.mktemp("cifar"))
    raw = bytearray((root / "test_batch").read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        if data.draw(st.booleans()):
            raw[i] = data.draw(st.integers(0, 255))
        else:
            del raw[i:i + data.draw(st.integers(1, 16))]
            if not raw:
                break
    (root / "test_batch").write_bytes(bytes(raw))
    _only_hamixer_errors(load_cifar, "cifar10", root, False)


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats() | st.binary(max_size=8)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.binary(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8)
_arrays = st.sampled_from([np.uint8, np.int64, np.float32]).flatmap(
    lambda dt: st.tuples(st.integers(0, 3), st.sampled_from([3072, 10, 0])).map(
        lambda shape: np.zeros(shape, dtype=dt)))


@FUZZ
@given(st.one_of(_values, _arrays), st.one_of(_values, _arrays), _values)
def test_cifar_wrong_structure(tmp_path_factory, data, labels, names):
    """Well-formed pickles of the wrong shape: lists, strings, arrays of other types."""
    root = _valid_cifar(tmp_path_factory.mktemp("cifar"))
    (root / "test_batch").write_bytes(pickle.dumps({b"data": data, b"labels": labels},
                                                   protocol=2))
    _only_hamixer_errors(load_cifar, "cifar10", root, False)
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    _only_hamixer_errors(load_cifar, "cifar10", root, False)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_cifar_regressions_and_malicious_payload(tmp_path):
    root = _valid_cifar(tmp_path / "c")
    assert load_cifar("cifar10", root, False).images.shape == (4, 32, 32, 3)
    marker = tmp_path / "pwned"
    bad = {
        "payload": pickle.dumps({b"data": _Payload(marker)}, protocol=2),
        "labels not numbers": pickle.dumps({b"data": np.zeros((1, 3072), np.uint8),
                                            b"labels": [b"x"]}, protocol=2),
        "labels a dict": pickle.dumps({b"data": np.zeros((1, 3072), np.uint8),
                                       b"labels": {b"a": 1}}, protocol=2),
        "labels nested": pickle.dumps({b"data": np.zeros((1, 3072), np.uint8),
                                       b"labels": [[0, 1]]}, protocol=2),
        "not a dict": pickle.dumps([1, 2], protocol=2),
        "persistent id (a multi-line message)": b"P",
        "random bytes": bytes(range(256)),
        "truncated": pickle.dumps({b"data": np.zeros((1, 3072), np.uint8)}, protocol=2)[:40],
    }
    for why, raw in bad.items():
        (root / "test_batch").write_bytes(raw)
        with pytest.raises(HamixerError) as info:
            load_cifar("cifar10", root, False)
        assert "\n" not in str(info.value), why
        assert not marker.exists(), why
    _valid_cifar(root)
    for names in (7, None, [1, [2]], {b"a": 1}):
        (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
        _only_hamixer_errors(load_cifar, "cifar10", root, False)


# ---------------------------------------------------------------------------- image folder
@FUZZ
@given(st.binary(max_size=200), st.sampled_from([".png", ".jpg", ".bmp"]))
def test_image_folder_random_bytes(tmp_path_factory, data, suffix):
    from PIL import Image

    root = tmp_path_factory.mktemp("imgs")
    for split in ("train", "test"):
        (root / split / "a").mkdir(parents=True)
        Image.new("L", (5, 7)).save(root / split / "a" / "ok.png")
    (root / "train" / "a" / f"fuzz{suffix}").write_bytes(data)
    out = _only_hamixer_errors(load_image_folder, root, True, 8, 3)
    if out is not None:  # the bytes happened to be an image
        assert out.images.shape[1:] == (8, 8, 3)


# --------------------------------------------------------- what a model needs of the data
@FUZZ
@given(st.integers(1, 12), st.integers(1, 12), st.lists(st.integers(0, 255), min_size=1,
                                                        max_size=12))
def test_idx_dataset_labels_and_sizes(tmp_path_factory, train_size, test_size, labels):
    """Any labels, any image size per split: a split whose labels are the dataset's classes
    (two at least in training), or one line; and a run's data check (one size in both
    splits) refuses what the pipeline would silently resize."""
    from hamixer.data import load_split
    from hamixer.train.config import TrainConfig
    from hamixer.train.setup import load_data

    root = tmp_path_factory.mktemp("idx")
    for prefix, size in (("train", train_size), ("t10k", test_size)):
        images = np.zeros((len(labels), size, size), np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", np.array(labels, np.uint8))):
            (root / f"{prefix}-{kind}-ubyte").write_bytes(
                bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
                + arr.tobytes())
    for train in (True, False):
        split = _only_hamixer_errors(load_split, "mnist", train, root)
        if split is not None:
            assert 0 <= split.labels.min() and split.labels.max() < len(split.classes)
    cfg = TrainConfig(dataset="mnist", data_dir=str(root))
    fits = _only_hamixer_errors(load_data, cfg, 8)
    if fits is not None:
        assert train_size == test_size and max(labels) < 10
