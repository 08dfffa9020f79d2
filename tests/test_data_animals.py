"""Tests for jaxpapers.data.animals on small files the tests write, and on the pinned wheel."""

import gzip
import importlib.util
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from jaxpapers.data import animals


def write(path, obj):
    with gzip.open(path, "wb") as f:
        pickle.dump(obj, f)
    return path


def test_parse_small_files(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, size=(6, 28, 28)).astype(np.uint8)
    labels = np.array([0, 1, 2, 9, 3, 3], np.int64)
    x, y = animals.parse_animals(write(tmp_path / "d.gz", imgs), write(tmp_path / "l.gz", labels), check_hash=False)
    assert x.shape == (6, 28, 28) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_allclose(x, imgs / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels)


def test_hash_is_checked(tmp_path):
    imgs = np.zeros((2, 28, 28), np.uint8)
    with pytest.raises(ValueError, match="SHA-256"):
        animals.parse_animals(write(tmp_path / "d.gz", imgs), write(tmp_path / "l.gz", np.zeros(2, np.int64)))


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_only_arrays_are_unpickled(tmp_path):
    with pytest.raises(ValueError, match="refusing"):
        animals.read_array_pickle(write(tmp_path / "e.gz", _Evil()))
    with pytest.raises(ValueError, match="NumPy array"):
        animals.read_array_pickle(write(tmp_path / "n.gz", 3))


@pytest.mark.parametrize("imgs, labels, match", [
    (np.zeros((2, 28, 27), np.uint8), np.zeros(2, np.int64), "images"),
    (np.zeros((2, 28, 28), np.uint8), np.zeros(3, np.int64), "labels"),
    (np.full((2, 28, 28), 300, np.int64), np.zeros(2, np.int64), "pixel"),
    (np.zeros((2, 28, 28), np.uint8), np.array([0, 10]), "labels"),
])
def test_bad_files(tmp_path, imgs, labels, match):
    with pytest.raises(ValueError, match=match):
        animals.parse_animals(write(tmp_path / "d.gz", imgs), write(tmp_path / "l.gz", labels), check_hash=False)


@pytest.mark.skipif(importlib.util.find_spec("animal_shape_mnist") is None, reason="wheel not installed")
def test_real_wheel(tmp_path, monkeypatch):
    images_path, labels_path = animals.data_files()
    assert animals.sha256(images_path) == animals.SHA256[animals.IMAGES_FILE]
    monkeypatch.setenv("JAXPAPERS_CACHE", str(tmp_path))
    x, y = animals.load_animals()
    assert x.shape == (10_000, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(np.bincount(y), [1000] * 10)
    assert (tmp_path / f"animals-{animals.VERSION}.npz").exists()
    x2, y2 = animals.load_animals()  # from the cache
    np.testing.assert_array_equal(x, x2)


def test_does_not_import_tensorflow():
    code = "import sys; from jaxpapers.data import animals; animals.data_files(); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
