"""The sigverify database: verification reports, held documents, the versioned trust store, the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lienthong_common.outbox import Outbox


class Base(DeclarativeBase):
    pass


OUTBOX = Outbox.for_metadata(Base.metadata)


class VerificationReportRow(Base):
    """What sigverify concluded about one document's signatures."""

    __tablename__ = "verification_reports"

    document_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    indication: Mapped[str] = mapped_column(String(20), nullable=False)
    sub_indication: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # One object per signature (SignatureCheck.to_json), in the order found.
    signatures: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    verified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    policy: Mapped[str] = mapped_column(String(100), nullable=False, default="", server_default="")
    trust_store_version: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), nullable=False, default=0, server_default="0"
    )


class HeldDocumentRow(Base):
    """A document whose signer's revocation could not be confirmed (INDETERMINATE/TRY_LATER):
    nothing was emitted for it; the re-verify loop tries again at ``next_attempt_at`` and emits
    the verdict (and deletes the row) once it is definite or ``first_seen`` is past the deadline
    (docs/adr/0075)."""

    __tablename__ = "held_documents"

    document_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # The DocumentSubmitted event that was held (serialised protobuf): what re-verifying needs
    # (sender) and what the verified event copies (recipients, subject, business type).
    event_id: Mapped[str] = mapped_column(String(36), nullable=False)
    submitted_event: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # W3C trace context of the consuming span: the eventual verified event joins the document's trace.
    traceparent: Mapped[str] = mapped_column(String(55), nullable=False, default="", server_default="")
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    last_reason: Mapped[str] = mapped_column(Text, nullable=False, default="")

    __table_args__ = (Index("ix_held_documents_next_attempt_at", "next_attempt_at"),)


class TrustAnchorRow(Base):
    """A CA certificate trusted for document signatures; removal keeps the row (audit)."""

    __tablename__ = "trust_anchors"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    certificate_pem: Mapped[str] = mapped_column(Text, nullable=False)
    self_signed: Mapped[bool] = mapped_column(nullable=False, default=True)
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    not_after: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    added_by: Mapped[str] = mapped_column(String(200), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False, default="")
    version_added: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), nullable=False)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    removed_by: Mapped[str] = mapped_column(String(200), nullable=False, default="")


class TrustStoreChangeRow(Base):
    """One change to the trust store; the highest id is the store's version."""

    __tablename__ = "trust_store_changes"

    version: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    action: Mapped[str] = mapped_column(String(10), nullable=False)  # add | remove
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    changed_by: Mapped[str] = mapped_column(String(200), nullable=False)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
