"""Writing files named by someone else (a sender's attachment names) into a folder, safely.

`lienthong fetch` saves each attachment under the name the sender chose. The rules this module
protects, whatever that name is:

- the name becomes one plain file name in the output folder: Unicode NFC, no path separators
  (`/`, `\\`), no `..` or `.` components, no leading dots (no `.bashrc`, no hidden files), no
  control or invisible format characters, no trailing dots or spaces, at most 200 bytes (UTF-8),
  no Windows device name; what is left empty becomes `attachment-<n><ext>`;
- a file is created with O_CREAT | O_EXCL | O_NOFOLLOW: an existing file, or a symlink planted in
  the folder, is never written through or over;
- a name already taken gets `-1`, `-2`, … before its extension (`cv.pdf`, `cv-1.pdf`).
"""

from __future__ import annotations

import errno
import mimetypes
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from lienthong_common import edxml

CHUNK_BYTES = 1024 * 1024
MAX_NAME_BYTES = 200  # under every common file system's 255, leaving room for "-NN"
MAX_SUFFIX = 10_000
_WINDOWS_DEVICES = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?", re.IGNORECASE)
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}")


def safe_file_name(name: str, *, index: int = 1, content_type: str = "") -> str:
    """One safe file name for an attachment called `name` (the `index`-th of its package)."""
    text = unicodedata.normalize("NFC", name or "")
    # Keep only the last component of whatever path the sender wrote, in either convention.
    text = re.split(r"[/\\]", text)[-1]
    text = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn") or ch.isspace()
    )
    text = re.sub(r"\s+", " ", text).strip()
    text = text.lstrip(". ").rstrip(". ")
    if text in ("", ".", "..") or _WINDOWS_DEVICES.fullmatch(text):
        return fallback_name(name, index=index, content_type=content_type)
    return _shortened(text)


def fallback_name(original: str, *, index: int, content_type: str = "") -> str:
    """`attachment-<index><ext>`: the original's extension if it had a plain one (`.pdf`),
    else one guessed from the content type, else none."""
    tail = re.split(r"[/\\]", original or "")[-1]
    extension = Path(tail).suffix
    if not _EXTENSION.fullmatch(extension):
        guessed = mimetypes.guess_extension(content_type.split(";")[0].strip()) if content_type else None
        extension = guessed or ""
    return f"attachment-{index}{extension.lower()}"


def _shortened(name: str) -> str:
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    stem, extension = _split(name)
    if len(extension.encode("utf-8")) > 16:
        stem, extension = name, ""
    budget = MAX_NAME_BYTES - len(extension.encode("utf-8"))
    cut = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore").rstrip(". ")
    return (cut or "attachment") + extension


def _split(name: str) -> tuple[str, str]:
    """("report", ".pdf") for "report.pdf"; (name, "") when there is no extension."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, "." + extension


def candidates(name: str) -> Iterator[str]:
    """`name`, then `stem-1.ext`, `stem-2.ext`, … up to MAX_SUFFIX."""
    stem, extension = _split(name)
    yield name
    for n in range(1, MAX_SUFFIX):
        yield f"{stem}-{n}{extension}"


def write_new_file(folder: Path, name: str, data: bytes | Iterable[bytes]) -> Path:
    """Write `data` (bytes, or pieces of it as they come) to a new file in `folder` named `name`
    (already safe), or `name-1`, `name-2`, … when taken; never through a symlink, never over an
    existing file."""
    path, out = open_new_file(folder, name)
    with out:
        for piece in (data,) if isinstance(data, bytes) else data:
            out.write(piece)
    return path


def open_new_file(folder: Path, name: str) -> tuple[Path, BinaryIO]:
    """A new file in `folder` named `name` (already safe), or `name-1`, … when taken, open for
    writing: created with O_CREAT|O_EXCL|O_NOFOLLOW, so never a symlink or an existing file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    relative = os.open in os.supports_dir_fd
    directory = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if relative else None
    try:
        for candidate in candidates(name):
            try:
                if directory is not None:
                    fd = os.open(candidate, flags, 0o644, dir_fd=directory)
                else:
                    fd = os.open(folder / candidate, flags, 0o644)
            except FileExistsError:
                continue  # a file, a directory or a symlink (dangling or not) already has the name
            except OSError as error:
                if error.errno == errno.ELOOP:  # a symlink, on systems that say so instead
                    continue
                raise
            return folder / candidate, os.fdopen(fd, "wb")
    finally:
        if directory is not None:
            os.close(directory)
    raise FileExistsError(f"{folder / name} and its first {MAX_SUFFIX} numbered variants all exist")


def save_attachment(
    folder: Path, name: str, data: bytes | Iterable[bytes], *, index: int, content_type: str = ""
) -> Path:
    """Save one attachment under a safe, unused name in `folder`; the path written."""
    return write_new_file(folder, safe_file_name(name, index=index, content_type=content_type), data)


def save_document(folder: Path, document_id: str, content: bytes) -> tuple[edxml.EdxmlPackage, list[Path]]:
    """`lienthong fetch`: the package as `<id>.edxml`, then each attachment, all under safe,
    unused names in `folder` (made if missing); the parsed package and the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [write_new_file(folder, safe_file_name(f"{document_id}.edxml", index=0), content)]
    package = edxml.parse_package(content)
    for index, attachment in enumerate(package.attachments, start=1):
        written.append(
            save_attachment(
                folder, attachment.name, attachment.data, index=index, content_type=attachment.content_type
            )
        )
    return package, written


def save_attachments(folder: Path, package: Path) -> tuple[edxml.EdxmlPackage, list[Path]]:
    """`lienthong fetch` of a large document: the package already saved in `package`, each of
    its attachments saved as `save_document` saves them, decoded from the package file as it
    is read (never whole in memory); the package read and the paths written."""
    written: list[Path] = []
    with tempfile.TemporaryDirectory(dir=folder, prefix=".lienthong-fetch-") as scratch:
        with edxml.read_package_file(package, attachment_dir=Path(scratch), spans=True) as read:
            for index, (attachment, stored) in enumerate(
                zip(read.package.attachments, read.attachments, strict=True), start=1
            ):
                written.append(
                    save_attachment(
                        folder,
                        attachment.name,
                        _stored_bytes(package, stored),
                        index=index,
                        content_type=attachment.content_type,
                    )
                )
    return read.package, written


def _stored_bytes(package: Path, stored: edxml.AttachmentFile) -> Iterator[bytes]:
    """An attachment's bytes: decoded from its span of the package, or from its decoded file."""
    if stored.span is None:
        assert stored.path is not None
        with stored.path.open("rb") as source:
            while data := source.read(CHUNK_BYTES):
                yield data
        return
    start, end = stored.span

    def body() -> Iterator[bytes]:
        with package.open("rb") as source:
            source.seek(start)
            left = end - start
            while left > 0 and (data := source.read(min(CHUNK_BYTES, left))):
                left -= len(data)
                yield data

    yield from edxml.decode_base64_span(body())
