"""Offline datasets: shipped inside PyPI wheels or generated, never downloaded in fast mode.

``load(name)`` dispatches by name; each loader also lives in its own module.
Arrays come back as float32 images scaled to [0, 1] and int32 labels.

Large files are parsed once and cached as ``.npz`` under :func:`cache_dir`
(``$JAXPAPERS_CACHE``, default ``~/.cache/jaxpapers``). The CIFAR loaders are the
exception for full mode: they download the official tarballs once into that directory.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

# name -> "module:function" (lazy, so importing jaxpapers.data stays cheap)
LOADERS = {
    "digits": "jaxpapers.data.images:load_digits",
    "mnist5k": "jaxpapers.data.images:load_mnist5k",
    "mnist1d": "jaxpapers.data.mnist1d:make_dataset",  # signals (n, 40), not images
    "animals": "jaxpapers.data.animals:load_animals",
    # full mode only: downloaded once (MD5-checked), (x_train, y_train, x_test, y_test)
    "mnist": "jaxpapers.data.idx:load_mnist",
    "fashion_mnist": "jaxpapers.data.idx:load_fashion_mnist",
    "kmnist": "jaxpapers.data.idx:load_kmnist",
    # full mode only: official python tarballs, downloaded once, cached as .npz (jaxpapers.data.cifar)
    "cifar10": "jaxpapers.data.cifar:load_cifar",
    "cifar100": "jaxpapers.data.cifar:load_cifar100",
}


def save_npz(path, *, compressed: bool = False, **arrays) -> None:
    """Write ``arrays`` to ``path`` (``.npz``) through a temporary file of its own, renamed into place.

    Several processes (notebooks run in parallel) may build the same cache file at once: each
    writes its own temporary file and the rename is atomic, so a reader never sees a partial file.
    """
    import tempfile

    import numpy as np

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp.npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            (np.savez_compressed if compressed else np.savez)(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cache_dir() -> Path:
    """Directory for cached ``.npz`` files (created on first use)."""
    path = Path(os.environ.get("JAXPAPERS_CACHE") or Path.home() / ".cache" / "jaxpapers")
    path.mkdir(parents=True, exist_ok=True)
    return path


def load(name: str, **kwargs):
    """Load the dataset called ``name`` (see :data:`LOADERS`).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(LOADERS))}")
    module, func = LOADERS[name].split(":")
    return getattr(importlib.import_module(module), func)(**kwargs)
