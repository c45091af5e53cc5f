"""Database reads and writes of stored documents."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from lienthong_docstore.models import Document, DocumentAttachment


def get_document(*, session: Session, id: str) -> Document | None:
    """The document stored under the platform id, with its attachments."""
    return session.get(Document, id)


def find_by_idempotency_key(*, session: Session, sender_code: str, key: str) -> Document | None:
    """The document the sender first stored under this Idempotency-Key."""
    return session.scalars(
        select(Document).where(Document.sender_code == sender_code, Document.idempotency_key == key)
    ).first()


def find_recent_by_edxml_id(
    *, session: Session, sender_code: str, edxml_document_id: str, since: datetime
) -> Document | None:
    """The earliest document of the sender with this edXML DocumentId submitted since `since`."""
    return session.scalars(
        select(Document)
        .where(
            Document.sender_code == sender_code,
            Document.edxml_document_id == edxml_document_id,
            Document.submitted_at >= since,
        )
        .order_by(Document.submitted_at, Document.id)
    ).first()


def list_sent(
    *, session: Session, sender_code: str, after: tuple[datetime, str] | None, limit: int
) -> list[Document]:
    """The sender's documents, oldest first, strictly after the (submitted_at, id) cursor."""
    query = select(Document).where(Document.sender_code == sender_code)
    if after is not None:
        at, last_id = after
        query = query.where(
            (Document.submitted_at > at) | ((Document.submitted_at == at) & (Document.id > last_id))
        )
    return list(session.scalars(query.order_by(Document.submitted_at, Document.id).limit(limit)))


def find_attachment(*, session: Session, sha256: str) -> DocumentAttachment | None:
    """Any attachment stored under the digest (all of them share the same bytes)."""
    return session.scalars(
        select(DocumentAttachment).where(DocumentAttachment.sha256 == sha256).limit(1)
    ).first()


def add_document(*, session: Session, document: Document) -> None:
    """Insert a new document with its attachments (flushes, so key conflicts surface here)."""
    session.add(document)
    session.flush()
