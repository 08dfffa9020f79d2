"""jaxpapers.data.fetch: file digests and the checksummed download (no network: file:// URLs)."""

import hashlib

import pytest

from jaxpapers.data import fetch


def test_digest_matches_hashlib_on_a_multi_chunk_file(tmp_path):
    path = tmp_path / "blob.bin"
    payload = bytes(range(256)) * 9000  # > 2 MiB: several 1 MiB chunks
    path.write_bytes(payload)
    assert fetch.digest(path, "sha256") == hashlib.sha256(payload).hexdigest()
    assert fetch.md5(path) == hashlib.md5(payload).hexdigest()
    with pytest.raises(ValueError, match="unknown hash algorithm"):
        fetch.digest(path, "not-a-hash")


def test_download_without_checksum_and_with_a_wrong_one(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    dest = fetch.download([src.as_uri()], tmp_path / "out" / "copy.bin", None)
    assert dest.read_bytes() == b"payload"
    with pytest.raises(OSError, match="MD5"):
        fetch.download([src.as_uri()], tmp_path / "bad.bin", "0" * 32)
    assert not (tmp_path / "bad.bin").exists() and not (tmp_path / "bad.bin.part").exists()
