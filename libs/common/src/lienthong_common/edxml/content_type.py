"""An attachment's real type, read from its first bytes.

Senders label attachments carelessly (a zipped PDF sent as ``application/pdf``, a PDF as
``application/zip``); what the bytes are decides how the platform treats them (unpack, verify).
"""

from __future__ import annotations

PDF = "application/pdf"
ZIP = "application/zip"
PDF_LABELS = frozenset({PDF, "application/x-pdf"})
ZIP_LABELS = frozenset({ZIP, "application/x-zip-compressed", "application/x-zip"})
SNIFF_BYTES = 8  # enough for every signature below

_SIGNATURES = (
    (b"%PDF-", PDF),
    (b"PK\x03\x04", ZIP),  # a local file header: an archive with entries
    (b"PK\x05\x06", ZIP),  # end of central directory first: an empty archive
)


def sniff_content_type(head: bytes) -> str | None:
    """``application/pdf`` or ``application/zip`` when ``head`` starts like one; else None."""
    for magic, content_type in _SIGNATURES:
        if head.startswith(magic):
            return content_type
    return None


# Labels the bytes may overrule: PDF and zip (each mistaken for the other), and the generic
# ones that say nothing of the structure (PVN's gateway labels its zips text/plain). Formats
# that are zips by design (DOCX, ODT, …) keep their label.
CORRECTABLE_LABELS = PDF_LABELS | ZIP_LABELS | frozenset({"", "text/plain", "application/octet-stream"})


def real_content_type(label: str, head: bytes) -> str:
    """The type to act on: what the bytes are (PDF or zip) when the label is correctable and
    names something else; otherwise the label as given."""
    normalized = label.strip().lower()
    if normalized not in CORRECTABLE_LABELS:
        return label
    sniffed = sniff_content_type(head)
    if sniffed is None:
        return label
    if (sniffed == PDF and normalized in PDF_LABELS) or (sniffed == ZIP and normalized in ZIP_LABELS):
        return label
    return sniffed
