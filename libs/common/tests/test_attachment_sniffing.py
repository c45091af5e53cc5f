"""Attachments are typed by their bytes when the label is PDF, zip or generic and says otherwise."""

from __future__ import annotations

import datetime
import io
import zipfile
from pathlib import Path

import pytest

from lienthong_common.edxml import (
    Attachment,
    EdxmlError,
    EdxmlPackage,
    MessageHeader,
    Organization,
    ParsePolicy,
    build_package,
    parse_package,
    read_package_file,
)
from lienthong_common.edxml.content_type import real_content_type, sniff_content_type
from lienthong_common.pades import UnzipBudget, pdfs_in_attachment

PDF_BYTES = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _package(attachment: Attachment) -> bytes:
    header = MessageHeader(
        sender=Organization("000.00.00.G22"),
        recipients=[Organization("000.00.00.H49")],
        code_number="12",
        code_notation="VPCP-TTĐT",
        promulgation_place="Hà Nội",
        promulgation_date=datetime.date(2025, 7, 1),
        document_type=1,
        document_type_name="Công văn",
        subject="Trích yếu",
    )
    return build_package(EdxmlPackage(header=header, attachments=[attachment]))


@pytest.mark.parametrize(
    ("label", "data", "real"),
    [
        ("application/pdf", _zip({"a.pdf": PDF_BYTES}), "application/zip"),
        ("application/zip", PDF_BYTES, "application/pdf"),
        ("text/plain", _zip({"a.txt": b"x"}), "application/zip"),
        ("application/pdf", PDF_BYTES, "application/pdf"),
        ("application/zip", _zip({}), "application/zip"),
        (DOCX, _zip({"word/document.xml": b"<w/>"}), DOCX),  # a zip by design keeps its label
        ("application/pdf", b"not a pdf at all", "application/pdf"),  # unknown bytes: the label stands
    ],
)
def test_real_content_type_follows_the_bytes_only_where_the_label_may_be_wrong(
    label: str, data: bytes, real: str
) -> None:
    assert real_content_type(label, data[:8]) == real


def test_sniffing_knows_pdf_and_zip_only() -> None:
    assert sniff_content_type(PDF_BYTES) == "application/pdf"
    assert sniff_content_type(_zip({"a": b"b"})) == "application/zip"
    assert sniff_content_type(b"<?xml") is None


def test_zip_labelled_application_pdf_is_read_as_a_zip_with_a_warning() -> None:
    archive = _zip({"vb.pdf": PDF_BYTES})
    data = _package(Attachment("cid:1", "vb.pdf", "application/pdf", archive))

    pkg = parse_package(data)
    [attachment] = pkg.attachments

    assert attachment.content_type == "application/zip"
    assert attachment.data == archive
    assert (
        "edXML/AttachmentEncoded/Attachment[1]/ContentType: labelled 'application/pdf'"
        " but the bytes are application/zip; read as application/zip"
    ) in pkg.warnings
    with pytest.raises(EdxmlError, match="labelled 'application/pdf' but the bytes are application/zip"):
        parse_package(data, policy=ParsePolicy(lenient=False, require_signature=False))


def test_pdf_labelled_application_zip_is_read_as_a_pdf_with_a_warning() -> None:
    pkg = parse_package(_package(Attachment("cid:1", "vb.zip", "application/zip", PDF_BYTES)))
    assert pkg.attachments[0].content_type == "application/pdf"
    assert any("labelled 'application/zip' but the bytes are application/pdf" in w for w in pkg.warnings)


def test_pades_unpacks_a_zip_labelled_application_pdf() -> None:
    archive = _zip({"inner/vb.pdf": PDF_BYTES, "readme.txt": b"x"})
    found = pdfs_in_attachment(Attachment("cid:1", "vb.pdf", "application/pdf", archive), UnzipBudget(10**6))
    assert [(p.name, p.data) for p in found] == [("vb.pdf/inner/vb.pdf", PDF_BYTES)]


def test_pades_takes_a_pdf_labelled_application_zip_as_the_pdf() -> None:
    found = pdfs_in_attachment(
        Attachment("cid:1", "vb.zip", "application/zip", PDF_BYTES), UnzipBudget(10**6)
    )
    assert [(p.name, p.data) for p in found] == [("vb.zip", PDF_BYTES)]


def test_pades_leaves_a_docx_alone() -> None:
    docx = _zip({"word/document.xml": b"<w/>"})
    assert pdfs_in_attachment(Attachment("cid:1", "vb.docx", DOCX, docx), UnzipBudget(10**6)) == []


@pytest.mark.parametrize("spans", [False, True])
def test_package_read_from_disk_types_attachments_by_their_bytes(tmp_path: Path, spans: bool) -> None:
    archive = _zip({"vb.pdf": PDF_BYTES})
    path = tmp_path / "package.edxml"
    path.write_bytes(_package(Attachment("cid:1", "vb.pdf", "application/pdf", archive)))

    with read_package_file(path, attachment_dir=tmp_path / "att", spans=spans) as read:
        [attachment] = read.attachments
        assert attachment.content_type == "application/zip"
        assert read.package.attachments[0].content_type == "application/zip"
        assert any("but the bytes are application/zip" in w for w in read.package.warnings)
