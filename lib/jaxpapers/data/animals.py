"""Animal-Shape-MNIST: 10,000 28×28 animal silhouettes, read straight from a PyPI wheel.

The ``animal-shape-mnist`` 0.39 wheel ships two gzip-compressed pickles of NumPy
arrays in its folder ``data/Animal Shape/``. Its own loader module imports
TensorFlow, so we never import it: :func:`load_animals` opens the data files via
:mod:`importlib.resources`, checks their SHA-256 against the hashes of the pinned
wheel, and unpickles them with a restricted unpickler that only rebuilds NumPy
arrays (nothing else in a pickle can run). The result is cached as ``.npz``.

Classes (from the package description): bear, bird, cat, cow, dog, elephant,
giraffe, horse, sheep, zebra; 1,000 images each.
"""

from __future__ import annotations

import gzip
import importlib.resources
import pickle
from pathlib import Path

import numpy as np

from jaxpapers.data.fetch import digest
from jaxpapers.data.images import load_cached

PACKAGE = "animal_shape_mnist"
VERSION = "0.39"
DATA_FOLDER = ("data", "Animal Shape")
IMAGES_FILE = "animal_data_version_3.gz"
LABELS_FILE = "animal_label_version_3.gz"
#: SHA-256 of the data files in the animal-shape-mnist 0.39 wheel (from its RECORD).
SHA256 = {
    IMAGES_FILE: "68a30346781a0984f839463a4615d2decb899d1ce65091bb92586311754a34ce",
    LABELS_FILE: "dec8dba7c469830989fbab46825021a08a38470753a512f27ada847eced97b57",
}
CLASS_NAMES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")

# The only globals a NumPy-array pickle needs (numpy 1.x and 2.x spellings).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise ValueError(f"refusing to unpickle {module}.{name}: only NumPy arrays are allowed")
        if module.startswith("numpy.core"):
            module = "numpy._core" + module[len("numpy.core"):] if hasattr(np, "_core") else module
        return super().find_class(module, name)


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    return digest(path, "sha256")


def read_array_pickle(path: str | Path, expected_sha256: str | None = None) -> np.ndarray:
    """Read one gzip-compressed pickle holding a single NumPy array.

    Raises:
        ValueError: the file's SHA-256 differs from ``expected_sha256``, the pickle
            refers to anything but NumPy array machinery, or it holds no array.
    """
    if expected_sha256 is not None and sha256(path) != expected_sha256:
        raise ValueError(f"{path}: SHA-256 mismatch (expected the file of {PACKAGE}=={VERSION})")
    with gzip.open(path, "rb") as f:
        obj = _ArrayUnpickler(f).load()
    if not isinstance(obj, np.ndarray):
        raise ValueError(f"{path}: expected a pickled NumPy array, got {type(obj).__name__}")
    return obj


def parse_animals(images_path: str | Path, labels_path: str | Path, *, check_hash: bool = True):
    """Parse the two data files into ``(images (n, 28, 28) float32 in [0, 1], labels (n,) int32)``.

    Raises:
        ValueError: wrong hashes (when ``check_hash``), wrong shapes, pixel values
            outside 0–255, labels outside 0–9, or different numbers of images and labels.
    """
    images = read_array_pickle(images_path, SHA256[IMAGES_FILE] if check_hash else None)
    labels = read_array_pickle(labels_path, SHA256[LABELS_FILE] if check_hash else None)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"images must have shape (n, 28, 28), got {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {labels.shape}")
    if images.min() < 0 or images.max() > 255:
        raise ValueError("pixel values must lie in [0, 255]")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError("labels must lie in 0..9")
    return (images.astype(np.float32) / 255.0), labels.astype(np.int32)


def data_files() -> tuple[Path, Path]:
    """Paths of the images and labels files inside the installed wheel (not imported)."""
    folder = importlib.resources.files(PACKAGE) / DATA_FOLDER[0] / DATA_FOLDER[1]
    return Path(str(folder / IMAGES_FILE)), Path(str(folder / LABELS_FILE))


def load_animals():
    """Animal-Shape-MNIST, cached as ``.npz``.

    Returns ``(images (10000, 28, 28) float32 in [0, 1], labels (10000,) int32)``;
    see :data:`CLASS_NAMES`.
    """
    return load_cached(f"animals-{VERSION}", lambda: parse_animals(*data_files()))
