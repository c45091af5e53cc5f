"""Content-addressed, immutable blob storage: packages and attachments, keyed by SHA-256."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
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

    def put_file(self, path: Path) -> str:
        """Store the file's bytes (the file is left in place) and return their SHA-256."""
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
    """Blobs as files under `root/ab/cd/<digest>`, written to a temp file, fsynced, then linked."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._incoming = root / ".incoming"

    def path_for(self, digest: str) -> Path:
        if not is_digest(digest):
            raise BlobNotFound(f"{digest!r} is not a SHA-256 digest")
        return self.root / digest[:2] / digest[2:4] / digest

    def put_file(self, path: Path) -> str:
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
                os.fsync(out.fileno())
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
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # A hard link fails if the target exists, so a concurrent writer never overwrites.
            os.link(temp, target)
        except FileExistsError:
            return
        except OSError:
            # Filesystems without hard links: same bytes under the same name, so a race is harmless.
            os.replace(temp, target)
        _fsync_directory(target.parent)

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
