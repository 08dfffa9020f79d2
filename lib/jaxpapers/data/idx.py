"""MNIST-family datasets in the IDX format: MNIST, Fashion-MNIST and Kuzushiji-MNIST.

**Full mode only**: these loaders download (about 20-30 MB per dataset), once, into
:func:`jaxpapers.data.cache_dir`; fast mode never calls them.

**The IDX format** (LeCun et al.'s MNIST files): a 4-byte magic number ``0, 0, t, n``
(``t`` codes the element type, ``n`` the number of dimensions), ``n`` big-endian
``uint32`` sizes, then the elements in C order, big-endian. The files are gzip'd.

**Which datasets.** ``"mnist"``, ``"fashion_mnist"`` and ``"kmnist"`` are each
published as four small IDX files (train/test images/labels). The paper also uses
E-MNIST letters, but NIST distributes E-MNIST *only* as one ~540 MB ``gzip.zip``
bundling every split (https://www.nist.gov/itl/products-and-services/emnist-dataset);
rather than download half a gigabyte for 25 MB of letters (or trust a third-party
re-upload) we offer Kuzushiji-MNIST (10 classes of cursive Japanese characters, a
different script from the Latin digits) as the "other handwriting" dataset.

Every downloaded file is checked against its published MD5 (the checksums that
torchvision also uses); the parsed arrays are cached as ``<cache_dir>/<name>.npz``
(``uint8``; written under a temporary name, then renamed).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from jaxpapers.data import cache_dir, save_npz
from jaxpapers.data.fetch import download, md5  # noqa: F401  (md5: re-exported for callers and tests)

#: IDX type code (third magic byte) -> big-endian NumPy dtype.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

#: name -> (mirrors tried in order, MD5 of each file in :data:`FILES` order).
SOURCES = {
    "mnist": (("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "https://storage.googleapis.com/cvdf-datasets/mnist/",
               "http://yann.lecun.com/exdb/mnist/"),
              ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
               "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")),
    "fashion_mnist": (("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                       "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
                      ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                       "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")),
    "kmnist": (("https://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
               ("bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
                "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134")),
}


def parse_idx(raw: bytes, *, source: str = "IDX data") -> np.ndarray:
    """Parse the (already decompressed) bytes of one IDX file into an array.

    Returns an array of the dtype coded in the magic number (native byte order)
    and the shape given by the header.

    Raises:
        ValueError: a bad magic number (non-zero first bytes, unknown type code,
            zero dimensions), a header or data section shorter than announced, or
            trailing bytes.
    """
    raw = bytes(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{source}: not an IDX file (magic number must start with two zero bytes, "
                         f"got {raw[:4].hex() or 'nothing'})")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        raise ValueError(f"{source}: unknown IDX type code 0x{code:02X}; known: "
                         f"{', '.join(f'0x{c:02X}' for c in IDX_DTYPES)}")
    if ndim == 0:
        raise ValueError(f"{source}: IDX magic number announces 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{source}: truncated IDX header ({len(raw)} bytes, expected {header})")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "trailing bytes in"
        raise ValueError(f"{source}: {what} IDX data: {len(raw)} bytes for shape {shape} of {dtype.name}, "
                         f"expected {expected}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file, gzip'd (detected from its first bytes) or not; see :func:`parse_idx`.

    Raises:
        ValueError: as :func:`parse_idx`, or a corrupt gzip stream.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: corrupt or truncated gzip stream ({err})") from None
    return parse_idx(raw, source=str(path))


def parse_mnist_family(train_images, train_labels, test_images, test_labels):
    """Check and convert the four raw IDX arrays of an MNIST-like dataset.

    Args: ``uint8`` arrays, images ``(n, 28, 28)``, labels ``(n,)`` in 0..9.

    Returns:
        ``(x_train (n, 28, 28) float32 in [0, 1], y_train (n,) int32, x_test, y_test)``.

    Raises:
        ValueError: wrong dtypes or shapes, mismatched counts, labels outside 0..9.
    """
    out = []
    for split, images, labels in (("train", train_images, train_labels), ("test", test_images, test_labels)):
        images, labels = np.asarray(images), np.asarray(labels)
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(f"{split} images must be uint8 of shape (n, 28, 28), got {images.dtype} {images.shape}")
        if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
            raise ValueError(f"{split} labels must be uint8 of shape ({images.shape[0]},), "
                             f"got {labels.dtype} {labels.shape}")
        if labels.size and labels.max() > 9:
            raise ValueError(f"{split} labels must lie in 0..9, got a maximum of {labels.max()}")
        out += [images.astype(np.float32) / 255.0, labels.astype(np.int32)]
    return tuple(out)


def load_mnist_family(name: str, *, allow_download: bool = True):
    """MNIST, Fashion-MNIST or Kuzushiji-MNIST (``name`` in :data:`SOURCES`).

    On the first call the four IDX files are downloaded into
    ``<cache_dir>/<name>/`` (MD5-checked) unless already there, parsed, and cached
    as ``<cache_dir>/<name>.npz``; later calls read only the ``.npz``.

    Returns:
        ``(x_train (60000, 28, 28) float32 in [0, 1], y_train (60000,) int32,
        x_test (10000, 28, 28), y_test (10000,))``.

    Raises:
        ValueError: an unknown ``name`` or a corrupt file / cache.
        OSError: a download failed, or a file is missing and ``allow_download`` is False.
    """
    if name not in SOURCES:
        raise ValueError(f"unknown MNIST-family dataset {name!r}; known: {', '.join(sorted(SOURCES))}")
    cache = cache_dir() / f"{name}.npz"
    keys = ("x_train", "y_train", "x_test", "y_test")
    if cache.exists():
        with np.load(cache) as z:
            if set(z.files) != set(keys):
                raise ValueError(f"{cache}: expected arrays {keys}, got {sorted(z.files)}; delete the file")
            return parse_mnist_family(*(z[k] for k in keys))
    mirrors, checksums = SOURCES[name]
    raw_dir = cache_dir() / name
    arrays = []
    for fname, checksum in zip(FILES, checksums):
        path = raw_dir / fname
        if not path.exists():
            if not allow_download:
                raise OSError(f"{path} is missing and allow_download is False")
            download([m + fname for m in mirrors], path, checksum)
        arrays.append(read_idx(path))
    out = parse_mnist_family(*arrays)  # validate before caching
    save_npz(cache, **dict(zip(keys, arrays)))
    return out


def load_mnist():
    """MNIST (LeCun, Cortes & Burges); see :func:`load_mnist_family`."""
    return load_mnist_family("mnist")


def load_fashion_mnist():
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017); see :func:`load_mnist_family`."""
    return load_mnist_family("fashion_mnist")


def load_kmnist():
    """Kuzushiji-MNIST (Clanuwat et al. 2018); see :func:`load_mnist_family`."""
    return load_mnist_family("kmnist")
