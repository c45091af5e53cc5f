"""Small, valid PDFs written by hand (no dependency) for demos, tests and the benchmark."""

from __future__ import annotations

import hashlib
import random
import unicodedata

__all__ = ["make_pdf"]

_LINES_PER_PAGE = 40
_PADDING_NAME = "padding.bin"


def make_pdf(
    title: str,
    body_lines: list[str] = [],  # noqa: B006 - the public signature asks for a list; never mutated
    *,
    pages: int = 1,
    pad_to_bytes: int | None = None,
) -> bytes:
    """A PDF 1.7 file with ``title`` and ``body_lines`` on at least ``pages`` A4 pages.

    Text is drawn in Helvetica, so Vietnamese diacritics are folded to ASCII on the page (the
    document title in the Info dictionary keeps them). ``pad_to_bytes`` grows the file to at
    least that size (exactly, when reachable) with an incompressible embedded attachment, which
    is how the benchmark makes realistic ~100 KB documents.
    """
    if pages < 1:
        raise ValueError("a PDF needs at least one page")
    pdf = _build(title, list(body_lines), pages, padding=0 if pad_to_bytes else None)
    if pad_to_bytes is None or len(pdf) >= pad_to_bytes:
        return pdf
    padding = pad_to_bytes - len(pdf)
    # The stream's /Length digits grow with the padding; converge in a couple of rounds.
    for _ in range(4):
        pdf = _build(title, list(body_lines), pages, padding=padding)
        if len(pdf) == pad_to_bytes:
            break
        padding = max(0, padding + pad_to_bytes - len(pdf))
    return pdf


def _build(title: str, body_lines: list[str], pages: int, *, padding: int | None) -> bytes:
    objects: list[bytes] = []  # object n is objects[n - 1]

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    def reserve() -> int:
        return add(b"")

    catalog = reserve()
    page_tree = reserve()
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    chunks = [body_lines[i : i + _LINES_PER_PAGE] for i in range(0, len(body_lines), _LINES_PER_PAGE)]
    pages = max(pages, len(chunks))  # body text flows onto extra pages rather than being cut
    page_ids: list[int] = []
    for number in range(1, pages + 1):
        lines = chunks[number - 1] if number - 1 < len(chunks) else []
        content = _page_content(title, lines, number, pages)
        stream = add(_stream(b"", content))
        page_ids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] "
                b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>" % (page_tree, font, stream)
            )
        )
    kids = b" ".join(b"%d 0 R" % page for page in page_ids)
    objects[page_tree - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))

    names = b""
    if padding is not None:
        blob = random.Random(title).randbytes(padding)  # deterministic, incompressible
        embedded = add(_stream(b"/Type /EmbeddedFile /Subtype /application#2Foctet-stream", blob))
        filespec = add(
            b"<< /Type /Filespec /F (%s) /UF (%s) /EF << /F %d 0 R >> >>"
            % (_PADDING_NAME.encode(), _PADDING_NAME.encode(), embedded)
        )
        names = b" /Names << /EmbeddedFiles << /Names [(%s) %d 0 R] >> >>" % (
            _PADDING_NAME.encode(),
            filespec,
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R%s >>" % (page_tree, names)
    info = add(b"<< /Title %s /Producer (lienthong pdfgen) >>" % _text_string(title))

    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    file_id = hashlib.md5(bytes(out), usedforsecurity=False).hexdigest().encode()
    out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        catalog,
        info,
        file_id,
        file_id,
        xref_at,
    )
    return bytes(out)


def _stream(extra: bytes, data: bytes) -> bytes:
    return b"<< %s/Length %d >>\nstream\n%s\nendstream" % (
        extra + b" " if extra else b"",
        len(data),
        data,
    )


def _page_content(title: str, lines: list[str], number: int, pages: int) -> bytes:
    ops = [b"BT", b"/F1 16 Tf", b"56 780 Td", b"%s Tj" % _literal(title), b"/F1 11 Tf"]
    for line in lines:
        ops += [b"0 -18 Td", b"%s Tj" % _literal(line)]
    ops.append(b"ET")
    if pages > 1:
        ops += [b"BT", b"/F1 9 Tf", b"290 30 Td", b"%s Tj" % _literal(f"{number}/{pages}"), b"ET"]
    return b"\n".join(ops)


def _literal(text: str) -> bytes:
    """A PDF literal string in WinAnsi, with Vietnamese diacritics folded to ASCII."""
    folded = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    ascii_text = "".join(ch for ch in folded if not unicodedata.combining(ch))
    raw = ascii_text.encode("cp1252", "replace")
    escaped = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    return b"(" + escaped.replace(b"\r", b"\\r").replace(b"\n", b"\\n") + b")"


def _text_string(text: str) -> bytes:
    """A PDF text string: UTF-16BE with BOM, hex-encoded, so any Unicode survives."""
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"
