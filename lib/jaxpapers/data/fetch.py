"""Downloads for full-mode datasets: checksummed, atomic, tried mirror by mirror.

Fast mode never downloads. Full-mode loaders (:mod:`jaxpapers.data.cifar`,
:mod:`jaxpapers.data.idx`, the real Omniglot in :mod:`jaxpapers.data.glyphs`) fetch
their files once into :func:`jaxpapers.data.cache_dir` with :func:`download`.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path


def digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks (``algorithm``: any :mod:`hashlib` name).

    Raises:
        ValueError: an unknown ``algorithm``.
    """
    try:
        h = hashlib.new(algorithm)
    except (ValueError, TypeError) as err:
        raise ValueError(f"unknown hash algorithm {algorithm!r}") from err
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def md5(path: str | Path) -> str:
    """Hex MD5 of a file (an integrity check against published checksums, not security)."""
    return digest(path, "md5")


def download(urls, dest: str | Path, expected_md5: str | None, *, timeout: float = 60.0) -> Path:
    """Fetch the first URL of ``urls`` that works into ``dest`` and check its MD5.

    The file is written to ``dest`` + ``.part`` and renamed only once complete and
    verified, so an interrupted download never leaves a half file behind.
    ``expected_md5=None`` skips the check (for sources that publish no checksum).

    Raises:
        OSError: every URL failed (the message lists why) or gave the wrong MD5.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    errors = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    f.write(chunk)
        except OSError as err:  # URLError, HTTPError, timeouts are all OSErrors
            errors.append(f"{url}: {err}")
            continue
        if expected_md5 is not None and (got := md5(tmp)) != expected_md5:
            errors.append(f"{url}: MD5 {got} != expected {expected_md5}")
            tmp.unlink(missing_ok=True)
            continue
        os.replace(tmp, dest)
        return dest
    tmp.unlink(missing_ok=True)
    raise OSError(f"could not download {dest.name} from {len(errors)} mirror(s): " + "; ".join(errors))
