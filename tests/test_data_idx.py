"""Tests for jaxpapers.data.idx on tiny IDX files written here (no network)."""

import gzip
import hashlib
import struct

import numpy as np
import pytest

from jaxpapers import data
from jaxpapers.data import idx

CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
         np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}
FORMATS = {0x08: "B", 0x09: "b", 0x0B: "h", 0x0C: "i", 0x0D: "f", 0x0E: "d"}


def idx_bytes(array) -> bytes:
    """A naive IDX writer: header with struct, then every element packed one by one, big-endian."""
    a = np.asarray(array)
    code = CODES[a.dtype]
    out = bytes([0, 0, code, a.ndim]) + b"".join(struct.pack(">I", s) for s in a.shape)
    return out + b"".join(struct.pack(">" + FORMATS[code], v) for v in a.ravel().tolist())


def write_idx(path, array, *, compress=True):
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def tiny_family(seed=0, n_train=5, n_test=3):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train).astype(np.uint8),
            rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test).astype(np.uint8))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_parse_idx_round_trip_every_type(dtype):
    rng = np.random.default_rng(1)
    a = (rng.normal(size=(3, 4, 2)) * 100).astype(dtype)
    if dtype == np.uint8:
        a = rng.integers(0, 256, (3, 4, 2)).astype(np.uint8)
    out = idx.parse_idx(idx_bytes(a))
    assert out.shape == (3, 4, 2) and out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, a)


def test_parse_idx_big_endian_by_hand():
    # magic 00 00 0B 01 (int16, 1-D), size 2, values 258 and -2 written MSB first
    raw = bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE])
    np.testing.assert_array_equal(idx.parse_idx(raw), [258, -2])


def test_read_idx_gzip_and_plain(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(idx.read_idx(write_idx(tmp_path / "a.gz", a)), a)
    np.testing.assert_array_equal(idx.read_idx(write_idx(tmp_path / "a", a, compress=False)), a)


@pytest.mark.parametrize("raw, match", [
    (bytes([1, 0, 8, 1, 0, 0, 0, 1, 5]), "two zero bytes"),
    (bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 5]), "unknown IDX type code 0x0A"),
    (bytes([0, 0, 8, 0]), "0 dimensions"),
    (bytes([0, 0, 8, 3, 0, 0, 0, 1]), "truncated IDX header"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 3, 5, 6]), "truncated IDX data"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 1, 5, 6]), "trailing bytes"),
    (b"", "not an IDX file"),
])
def test_parse_idx_bad_input(raw, match):
    with pytest.raises(ValueError, match=match):
        idx.parse_idx(raw)


def test_read_idx_truncated_gzip(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((4, 28, 28), np.uint8)))[:30])
    with pytest.raises(ValueError, match="gzip"):
        idx.read_idx(path)


def test_parse_mnist_family_scaling_and_checks():
    arrays = tiny_family()
    x_tr, y_tr, x_te, y_te = idx.parse_mnist_family(*arrays)
    assert x_tr.shape == (5, 28, 28) and x_tr.dtype == np.float32 and y_tr.dtype == np.int32
    assert x_te.shape == (3, 28, 28) and y_te.shape == (3,)
    np.testing.assert_allclose(x_tr[2, 5], [v / 255.0 for v in arrays[0][2, 5]], rtol=1e-6)
    np.testing.assert_array_equal(y_te, arrays[3])
    bad_labels = list(arrays)
    bad_labels[1] = np.full(5, 12, np.uint8)
    with pytest.raises(ValueError, match="0..9"):
        idx.parse_mnist_family(*bad_labels)
    with pytest.raises(ValueError, match=r"\(n, 28, 28\)"):
        idx.parse_mnist_family(arrays[0][:, :27], *arrays[1:])
    with pytest.raises(ValueError, match="labels must be uint8 of shape"):
        idx.parse_mnist_family(arrays[0], arrays[1][:4], *arrays[2:])


def _fake_files(folder, arrays):
    folder.mkdir(parents=True, exist_ok=True)
    return [write_idx(folder / name, a) for name, a in zip(idx.FILES, arrays)]


def test_load_from_raw_files_then_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXPAPERS_CACHE", str(tmp_path))
    arrays = tiny_family(2)
    _fake_files(tmp_path / "kmnist", arrays)
    first = idx.load_mnist_family("kmnist", allow_download=False)
    assert (tmp_path / "kmnist.npz").exists() and not (tmp_path / "kmnist.tmp.npz").exists()
    for f in (tmp_path / "kmnist").iterdir():  # the second call needs only the .npz
        f.unlink()
    second = data.load("kmnist")
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    np.testing.assert_allclose(second[2], arrays[2] / 255.0, rtol=1e-6)


def test_missing_file_without_download(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXPAPERS_CACHE", str(tmp_path))
    with pytest.raises(OSError, match="allow_download"):
        idx.load_mnist_family("mnist", allow_download=False)


def test_unknown_name_and_corrupt_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXPAPERS_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="emnist"):
        idx.load_mnist_family("emnist")
    np.savez(tmp_path / "mnist.npz", images=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="delete the file"):
        idx.load_mnist_family("mnist")


def test_download_from_local_mirror(tmp_path, monkeypatch):
    """The download path with file:// mirrors: a dead mirror, a wrong file, then the right one."""
    monkeypatch.setenv("JAXPAPERS_CACHE", str(tmp_path / "cache"))
    arrays = tiny_family(3)
    good = _fake_files(tmp_path / "good", arrays)
    _fake_files(tmp_path / "bad", tiny_family(4))
    checksums = tuple(hashlib.md5(p.read_bytes()).hexdigest() for p in good)
    mirrors = ((tmp_path / "missing").as_uri() + "/", (tmp_path / "bad").as_uri() + "/",
               (tmp_path / "good").as_uri() + "/")
    monkeypatch.setitem(idx.SOURCES, "mnist", (mirrors, checksums))
    x_tr, y_tr, x_te, y_te = idx.load_mnist_family("mnist")
    np.testing.assert_array_equal(y_tr, arrays[1])
    raw = tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in raw.iterdir()) == sorted(idx.FILES)  # no .part left behind
    assert idx.md5(raw / idx.FILES[0]) == checksums[0]


def test_download_all_mirrors_fail(tmp_path):
    with pytest.raises(OSError, match="could not download"):
        idx.download([(tmp_path / "nowhere").as_uri()], tmp_path / "out.gz", "0" * 32)
    assert not (tmp_path / "out.gz").exists() and not (tmp_path / "out.gz.part").exists()


def test_loaders_registered():
    for name in ("mnist", "fashion_mnist", "kmnist"):
        assert data.LOADERS[name].startswith("jaxpapers.data.idx:")
        assert name in idx.SOURCES and len(idx.SOURCES[name][1]) == 4
