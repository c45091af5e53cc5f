"""The filesystem blob store: content-addressed layout, write once, streamed reads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lienthong_docstore.blobstore import BlobNotFound, FilesystemBlobStore


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_put_file_stores_under_the_digest_in_two_level_folders(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    data = b"edXML package bytes"
    digest = store.put_file(write(tmp_path / "in", data))

    assert digest == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "blobs" / digest[:2] / digest[2:4] / digest).read_bytes() == data
    assert store.exists(digest)
    assert store.size(digest) == len(data)
    with store.open(digest) as stream:
        assert stream.read() == data
    assert (tmp_path / "in").exists(), "the caller's file is left in place"
    assert list((tmp_path / "blobs" / ".incoming").iterdir()) == [], "no temp files left over"


def test_a_stored_blob_is_never_overwritten(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    digest = store.put_file(write(tmp_path / "a", b"same bytes"))
    target = store.path_for(digest)
    inode = target.stat().st_ino

    assert store.put_file(write(tmp_path / "b", b"same bytes")) == digest
    assert target.stat().st_ino == inode


def test_unknown_or_malformed_digests_are_not_found(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    unknown = hashlib.sha256(b"nothing").hexdigest()

    assert not store.exists(unknown)
    assert not store.exists("../../etc/passwd")
    with pytest.raises(BlobNotFound):
        store.open(unknown)
    with pytest.raises(BlobNotFound):
        store.size(unknown)
    with pytest.raises(BlobNotFound):
        store.open("../../etc/passwd")
