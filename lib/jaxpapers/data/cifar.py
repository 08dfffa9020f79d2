"""CIFAR-10 and CIFAR-100 from the official python tarballs (full mode only: a download).

:func:`load_cifar` downloads ``cifar-10-python.tar.gz`` (about 163 MiB) or
``cifar-100-python.tar.gz`` once from the authors' page into :func:`cache_dir`,
checks its MD5 against the published value, parses it with
:func:`parse_cifar_tar` and caches the arrays as ``<name>.npz`` (``uint8``
NHWC images and ``int32`` labels, about 180 MiB) next to it. A tarball placed
in the cache directory by hand (same file name) is used as it is, without the
network. Fast-mode chapters never call this.

The tarballs hold pickled dicts (Python 2 pickles, read with ``encoding="bytes"``):
CIFAR-10 has ``data_batch_1`` … ``data_batch_5`` and ``test_batch``, each with
``b"data"``, a ``(N, 3072)`` ``uint8`` array whose rows are the red, green and
blue 32×32 planes one after the other (row-major), and ``b"labels"``; CIFAR-100
has ``train`` and ``test`` with ``b"fine_labels"`` (100 classes; the 20
``b"coarse_labels"`` are not returned). The members are read straight from the
archive, never extracted, with an unpickler that only rebuilds NumPy arrays.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np

from jaxpapers.data import cache_dir, fetch, save_npz
from jaxpapers.data.animals import _ArrayUnpickler

URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}
#: MD5 of the official tarballs (published on the CIFAR page; the values torchvision checks).
MD5 = {"cifar10": "c58f30108f718f92721af3b95e74349a", "cifar100": "eb9058c3a382ffc7106e4002c42a8d85"}
#: Archive members (matched by base name) of the training and test splits.
MEMBERS = {
    "cifar10": ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]),
    "cifar100": (["train"], ["test"]),
}
LABEL_KEY = {"cifar10": b"labels", "cifar100": b"fine_labels"}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
CLASS_NAMES_10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _check_name(name: str) -> None:
    if name not in URLS:
        raise ValueError(f"unknown CIFAR dataset {name!r}; expected one of {', '.join(URLS)}")


def _read_batch(tar: tarfile.TarFile, member: tarfile.TarInfo, label_key: bytes):
    f = tar.extractfile(member)
    if f is None:
        raise ValueError(f"{member.name}: not a regular file")
    d = _ArrayUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    if not isinstance(d, dict) or b"data" not in d or label_key not in d:
        raise ValueError(f"{member.name}: expected a dict with b'data' and {label_key!r}")
    x = np.asarray(d[b"data"])
    y = np.asarray(d[label_key])
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise ValueError(f"{member.name}: b'data' must be a (N, 3072) uint8 array, got {x.dtype} {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"{member.name}: {len(y)} labels for {x.shape[0]} images")
    return x, y


def _to_nhwc(rows: np.ndarray) -> np.ndarray:
    """``(N, 3072)`` rows (R plane, G plane, B plane, each 32×32 row-major) -> ``(N, 32, 32, 3)``."""
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _parse_uint8(path, name):
    _check_name(name)
    train_names, test_names = MEMBERS[name]
    with tarfile.open(path, "r:*") as tar:
        by_base = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        missing = [n for n in train_names + test_names if n not in by_base]
        if missing:
            raise ValueError(f"{path}: no {', '.join(missing)} in the archive (is it the {name} python version?)")
        out = []
        for names in (train_names, test_names):
            parts = [_read_batch(tar, by_base[n], LABEL_KEY[name]) for n in names]
            x = _to_nhwc(np.concatenate([p[0] for p in parts]))
            y = np.concatenate([p[1] for p in parts]).astype(np.int32)
            if y.min() < 0 or y.max() >= NUM_CLASSES[name]:
                raise ValueError(f"{path}: labels must lie in [0, {NUM_CLASSES[name]}), got {y.min()}..{y.max()}")
            out += [np.ascontiguousarray(x), y]
    return tuple(out)


def _as_float(arrays):
    x_train, y_train, x_test, y_test = arrays
    f = lambda x: (x / np.float32(255.0)).astype(np.float32) if x.dtype == np.uint8 else x.astype(np.float32)
    return f(x_train), np.asarray(y_train, np.int32), f(x_test), np.asarray(y_test, np.int32)


def parse_cifar_tar(path: str | Path, name: str = "cifar10"):
    """Read an official CIFAR python tarball without extracting it.

    Args:
        path: ``cifar-10-python.tar.gz`` or ``cifar-100-python.tar.gz`` (any
            compression :mod:`tarfile` reads).
        name: ``"cifar10"`` or ``"cifar100"`` (fine labels).

    Returns:
        ``(x_train, y_train, x_test, y_test)``: images ``(n, 32, 32, 3)`` float32
        in ``[0, 1]`` (NHWC, channels red, green, blue) and labels ``(n,)`` int32,
        training batches in the archive's order (``data_batch_1`` first).

    Raises:
        ValueError: an unknown ``name``, a missing member, or a member that is
            not a CIFAR batch.
    """
    return _as_float(_parse_uint8(path, name))


def tarball_path(name: str = "cifar10") -> Path:
    """Where :func:`load_cifar` keeps (or finds) the tarball: ``cache_dir() / <official file name>``."""
    _check_name(name)
    return cache_dir() / URLS[name].rsplit("/", 1)[1]


def download(name: str = "cifar10") -> Path:
    """Download the official tarball into :func:`cache_dir` unless it is there; return its path.

    :func:`jaxpapers.data.fetch.download` writes to a temporary name and renames
    after the MD5 matches, so an interrupted download never leaves a truncated
    tarball under the real name.

    Raises:
        OSError: the download failed (``urllib.error.URLError`` is an ``OSError``)
            or the file's MD5 differs from the published one.
    """
    path = tarball_path(name)
    if path.exists():
        return path
    return fetch.download([URLS[name]], path, MD5[name])


def load_cifar(name: str = "cifar10"):
    """CIFAR-10 or CIFAR-100 (fine labels), downloaded once and cached as ``.npz``.

    Order of look-ups: ``cache_dir()/<name>.npz`` (keys ``x_train, y_train,
    x_test, y_test``; ``uint8`` images are scaled by 1/255, float images are
    taken as they are); else the tarball in ``cache_dir()`` (placed there by
    hand or by an earlier call); else a download from :data:`URLS`.

    Returns:
        ``(x_train (50000, 32, 32, 3), y_train (50000,), x_test (10000, 32, 32, 3),
        y_test (10000,))``: float32 images in ``[0, 1]`` (NHWC), int32 labels.

    Raises:
        ValueError: an unknown ``name``.
        OSError: no cached copy and the download failed (e.g. offline).
    """
    _check_name(name)
    npz = cache_dir() / f"{name}.npz"
    if npz.exists():
        with np.load(npz) as z:
            return _as_float(tuple(z[k] for k in ("x_train", "y_train", "x_test", "y_test")))
    arrays = _parse_uint8(download(name), name)
    save_npz(npz, **dict(zip(("x_train", "y_train", "x_test", "y_test"), arrays)))
    return _as_float(arrays)


def load_cifar100():
    """``load_cifar("cifar100")`` (for :func:`jaxpapers.data.load`, which passes no name)."""
    return load_cifar("cifar100")
