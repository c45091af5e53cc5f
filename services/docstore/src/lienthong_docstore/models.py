"""Docstore tables: documents as received, their attachments, and the outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from lienthong_common.outbox import Outbox
from lienthong_common.telemetry import current_traceparent


class Base(DeclarativeBase):
    pass


class Document(Base):
    """One stored edXML package and what was read from it; immutable once written."""

    __tablename__ = "documents"
    __table_args__ = (
        # Same sender + Idempotency-Key returns the first document; NULL keys never collide.
        Index("uq_documents_sender_idempotency_key", "sender_code", "idempotency_key", unique=True),
        Index("ix_documents_sender_edxml_document_id", "sender_code", "edxml_document_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sender_code: Mapped[str] = mapped_column(String(64), nullable=False)
    recipient_codes: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    edxml_document_id: Mapped[str] = mapped_column(String(512), nullable=False)
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    package_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    package_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    warnings: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    business_doc_type: Mapped[int] = mapped_column(Integer, nullable=False)
    referenced_document_id: Mapped[str] = mapped_column(String(512), nullable=False, default="")
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # The trace of the submission, taken from the active span when the row is inserted.
    traceparent: Mapped[str] = mapped_column(
        String(64), nullable=False, default=current_traceparent, server_default=""
    )

    attachments: Mapped[list[DocumentAttachment]] = relationship(
        order_by="DocumentAttachment.position", lazy="selectin", cascade="all, delete-orphan"
    )


class DocumentAttachment(Base):
    """An attachment of a document, stored once per digest: either a blob of its own under
    `sha256`, or (`package_offset` set) the base64 body at bytes [offset, offset + length) of
    its document's package blob, decoded when read."""

    __tablename__ = "document_attachments"

    document_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_id: Mapped[str] = mapped_column(String(255), nullable=False)
    name: Mapped[str] = mapped_column(String(1024), nullable=False)
    content_type: Mapped[str] = mapped_column(String(255), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    package_offset: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    package_length: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


OUTBOX = Outbox.for_metadata(Base.metadata)
