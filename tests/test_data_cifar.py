"""Tests for jaxpapers.data.cifar on tiny fake tarballs (no network)."""

import io
import pickle
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest

from jaxpapers import data
from jaxpapers.data import cifar


def _batch(rng, n, label_key, n_classes):
    # the layout of the official files: (n, 3072) uint8 rows, R plane then G then B, each 32x32 row-major
    return {b"batch_label": b"fake", b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            label_key: [int(v) for v in rng.integers(0, n_classes, size=n)], b"filenames": [b"x.png"] * n}


def _write_tar(path, members, folder):
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in members.items():
            # The official files are Python 2 pickles, whose str objects load as bytes with
            # encoding="bytes"; protocol 3 writes bytes and (protocol < 5) arrays the same way.
            raw = pickle.dumps(obj, protocol=3)
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


def fake_cifar10(path, sizes=(3, 2, 4, 1, 2), n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    members = {f"data_batch_{i + 1}": _batch(rng, n, b"labels", 10) for i, n in enumerate(sizes)}
    members["test_batch"] = _batch(rng, n_test, b"labels", 10)
    members["batches.meta"] = {b"label_names": [b"airplane"] * 10}
    _write_tar(path, members, "cifar-10-batches-py")
    return members


def naive_image(row):
    """Pixel (i, j, c) of the NHWC image is row[c * 1024 + i * 32 + j]."""
    img = np.zeros((32, 32, 3))
    for c in range(3):
        for i in range(32):
            for j in range(32):
                img[i, j, c] = row[c * 1024 + i * 32 + j]
    return img / 255.0


def test_parse_cifar10_values_order_layout(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    members = fake_cifar10(path)
    x_train, y_train, x_test, y_test = cifar.parse_cifar_tar(path)
    assert x_train.shape == (12, 32, 32, 3) and x_test.shape == (3, 32, 32, 3)
    assert x_train.dtype == x_test.dtype == np.float32 and y_train.dtype == y_test.dtype == np.int32
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    rows = np.concatenate([members[f"data_batch_{i}"][b"data"] for i in range(1, 6)])  # batches 1..5 in order
    labels = sum((members[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    np.testing.assert_array_equal(y_train, labels)
    np.testing.assert_array_equal(y_test, members["test_batch"][b"labels"])
    for k in (0, 3, 11):
        np.testing.assert_allclose(x_train[k], naive_image(rows[k]), rtol=1e-6)
    np.testing.assert_allclose(x_test[2], naive_image(members["test_batch"][b"data"][2]), rtol=1e-6)
    # channel order: a row with only the green plane set is green everywhere
    assert np.array_equal(np.argmax(naive_image(np.r_[np.zeros(1024), np.full(1024, 255), np.zeros(1024)]), -1),
                          np.ones((32, 32)))


def test_parse_cifar100_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    tr, te = _batch(rng, 4, b"fine_labels", 100), _batch(rng, 2, b"fine_labels", 100)
    tr[b"coarse_labels"] = [0] * 4
    path = tmp_path / "cifar-100-python.tar.gz"
    _write_tar(path, {"train": tr, "test": te, "meta": {b"fine_label_names": []}}, "cifar-100-python")
    x_train, y_train, x_test, y_test = cifar.parse_cifar_tar(path, "cifar100")
    assert x_train.shape == (4, 32, 32, 3) and x_test.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(y_train, tr[b"fine_labels"])
    np.testing.assert_allclose(x_test[1], naive_image(te[b"data"][1]), rtol=1e-6)


def test_parse_errors(tmp_path):
    path = tmp_path / "c10.tar.gz"
    fake_cifar10(path)
    with pytest.raises(ValueError, match="unknown CIFAR"):
        cifar.parse_cifar_tar(path, "cifar11")
    with pytest.raises(ValueError, match="no train, test"):
        cifar.parse_cifar_tar(path, "cifar100")
    bad = tmp_path / "bad.tar.gz"
    rng = np.random.default_rng(0)
    members = {f"data_batch_{i}": _batch(rng, 2, b"labels", 10) for i in range(1, 6)}
    members["test_batch"] = {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
    _write_tar(bad, members, "cifar-10-batches-py")
    with pytest.raises(ValueError, match="3072"):
        cifar.parse_cifar_tar(bad)


def test_parse_refuses_arbitrary_pickles(tmp_path):
    members = {f"data_batch_{i}": {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]} for i in range(1, 6)}
    members["test_batch"] = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": print}
    path = tmp_path / "evil.tar.gz"
    _write_tar(path, members, "cifar-10-batches-py")
    with pytest.raises(ValueError, match="refusing to unpickle"):
        cifar.parse_cifar_tar(path)


def _no_network(*args, **kwargs):
    raise AssertionError("load_cifar must not touch the network when the tarball is cached")


def test_load_cifar_uses_cached_tarball_then_npz(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXPAPERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    tar = data.cache_dir() / "cifar-10-python.tar.gz"
    assert cifar.tarball_path() == tar
    fake_cifar10(tar)
    ref = cifar.parse_cifar_tar(tar)
    got = data.load("cifar10")  # through the dispatcher
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    npz = data.cache_dir() / "cifar10.npz"
    assert npz.exists() and not list(data.cache_dir().glob("*.tmp.npz"))
    with np.load(npz) as z:
        assert z["x_train"].dtype == np.uint8 and z["x_train"].shape == (12, 32, 32, 3)
    tar.unlink()  # the .npz alone now suffices
    for a, b in zip(cifar.load_cifar("cifar10"), ref):
        np.testing.assert_array_equal(a, b)


def test_load_cifar_reads_a_float_npz(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXPAPERS_CACHE", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    x = np.random.default_rng(0).random((5, 32, 32, 3)).astype(np.float32)
    np.savez(tmp_path / "cifar100.npz", x_train=x, y_train=np.arange(5), x_test=x[:2], y_test=np.arange(2))
    x_train, y_train, x_test, y_test = cifar.load_cifar("cifar100")
    np.testing.assert_array_equal(x_train, x)
    assert y_train.dtype == np.int32 and x_test.shape == (2, 32, 32, 3)


def test_download_checks_md5_and_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXPAPERS_CACHE", str(tmp_path))

    def fake_urlopen(url, timeout=None):
        assert url == cifar.URLS["cifar10"]
        return io.BytesIO(b"not the real archive")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(OSError, match="MD5"):
        cifar.load_cifar("cifar10")
    assert list(tmp_path.iterdir()) == []

    def offline(url, timeout=None):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(OSError):
        data.load("cifar10")
    assert list(tmp_path.iterdir()) == []


def test_load_cifar_unknown_name(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXPAPERS_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="unknown CIFAR dataset 'cifar11'"):
        cifar.load_cifar("cifar11")
    assert "cifar10" in data.LOADERS and "cifar100" in data.LOADERS
