"""Content-addressed, immutable blob storage: packages and attachments, keyed by SHA-256."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

COPY_BUFFER_BYTES = 1024 * 1024
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def is_digest(value: str) -> bool:
    """Whether `value` is a lowercase hex SHA-256 digest."""
    return bool(_DIGEST.match(value))


class BlobNotFound(LookupError):
    """No blob is stored under the digest."""


class BlobStore(Protocol):
    """Where blob bytes live; a blob is written once and never changed."""

    def put_file(self, path: Path, *, sha256: str | None = None) -> str:
        """Store the file's bytes (the file is left in place) and return their SHA-256.

        A caller that hashed the file while writing it passes `sha256`; the store trusts it and
        may take the file over (a hard link) instead of copying and hashing it again. The caller
        must not change the file afterwards.
        """
        ...

    def put_files(self, files: Sequence[tuple[Path, str]]) -> list[str]:
        """Store several files the caller hashed (path, sha256) as :meth:`put_file` does each,
        durably before returning; a store may overlap their writes and syncs."""
        ...

    def open(self, digest: str) -> BinaryIO:
        """A binary stream over the blob; raises BlobNotFound."""
        ...

    def exists(self, digest: str) -> bool:
        """Whether a blob is stored under the digest."""
        ...

    def size(self, digest: str) -> int:
        """The blob's size in bytes; raises BlobNotFound."""
        ...


class FilesystemBlobStore:
    """Blobs as files under `root/ab/cd/<digest>`, written to a temp file, fsynced, then linked.

    Unless `cache_new_blobs`, a new blob's pages leave the page cache once it is on disk
    (POSIX_FADV_DONTNEED). The freed pages then serve the next upload's writes, where
    otherwise every upload writes into memory the kernel has not touched for a while: on a VM
    whose host reclaims free guest memory (virtio-balloon free page reporting), that first
    touch cost ~2 ms of CPU per megabyte here, more than parsing the package. The price is
    that the first read of a new blob comes from disk.
    """

    def __init__(self, root: Path, *, cache_new_blobs: bool = False) -> None:
        self.root = root
        self._drop_pages = not cache_new_blobs
        self._incoming = root / ".incoming"
        # Every fsync runs in the uploading thread. A pool syncing one upload's files and
        # folders in parallel cost more than it saved: each hand-off to a pool thread and back
        # is a wake-up and a GIL hand-over, and under load (bench/README.md, stop 17) the
        # uploads stored per second rose about 9% without it. Concurrent uploads still share
        # the filesystem's journal commits (fsyncs from several threads join one commit).
        self._directories = _GroupSync()
        self._fanned_out = False
        self._fan_out_lock = threading.Lock()

    def path_for(self, digest: str) -> Path:
        if not is_digest(digest):
            raise BlobNotFound(f"{digest!r} is not a SHA-256 digest")
        return self.root / digest[:2] / digest[2:4] / digest

    def put_file(self, path: Path, *, sha256: str | None = None) -> str:
        if sha256 is not None and is_digest(sha256):
            return self.put_files([(path, sha256)])[0]
        return self._copy(path)

    def put_files(self, files: Sequence[tuple[Path, str]]) -> list[str]:
        """Link the caller's hashed files into place: every new file fsynced, then linked, then
        one grouped sync of every folder that gained a name. Files whose digest is not
        well-formed, or that cannot be linked, are copied and hashed instead."""
        if not self._fanned_out:
            self._fan_out()
        digests = [sha256 for _, sha256 in files]
        pending: dict[Path, Path] = {}  # target -> the caller's file, each new digest once
        folders: set[Path] = set()
        copies: list[int] = []
        for i, (path, sha256) in enumerate(files):
            if not is_digest(sha256):
                copies.append(i)
                continue
            target = self.path_for(sha256)
            if target in pending:
                continue
            if target.exists():
                # Stored already, perhaps by a concurrent upload still syncing: its name must
                # be durable before this caller's row commits too (the sync joins the round).
                folders.update((target.parent, target.parent.parent))
            else:
                pending[target] = path
        # The bytes must be on disk before the name is: fsync the files, then link them.
        for path in pending.values():
            _fsync_file(path, drop_pages=self._drop_pages)
        unlinked: set[Path] = set()
        for target, path in pending.items():
            created = self._make_parents(target)
            folders.update(folder.parent for folder in created)
            try:
                os.link(path, target)
            except FileExistsError:  # a concurrent upload linked the same bytes first
                folders.update((target.parent, target.parent.parent))
                continue
            except OSError:  # no hard links here (another filesystem): copy instead
                unlinked.add(path)
                continue
            folders.add(target.parent)
        if folders:
            self._directories.sync(folders)
        copies.extend(i for i, (path, _) in enumerate(files) if path in unlinked)
        for i in copies:
            digests[i] = self._copy(files[i][0])
        return digests

    def _fan_out(self) -> None:
        """Create the 256 first-level folders once (one fsync of the root), so a new blob
        creates at most its second-level folder and never has the root synced again."""
        with self._fan_out_lock:
            if self._fanned_out:
                return
            self.root.mkdir(parents=True, exist_ok=True)
            missing = [self.root / f"{i:02x}" for i in range(256) if not (self.root / f"{i:02x}").is_dir()]
            for folder in missing:
                folder.mkdir(exist_ok=True)
            if missing:
                _fsync_directory(self.root)
                _fsync_directory(self.root.parent)
            self._fanned_out = True

    def _copy(self, path: Path) -> str:
        self._incoming.mkdir(parents=True, exist_ok=True)
        sha = hashlib.sha256()
        fd, temp_name = tempfile.mkstemp(dir=self._incoming, prefix="blob-")
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as out, path.open("rb") as source:
                while block := source.read(COPY_BUFFER_BYTES):
                    sha.update(block)
                    out.write(block)
                out.flush()
                _sync_descriptor(out.fileno(), drop_pages=self._drop_pages)
            digest = sha.hexdigest()
            self._publish(temp, self.path_for(digest))
            return digest
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def _publish(self, temp: Path, target: Path) -> None:
        """Make `temp` visible at `target` atomically, never replacing a blob already there."""
        if target.exists():
            return
        created = self._make_parents(target)
        try:
            # A hard link fails if the target exists, so a concurrent writer never overwrites.
            os.link(temp, target)
        except FileExistsError:
            return
        except OSError:
            # Filesystems without hard links: same bytes under the same name, so a race is harmless.
            os.replace(temp, target)
        self._sync_directories(target, created)

    def _make_parents(self, target: Path) -> list[Path]:
        """Create the fan-out folders of `target`; return those this call created. The
        second-level folder is tried first: its parent exists once the store has fanned out,
        so one mkdir serves (a failed mkdir raises, and raising costs more than the call)."""
        leaf = target.parent
        try:
            os.mkdir(leaf)
        except FileExistsError:
            return []
        except FileNotFoundError:
            pass
        else:
            return [leaf]
        created: list[Path] = []
        for folder in (leaf.parent, leaf):
            try:
                folder.mkdir(parents=True)
            except FileExistsError:
                continue
            created.append(folder)
        return created

    def _sync_directories(self, target: Path, created: list[Path]) -> None:
        """Make the new name durable: its folder, and the parent of every folder just created
        (a new folder's own entry lives in its parent). Each folder is synced once."""
        folders = {target.parent}
        folders.update(folder.parent for folder in created)
        self._directories.sync(folders)

    def open(self, digest: str) -> BinaryIO:
        try:
            return self.path_for(digest).open("rb")
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} is not in the store") from None

    def exists(self, digest: str) -> bool:
        return is_digest(digest) and self.path_for(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path_for(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} is not in the store") from None


class _GroupSync:
    """Group commit of directory fsyncs: a writer whose folders are not yet synced either leads
    the next round (syncing every folder queued so far, each once) or waits for the round that
    takes its folders. Concurrent uploads then share rounds instead of queueing one journal
    commit each, and no writer returns before its own folders are on disk."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: set[Path] = set()
        self._next_round = 1  # the round that will take folders queued now
        self._completed = 0
        self._running = False

    def sync(self, folders: Iterable[Path]) -> None:
        with self._cond:
            self._pending.update(folders)
            mine = self._next_round
            while self._completed < mine:
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                batch, self._pending = self._pending, set()
                current, self._next_round = self._next_round, self._next_round + 1
                self._cond.release()
                try:
                    for folder in batch:
                        _fsync_directory(folder)
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._completed = current
                    self._cond.notify_all()


def _fsync_file(path: Path, *, drop_pages: bool) -> None:
    """fsync the file; with `drop_pages`, its pages (clean now) then leave the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        _sync_descriptor(fd, drop_pages=drop_pages)
    finally:
        os.close(fd)


def _sync_descriptor(fd: int, *, drop_pages: bool) -> None:
    os.fsync(fd)
    if drop_pages and hasattr(os, "posix_fadvise"):  # elsewhere than Unix the pages just stay
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _fsync_directory(directory: Path) -> None:
    """Persist a new directory entry (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
