"""The PDFs an edXML package carries: an attachment itself, or those inside it when it is a zip.

What the bytes are decides over a PDF or zip (or generic) label and the name: a zip sent as
``vb.pdf``/``application/pdf`` is unpacked and its PDFs verified, not handed whole to the PDF
verifier. Zips are opened under a budget (what every zip of a package may expand to, counted as
it decompresses: declared sizes can lie) and a cap on entries; a zip that cannot be opened
safely is refused with the reason, and never half of its PDFs are returned.

Two forms, one set of decisions: attachments in memory (:func:`pdfs_in_attachment`, PDFs as
bytes) and attachments decoded to files (:func:`pdf_files_in_attachment`, a zip's PDFs
extracted to files), which is how sigverify reads packages of tens of megabytes.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, TypeVar

from lienthong_common.edxml.content_type import CORRECTABLE_LABELS, PDF, SNIFF_BYTES, ZIP, sniff_content_type

__all__ = [
    "MAX_UNZIPPED_BYTES",
    "MAX_ZIP_ENTRIES",
    "AttachmentLike",
    "AttachmentRefused",
    "CarriedPdf",
    "PdfFile",
    "UnzipBudget",
    "pdf_files_in_attachment",
    "pdfs_in_attachment",
]

T = TypeVar("T")

# Total bytes a package's zipped attachments may expand to; beyond it the zip is refused as
# a possible zip bomb (docstore caps a package at 50 MiB, real archives compress PDFs little).
MAX_UNZIPPED_BYTES = 256 * 1024 * 1024
MAX_ZIP_ENTRIES = 1000
_ZIP_TYPES = {"application/zip", "application/x-zip-compressed", "application/x-zip"}
_COPY_BYTES = 1024 * 1024


class AttachmentLike(Protocol):
    """What an edXML attachment offers (lienthong_common.edxml.Attachment)."""

    @property
    def name(self) -> str: ...
    @property
    def content_type(self) -> str: ...
    @property
    def data(self) -> bytes: ...


@dataclass(frozen=True)
class CarriedPdf:
    """A PDF found in a package: its name (``zip/inner.pdf`` when zipped) and bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class PdfFile:
    """A PDF found in a package, on disk: its name (``zip/inner.pdf`` when zipped) and file."""

    name: str
    path: Path


class AttachmentRefused(Exception):
    """A zipped attachment that cannot be opened safely; the message says why."""


class UnzipBudget:
    """Uncompressed bytes still allowed across all zipped attachments of one package."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.remaining = limit


def _is_pdf(name: str, content_type: str = "") -> bool:
    return content_type.strip().lower() == "application/pdf" or name.lower().endswith(".pdf")


def _is_zip(name: str, content_type: str) -> bool:
    return content_type.strip().lower() in _ZIP_TYPES or name.lower().endswith(".zip")


def _carries(name: str, content_type: str, head: bytes) -> str | None:
    """PDF when the attachment is a PDF, ZIP when it holds PDFs to unpack, else None."""
    sniffed = sniff_content_type(head[:SNIFF_BYTES])
    if sniffed is not None and content_type.strip().lower() in CORRECTABLE_LABELS:
        return sniffed
    if _is_pdf(name, content_type):
        return PDF
    if _is_zip(name, content_type):
        return ZIP
    return None


def pdfs_in_attachment(attachment: AttachmentLike, budget: UnzipBudget) -> list[CarriedPdf]:
    """The PDFs an edXML attachment carries, as bytes. Raises AttachmentRefused (the message says
    why) for a zip that cannot be opened safely."""
    kind = _carries(attachment.name, attachment.content_type, attachment.data[:SNIFF_BYTES])
    if kind == PDF:
        return [CarriedPdf(attachment.name, attachment.data)]
    if kind == ZIP:

        def read(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> bytes:
            out = io.BytesIO()
            _copy_capped(archive, entry, budget, out)
            return out.getvalue()

        return [
            CarriedPdf(name, data) for name, data in _unzip(attachment.name, attachment.data, budget, read)
        ]
    return []


def pdf_files_in_attachment(
    name: str, content_type: str, path: Path, budget: UnzipBudget, folder: Path
) -> list[PdfFile]:
    """The PDFs an attachment decoded to ``path`` carries, as files: itself, or a zip's PDFs
    extracted under ``folder``. The same decisions as :func:`pdfs_in_attachment`."""
    with path.open("rb") as source:
        head = source.read(SNIFF_BYTES)
    kind = _carries(name, content_type, head)
    if kind == PDF:
        return [PdfFile(name, path)]
    if kind == ZIP:

        def extract(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> Path:
            with tempfile.NamedTemporaryFile(
                dir=folder, prefix="unzipped-", suffix=".pdf", delete=False
            ) as out:
                _copy_capped(archive, entry, budget, out)
            return Path(out.name)

        return [PdfFile(inner, file) for inner, file in _unzip(name, path, budget, extract)]
    return []


def _unzip(
    name: str,
    source: bytes | Path,
    budget: UnzipBudget,
    extract: Callable[[zipfile.ZipFile, zipfile.ZipInfo], T],
) -> list[tuple[str, T]]:
    """Each PDF inside the zipped attachment ``name``, extracted with a cap on what they expand
    to; every one is extracted before any is returned, so a refusal never leaves half of them."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise AttachmentRefused(f"not a readable zip archive: {error}") from error
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_ZIP_ENTRIES:
            raise AttachmentRefused(
                f"the zip holds {len(entries)} entries; at most {MAX_ZIP_ENTRIES} allowed"
            )
        found = []
        for entry in entries:
            if entry.is_dir() or not _is_pdf(entry.filename):
                continue
            if entry.flag_bits & 0x1:
                raise AttachmentRefused(f"{entry.filename!r} in the zip is encrypted")
            # Declared sizes can lie, so count what decompression actually produces.
            if entry.file_size > budget.remaining:
                raise _bomb(budget)
            found.append((f"{name}/{entry.filename}", extract(archive, entry)))
    return found


def _copy_capped(
    archive: zipfile.ZipFile, entry: zipfile.ZipInfo, budget: UnzipBudget, out: IO[bytes]
) -> None:
    """Decompress ``entry`` into ``out`` within the budget."""
    size = 0
    try:
        with archive.open(entry) as stream:
            while chunk := stream.read(min(_COPY_BYTES, budget.remaining + 1)):
                size += len(chunk)
                if size > budget.remaining:
                    raise _bomb(budget)
                out.write(chunk)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError) as error:
        raise AttachmentRefused(f"cannot extract {entry.filename!r}: {error}") from error
    budget.remaining -= size


def _bomb(budget: UnzipBudget) -> AttachmentRefused:
    return AttachmentRefused(
        f"the zipped attachments expand beyond {budget.limit} bytes; refused as a possible zip bomb"
    )
