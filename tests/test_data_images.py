"""Tests for jaxpapers.data (dispatcher, cache dir) and jaxpapers.data.images."""

import gzip

import numpy as np
import pytest

from jaxpapers import data
from jaxpapers.data import images


def _write_csv(path, rows):
    with gzip.open(path, "wt") as f:
        for r in rows:
            f.write(",".join(str(int(v)) for v in r) + "\n")


def test_parse_mnist_csv_matches_naive(tmp_path):
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.integers(0, 256, size=(3, 784)), [[7], [0], [9]]], axis=1)
    path = tmp_path / "small.csv.gz"
    _write_csv(path, rows)
    x, y = images.parse_mnist_csv(path)
    assert x.shape == (3, 28, 28) and x.dtype == np.float32
    assert y.shape == (3,) and y.dtype == np.int32
    np.testing.assert_array_equal(y, [7, 0, 9])
    np.testing.assert_allclose(x[1].ravel(), rows[1, :784] / 255.0, rtol=1e-6)
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_parse_mnist_csv_single_row(tmp_path):
    path = tmp_path / "one.csv.gz"
    _write_csv(path, [[255] * 784 + [3]])
    x, y = images.parse_mnist_csv(path)
    assert x.shape == (1, 28, 28) and float(x.max()) == 1.0 and list(y) == [3]


def test_parse_mnist_csv_bad_columns(tmp_path):
    path = tmp_path / "bad.csv.gz"
    _write_csv(path, [[0] * 10])
    with pytest.raises(ValueError, match="785 columns"):
        images.parse_mnist_csv(path)


def test_parse_mnist_csv_bad_pixels(tmp_path):
    path = tmp_path / "neg.csv.gz"
    _write_csv(path, [[300] + [0] * 783 + [1]])
    with pytest.raises(ValueError, match="0, 255"):
        images.parse_mnist_csv(path)


def test_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXPAPERS_CACHE", str(tmp_path / "cache"))
    assert data.cache_dir() == tmp_path / "cache" and (tmp_path / "cache").is_dir()
    calls = []

    def build():
        calls.append(1)
        return np.arange(8, dtype=np.float32).reshape(2, 2, 2), np.array([1, 2], np.int32)

    a1, b1 = images.load_cached("toy", build)
    a2, b2 = images.load_cached("toy", build)
    assert len(calls) == 1  # second call reads the .npz
    assert (tmp_path / "cache" / "toy.npz").exists()
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    assert a2.dtype == np.float32 and b2.dtype == np.int32


def test_load_unknown_name():
    with pytest.raises(ValueError, match="nope"):
        data.load("nope")


def test_digits_shapes_dtypes_range():
    x, y = images.load_digits()
    assert x.shape == (1797, 8, 8) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int32
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y)) == set(range(10))
    x2, y2 = data.load("digits")
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


def test_cache_files_built_by_processes_at_once_stay_whole(tmp_path):
    """Notebooks run in parallel may build the same cache file at once: every reader gets a whole file."""
    import os
    import subprocess
    import sys

    code = ("import numpy as np\nfrom jaxpapers.data import images\n"
            "x, y = images.load_cached('race', lambda: (np.ones((400, 28, 28), np.float32), np.arange(400)))\n"
            "assert x.shape == (400, 28, 28) and int(y.sum()) == 79800\n")
    env = dict(os.environ, JAXPAPERS_CACHE=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE) for _ in range(6)]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    assert sorted(f.name for f in tmp_path.iterdir()) == ["race.npz"]  # no temporary file left behind
