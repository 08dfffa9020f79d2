"""Stand-ins for the full-mode datasets, written in the real file formats.

The dry run of full mode (``BOOK_SCALE=full BOOK_DRY_RUN=1``) and the full-mode probe must
run where nothing can be downloaded. :func:`write_standins` writes, into a cache directory,
files that the real loaders read with their real parsing code:

========================  ===========================================================
``cifar10``, ``cifar100``  ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``: the
                           official members (``data_batch_1`` ... ``test_batch``;
                           ``train``, ``test``), pickled dicts of a ``(N, 3072)`` uint8
                           ``b"data"`` array and ``b"labels"`` / ``b"fine_labels"``
``mnist``, ...             ``<name>/train-images-idx3-ubyte.gz`` and the three other
                           gzip'd IDX files of the MNIST family
``omniglot``               ``images_background.zip`` and ``images_evaluation.zip`` of
                           ``<set>/<alphabet>/<character>/<drawing>.png``
========================  ===========================================================

Images are class templates plus noise (so a model can fit them), drawn from one seed.
``size="tiny"`` writes a handful of examples per split (seconds; the CPU dry run);
``size="full"`` the real sizes (50,000 CIFAR images, 60,000 MNIST digits, 1,623 Omniglot
characters), so that a probe's steps per epoch are those of the real dataset.

Point ``JAXPAPERS_CACHE`` at the directory and the loaders never reach the network.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from jaxpapers.data.cifar import LABEL_KEY, MEMBERS, NUM_CLASSES, URLS as CIFAR_URLS
from jaxpapers.data.glyphs import OMNIGLOT_URLS
from jaxpapers.data.idx import FILES as IDX_FILES, SOURCES as IDX_SOURCES

NAMES = ("cifar10", "cifar100", *IDX_SOURCES, "omniglot")
SIZES = {
    # name: (tiny, full) examples -- CIFAR: per training batch and test; MNIST: train, test;
    # Omniglot: (background classes, evaluation classes), 20 drawings each.
    "cifar10": ((64, 32), (10_000, 10_000)),  # tiny: more than one batch of 128 images
    "cifar100": ((200, 100), (50_000, 10_000)),
    "mnist": ((64, 32), (60_000, 10_000)),
    "omniglot": ((30, 20), (964, 659)),  # tiny: enough classes for 20-way episodes on either side
}


def _size(name: str, size: str):
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', got {size!r}")
    key = "mnist" if name in IDX_SOURCES else name
    return SIZES[key][0 if size == "tiny" else 1]


def templated_images(rng: np.random.Generator, labels: np.ndarray, shape: tuple, n_classes: int) -> np.ndarray:
    """uint8 images: a random template per class plus pixel noise, ``(len(labels), *shape)``."""
    templates = rng.integers(0, 256, size=(n_classes, *shape)).astype(np.float32)
    noise = rng.normal(0.0, 40.0, size=(len(labels), *shape)).astype(np.float32)
    return np.clip(templates[labels] + noise, 0, 255).astype(np.uint8)


def _pickle_member(tar: tarfile.TarFile, name: str, payload: dict) -> None:
    raw = pickle.dumps(payload, protocol=4)
    info = tarfile.TarInfo(name)
    info.size = len(raw)
    tar.addfile(info, io.BytesIO(raw))


def write_cifar(directory: Path, name: str, size: str, rng: np.random.Generator) -> Path:
    """The official python tarball of ``name`` (``"cifar10"`` or ``"cifar100"``) with stand-in images."""
    per_batch, n_test = _size(name, size)
    k = NUM_CLASSES[name]
    train_names, test_names = MEMBERS[name]
    folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    path = directory / CIFAR_URLS[name].rsplit("/", 1)[1]
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for member, n in [(m, per_batch) for m in train_names] + [(m, n_test) for m in test_names]:
            labels = np.arange(n) % k
            rng.shuffle(labels)
            rows = templated_images(rng, labels, (3072,), k)
            payload = {b"data": rows, LABEL_KEY[name]: labels.tolist(), b"batch_label": member.encode()}
            if name == "cifar100":
                payload[b"coarse_labels"] = (labels // 5).tolist()
            _pickle_member(tar, f"{folder}/{member}", payload)
    return path


def idx_bytes(array: np.ndarray) -> bytes:
    """An uint8 array in the IDX format (magic ``0, 0, 0x08, ndim``, big-endian sizes, data)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.tobytes()


def write_idx_family(directory: Path, name: str, size: str, rng: np.random.Generator) -> list[Path]:
    """The four gzip'd IDX files of an MNIST-family dataset under ``directory / name``."""
    n_train, n_test = _size(name, size)
    out = []
    folder = directory / name
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        arrays[split] = (templated_images(rng, labels, (28, 28), 10), labels)
    for fname in IDX_FILES:
        split = "train" if fname.startswith("train") else "t10k"
        images, labels = arrays[split]
        data = images if "images" in fname else labels
        path = folder / fname
        path.write_bytes(gzip.compress(idx_bytes(data), compresslevel=1))
        out.append(path)
    return out


def write_omniglot(directory: Path, size: str, rng: np.random.Generator, *, side: int = 105) -> list[Path]:
    """``images_background.zip`` and ``images_evaluation.zip``: white PNGs with dark strokes."""
    from PIL import Image

    counts = _size("omniglot", size)
    side = side if size == "full" else 28
    out = []
    for url, n_classes in zip(OMNIGLOT_URLS, counts):
        fname = url.rsplit("/", 1)[1]
        top = fname[: -len(".zip")]
        path = directory / fname
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
            for c in range(n_classes):
                template = rng.random((side, side)) < 0.08
                for d in range(20):
                    ink = template ^ (rng.random((side, side)) < 0.01)
                    img = Image.fromarray(np.where(ink, 0, 255).astype(np.uint8), mode="L")
                    buf = io.BytesIO()
                    img.save(buf, format="PNG")
                    zf.writestr(f"{top}/Alphabet_{c // 20:02d}/character{c:04d}/{c:04d}_{d + 1:02d}.png",
                                buf.getvalue())
        out.append(path)
    return out


def write_standins(directory, names=NAMES, *, size: str = "tiny", seed: int = 0) -> dict[str, list[Path]]:
    """Write stand-ins of ``names`` into ``directory`` (created); return the files per name.

    Raises:
        ValueError: an unknown name or size.
    """
    names = tuple(names)
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; stand-ins exist for {', '.join(NAMES)}")
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', got {size!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out: dict[str, list[Path]] = {}
    for name in names:
        if name in ("cifar10", "cifar100"):
            out[name] = [write_cifar(directory, name, size, rng)]
        elif name in IDX_SOURCES:
            out[name] = write_idx_family(directory, name, size, rng)
        else:
            out[name] = write_omniglot(directory, size, rng)
    return out
