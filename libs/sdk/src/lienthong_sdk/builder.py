"""Build (and sign) QCVN 102:2016 edXML packages from an agency's own software.

    from lienthong_sdk.builder import PackageBuilder
    from lienthong_common.pki import load_identity

    package = (
        PackageBuilder(sender="000.00.00.H49", sender_name="UBND tỉnh Quảng Ninh")
        .to("000.00.02.H49", "000.01.03.H49")
        .subject("Về việc triển khai liên thông văn bản điện tử")
        .code("7816", "UBND-VP")
        .attach_file("cv-signed.pdf")
        .build(identity=load_identity(pki_dir / "agencies", "000.00.00.H49"))
    )
    client.send_package(package)

``build()`` validates strictly (every error names the element) and, given an identity, adds
the enveloped XML-DSig (SHA-256) after ``TraceHeaderList``. Recall, update and replace are
``.acts_on(document_id, doc_type=BUSINESS_RECALL, reason=...)``.

Files attached with ``attach_file`` are read only while the package is written: ``build_to(out)``
streams them (base64-encoded, and signed on the way out) so a 40 MB scan costs a few hundred
KiB of memory; ``build()`` returns the whole package as bytes.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import mimetypes
import uuid
from pathlib import Path
from typing import IO

from lienthong_common import edxml
from lienthong_common.pki import IssuedIdentity

__all__ = ["PackageBuilder", "attachment_from_file"]


def attachment_from_file(
    path: str | Path, *, content_id: str = "", description: str = ""
) -> edxml.Attachment:
    """An attachment with the file's bytes, name and content type (PDF, zip, … by extension)."""
    return dataclasses.replace(
        _file_attachment(Path(path), content_id=content_id, description=description),
        data=Path(path).read_bytes(),
    )


def _file_attachment(file: Path, *, content_id: str, description: str) -> edxml.Attachment:
    """The attachment describing ``file``, without its bytes (``data`` empty)."""
    content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    return edxml.Attachment(
        content_id=content_id or f"cid:{uuid.uuid4()}",
        name=file.name,
        content_type=content_type,
        data=b"",
        description=description,
    )


class PackageBuilder:
    """A fluent builder of one document package; every setter returns the builder."""

    def __init__(self, *, sender: str | edxml.Organization, sender_name: str = "") -> None:
        self._sender = (
            sender
            if isinstance(sender, edxml.Organization)
            else edxml.Organization(organ_id=sender, organ_name=sender_name)
        )
        self._recipients: list[edxml.Organization] = []
        self._subject = ""
        self._code_number = ""
        self._code_notation = ""
        self._place = ""
        self._date = datetime.date.today()
        self._type, self._type_name = 1, "Công văn"
        self._priority = 0
        self._signer = edxml.SignerInfo()
        self._content = ""
        self._due: datetime.date | None = None
        self._business = edxml.Business()
        self._attachments: list[edxml.Attachment] = []
        self._files: dict[str, Path] = {}  # content id -> the file its bytes are read from

    def to(self, *recipients: str | edxml.Organization) -> PackageBuilder:
        """Add recipients (agency codes or full ``Organization`` records)."""
        for r in recipients:
            self._recipients.append(
                r if isinstance(r, edxml.Organization) else edxml.Organization(organ_id=r)
            )
        return self

    def subject(self, text: str, *, content: str = "") -> PackageBuilder:
        """The trích yếu (and optionally the body text)."""
        self._subject, self._content = text, content
        return self

    def code(self, number: str, notation: str) -> PackageBuilder:
        """Số và ký hiệu: ``CodeNumber`` (e.g. 7816) and ``CodeNotation`` (e.g. VPCP-TTĐT)."""
        self._code_number, self._code_notation = number, notation
        return self

    def promulgated(self, place: str, date: datetime.date | None = None) -> PackageBuilder:
        """Where and when it was issued (default today); the DocumentId uses the date."""
        self._place = place
        self._date = date or self._date
        return self

    def document_type(self, type_code: int, name: str) -> PackageBuilder:
        self._type, self._type_name = type_code, name
        return self

    def priority(self, level: int) -> PackageBuilder:
        """0 thường, 1 khẩn, 2 thượng khẩn, 3 hỏa tốc, 4 hỏa tốc hẹn giờ."""
        self._priority = level
        return self

    def signed_by(self, full_name: str, position: str = "", competence: str = "") -> PackageBuilder:
        self._signer = edxml.SignerInfo(competence=competence, position=position, full_name=full_name)
        return self

    def due(self, date: datetime.date) -> PackageBuilder:
        self._due = date
        return self

    def acts_on(self, document_id: str, *, doc_type: int, reason: str = "") -> PackageBuilder:
        """Make this a recall (1), update (2) or replacement (3) of ``document_id``."""
        self._business = edxml.Business(doc_type=doc_type, reason=reason, document_id=document_id)
        return self

    def attach(self, attachment: edxml.Attachment) -> PackageBuilder:
        self._attachments.append(attachment)
        return self

    def attach_file(self, path: str | Path, *, description: str = "") -> PackageBuilder:
        """Attach a file; its content id is ``cid:<position>``. The file is read when the package
        is written, not now."""
        content_id = f"cid:{len(self._attachments) + 1}"
        self._files[content_id] = Path(path)
        return self.attach(_file_attachment(Path(path), content_id=content_id, description=description))

    def package(self) -> edxml.EdxmlPackage:
        """The package as a data model (not yet validated), attached files read into memory."""
        model = self._model()
        attachments = [
            dataclasses.replace(a, data=self._files[a.content_id].read_bytes())
            if a.content_id in self._files
            else a
            for a in model.attachments
        ]
        return dataclasses.replace(model, attachments=attachments)

    def _model(self) -> edxml.EdxmlPackage:
        header = edxml.MessageHeader(
            sender=self._sender,
            recipients=list(self._recipients),
            code_number=self._code_number,
            code_notation=self._code_notation,
            promulgation_place=self._place,
            promulgation_date=self._date,
            document_type=self._type,
            document_type_name=self._type_name,
            subject=self._subject,
            content=self._content,
            signer=self._signer,
            due_date=self._due,
            priority=self._priority,
        )
        return edxml.EdxmlPackage(header=header, business=self._business, attachments=list(self._attachments))

    def build(self, *, identity: IssuedIdentity | None = None) -> bytes:
        """Serialize strictly (raises ``EdxmlError`` naming the element); sign when given an identity."""
        out = io.BytesIO()
        self.build_to(out, identity=identity)
        return out.getvalue()

    def build_to(self, out: IO[bytes], *, identity: IssuedIdentity | None = None) -> int:
        """Write the package (signed when given an identity) to ``out``, attached files streamed
        from disk; returns its size. Raises ``EdxmlError`` naming the element when invalid."""
        if identity is None:
            return edxml.write_package(self._model(), out, files=self._files)
        from lienthong_common.edxml.signature import write_signed_package

        return write_signed_package(self._model(), out, identity, files=self._files)

    def attachment_sizes(self) -> list[int]:
        """The size of every attachment, files as they are on disk now."""
        return [
            self._files[a.content_id].stat().st_size if a.content_id in self._files else len(a.data)
            for a in self._attachments
        ]
