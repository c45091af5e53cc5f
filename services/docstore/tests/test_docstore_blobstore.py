"""The filesystem blob store: content-addressed layout, write once, streamed reads."""

from __future__ import annotations

import hashlib
import os
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


def test_a_file_hashed_by_the_caller_is_linked_into_place_not_copied(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    data = b"spooled package"
    spool = write(tmp_path / "spool", data)
    digest = hashlib.sha256(data).hexdigest()

    assert store.put_file(spool, sha256=digest) == digest

    assert store.path_for(digest).stat().st_ino == spool.stat().st_ino, "a hard link, no copy"
    spool.unlink()  # the caller removes its spool file; the blob stays
    with store.open(digest) as stream:
        assert stream.read() == data
    assert store.put_file(write(tmp_path / "again", data), sha256=digest) == digest


def test_grouped_directory_syncs_cover_every_writer_before_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    from lienthong_docstore import blobstore

    synced: list[tuple[float, Path]] = []

    def slow_fsync(directory: Path) -> None:
        synced.append((time.monotonic(), directory))
        time.sleep(0.2)

    monkeypatch.setattr(blobstore, "_fsync_directory", slow_fsync)
    group = blobstore._GroupSync()
    folders = [tmp_path / f"d{i}" for i in range(8)]
    queued: dict[int, float] = {}
    returned: dict[int, float] = {}
    start = threading.Barrier(len(folders))

    def writer(i: int) -> None:
        start.wait()
        queued[i] = time.monotonic()
        group.sync([folders[i]])
        returned[i] = time.monotonic()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(len(folders))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert sorted(d for _, d in synced) == folders, "every folder synced, each once"
    for i, folder in enumerate(folders):
        synced_at = next(at for at, d in synced if d == folder)
        assert queued[i] <= synced_at <= returned[i], "no writer returns before its folder is synced"


def test_put_files_fsyncs_every_new_file_before_linking_and_every_new_name_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lienthong_docstore import blobstore

    events: list[tuple[str, Path]] = []
    real_link = os.link
    monkeypatch.setattr(blobstore, "_fsync_file", lambda path, **_: events.append(("fsync-file", path)))
    monkeypatch.setattr(blobstore, "_fsync_directory", lambda path: events.append(("fsync-dir", path)))

    def link(source: Path, target: Path) -> None:
        events.append(("link", Path(target)))
        real_link(source, target)

    monkeypatch.setattr(blobstore.os, "link", link)
    store = FilesystemBlobStore(tmp_path / "blobs")
    stored = write(tmp_path / "old", b"stored before")
    old = store.put_file(stored, sha256=hashlib.sha256(b"stored before").hexdigest())
    events.clear()
    files = [write(tmp_path / f"f{i}", f"file {i}".encode()) for i in range(3)]
    digests = [hashlib.sha256(f"file {i}".encode()).hexdigest() for i in range(3)]
    again = write(tmp_path / "again", b"stored before")

    assert store.put_files([*zip(files, digests, strict=True), (again, old)]) == [*digests, old]

    for path, digest in zip(files, digests, strict=True):
        target = store.path_for(digest)
        assert target.stat().st_ino == path.stat().st_ino, "linked, not copied"
        synced_file = events.index(("fsync-file", path))
        linked = events.index(("link", target))
        synced_folder = events.index(("fsync-dir", target.parent))
        assert synced_file < linked < synced_folder
        assert ("fsync-dir", target.parent.parent) in events, "a new fan-out folder's entry too"
    assert ("fsync-file", again) not in events, "a stored digest is not written again"
    assert ("fsync-dir", store.path_for(old).parent) in events, "but its name is made durable"
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir() if p.name != ".incoming") == [
        f"{i:02x}" for i in range(256)
    ], "the first-level folders exist once the store has been written to"


def test_put_files_copies_what_it_cannot_trust(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    path = write(tmp_path / "x", b"bytes")

    assert store.put_files([(path, "not-a-digest")]) == [hashlib.sha256(b"bytes").hexdigest()]
    assert store.path_for(hashlib.sha256(b"bytes").hexdigest()).stat().st_ino != path.stat().st_ino


def _resident_pages(path: Path) -> int:
    """How many of the file's pages are in the page cache (mincore over a mapping)."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    c_int = ctypes.c_int
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, c_int, c_int, c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert address not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            vector = (ctypes.c_ubyte * pages)()
            assert libc.mincore(address, size, vector) == 0, os.strerror(ctypes.get_errno())
            return sum(v & 1 for v in vector)
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)


@pytest.mark.parametrize("cache_new_blobs", [False, True])
def test_a_new_blob_leaves_the_page_cache_once_on_disk_unless_kept(
    tmp_path: Path, cache_new_blobs: bool
) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs", cache_new_blobs=cache_new_blobs)
    data = os.urandom(1024 * 1024)
    spool = write(tmp_path / "spool", data)
    assert _resident_pages(spool) == 256, "just written: in the page cache"

    (digest,) = store.put_files([(spool, hashlib.sha256(data).hexdigest())])

    blob = store.path_for(digest)
    assert (_resident_pages(blob) == 256) is cache_new_blobs
    assert blob.read_bytes() == data, "dropped from the cache, not from the disk"

    copied = store.put_file(write(tmp_path / "other", data[::-1]))  # the copying path too
    assert (_resident_pages(store.path_for(copied)) > 0) is cache_new_blobs
