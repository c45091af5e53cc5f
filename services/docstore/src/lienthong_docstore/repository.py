"""Database reads and writes of stored documents."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from lienthong_docstore.models import Base, Document, DocumentAttachment


def get_document(*, session: Session, id: str) -> Document | None:
    """The document stored under the platform id, with its attachments."""
    return session.get(Document, id)


def find_by_idempotency_key(*, session: Session, sender_code: str, key: str) -> Document | None:
    """The document the sender first stored under this Idempotency-Key."""
    return session.scalars(
        select(Document).where(Document.sender_code == sender_code, Document.idempotency_key == key)
    ).first()


# Built once, on the tables rather than the ORM classes: the statements on the upload path are
# the same every time, so SQLAlchemy's compiled-statement cache is hit without rebuilding them,
# and they run as plain Core statements without the ORM's per-execution bookkeeping.
_DOCUMENTS = Base.metadata.tables["documents"]
_ATTACHMENTS = Base.metadata.tables["document_attachments"]
_RECENT_ID = (
    select(_DOCUMENTS.c.id)
    .where(
        _DOCUMENTS.c.sender_code == bindparam("sender_code"),
        _DOCUMENTS.c.edxml_document_id == bindparam("edxml_document_id"),
        _DOCUMENTS.c.submitted_at >= bindparam("since"),
    )
    .order_by(_DOCUMENTS.c.submitted_at, _DOCUMENTS.c.id)
    .limit(1)
)
_INSERT_DOCUMENT = insert(_DOCUMENTS)
_INSERT_ATTACHMENTS = insert(_ATTACHMENTS)


def find_recent_id_by_edxml_id(
    *, session: Session, sender_code: str, edxml_document_id: str, since: datetime
) -> str | None:
    """The id of the sender's earliest document with this edXML DocumentId submitted since
    `since`, without loading it (ix_documents_sender_edxml_document_id serves the lookup)."""
    params = {"sender_code": sender_code, "edxml_document_id": edxml_document_id, "since": since}
    return session.connection().execute(_RECENT_ID, params).scalar()


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


def find_attachment(*, session: Session, sha256: str) -> tuple[DocumentAttachment, str] | None:
    """Any attachment stored under the digest (all of them share the same bytes), with the
    package digest of its document (where it is kept if it has no blob of its own)."""
    row = session.execute(
        select(DocumentAttachment, Document.package_sha256)
        .join(Document, Document.id == DocumentAttachment.document_id)
        .where(DocumentAttachment.sha256 == sha256)
        .limit(1)
    ).first()
    return (row[0], row[1]) if row is not None else None


def add_document(*, session: Session, document: Document) -> None:
    """Insert a new document with its attachments; key conflicts raise IntegrityError here.

    Plain INSERTs (two statements) instead of the ORM unit of work: the rows are written once
    and never updated, so `document` stays a transient object describing them."""
    connection = session.connection()
    connection.execute(_INSERT_DOCUMENT, {c.key: getattr(document, c.key) for c in _DOCUMENTS.columns})
    if document.attachments:
        connection.execute(
            _INSERT_ATTACHMENTS,
            [
                {c.key: getattr(a, c.key) for c in _ATTACHMENTS.columns} | {"document_id": document.id}
                for a in document.attachments
            ],
        )
