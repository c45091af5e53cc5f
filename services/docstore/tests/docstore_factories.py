"""Small factories for docstore tests: edXML packages and PutPackage request streams."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

from lienthong.docstore.v1 import docstore_pb2
from lienthong_common.edxml import (
    Attachment,
    Business,
    EdxmlPackage,
    MessageHeader,
    Organization,
    build_package,
)
from lienthong_common.ids import new_id

SENDER = "000.00.00.H49"
RECIPIENTS = ["000.00.24.H44", "000.46.24.H44"]
CHUNK_BYTES = 64 * 1024
MAX_PACKAGE_BYTES = 12 * 1024 * 1024


def make_package(
    *,
    sender: str = SENDER,
    recipients: list[str] | None = None,
    code_number: str = "7816",
    subject: str = "Về việc triển khai liên thông văn bản điện tử",
    attachments: list[Attachment] | None = None,
    business: Business | None = None,
    priority: int = 0,
) -> bytes:
    """A strictly built edXML package from the sender to the recipients."""
    header = MessageHeader(
        sender=Organization(organ_id=sender, organ_name="UBND tỉnh Quảng Ninh"),
        recipients=[Organization(organ_id=code) for code in (recipients or RECIPIENTS)],
        code_number=code_number,
        code_notation="UBND-VP",
        promulgation_place="Quảng Ninh",
        promulgation_date=datetime.date(2025, 7, 1),
        document_type=1,
        document_type_name="Công văn",
        subject=subject,
        priority=priority,
    )
    return build_package(
        EdxmlPackage(
            header=header,
            attachments=attachments
            if attachments is not None
            else [pdf_attachment(b"%PDF-1.7 quyet dinh\n")],
            business=business or Business(),
        )
    )


def pdf_attachment(data: bytes, *, content_id: str = "cid:1", name: str = "vanban.pdf") -> Attachment:
    return Attachment(content_id=content_id, name=name, content_type="application/pdf", data=data)


def put_requests(
    package: bytes,
    *,
    id: str | None = None,
    sender: str = SENDER,
    recipients: list[str] | None = None,
    idempotency_key: str = "",
    chunk_bytes: int = CHUNK_BYTES,
    declared_size: int = 0,
) -> Iterator[docstore_pb2.PutPackageRequest]:
    """The PutPackage stream the gateway sends: a header, then the bytes in chunks."""
    yield docstore_pb2.PutPackageRequest(
        header=docstore_pb2.PackageHeader(
            id=id or new_id(),
            sender_code=sender,
            recipient_codes=recipients if recipients is not None else RECIPIENTS,
            idempotency_key=idempotency_key,
            declared_size=declared_size,
        )
    )
    for offset in range(0, len(package), chunk_bytes):
        yield docstore_pb2.PutPackageRequest(chunk=package[offset : offset + chunk_bytes])
