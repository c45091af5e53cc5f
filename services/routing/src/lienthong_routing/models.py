"""Routing's tables: documents it has routed or refused, deliveries, and the status timeline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lienthong_common.outbox import Outbox

AGENCY_CODE = 64


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes stored as UTC; SQLite hands them back naive, so re-attach UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


OUTBOX = Outbox.for_metadata(Base.metadata)


class RoutedDocument(Base):
    """A verified document as routing knows it: routed to its recipients, or refused."""

    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sender_code: Mapped[str] = mapped_column(String(AGENCY_CODE), index=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    edxml_document_id: Mapped[str] = mapped_column(String(500), default="")
    business_doc_type: Mapped[int] = mapped_column(Integer, default=0)
    referenced_document_id: Mapped[str] = mapped_column(String(500), default="")
    recipient_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # routed | refused
    state: Mapped[str] = mapped_column(String(20))
    indication: Mapped[str] = mapped_column(String(40), default="")
    sub_indication: Mapped[str] = mapped_column(String(60), default="")
    refusal_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Delivery(Base):
    """One document in one recipient's inbox, with its handling state."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("document_id", "recipient_code", name="uq_deliveries_document_recipient"),
        # Per-recipient inbox order; the unique pair makes concurrent appends to one inbox
        # conflict (and retry) instead of committing out of order, so cursors never skip.
        UniqueConstraint("recipient_code", "inbox_sequence", name="uq_deliveries_inbox_sequence"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), index=True)
    recipient_code: Mapped[str] = mapped_column(String(AGENCY_CODE))
    requested_code: Mapped[str] = mapped_column(String(AGENCY_CODE), default="")
    state: Mapped[str] = mapped_column(String(30))
    last_status_code: Mapped[str] = mapped_column(String(4), default="")
    inbox_sequence: Mapped[int] = mapped_column(BigInteger)
    delivered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class StatusEntry(Base):
    """One line of a document's timeline: a delivery created or its state changed."""

    __tablename__ = "status_entries"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), index=True)
    recipient_code: Mapped[str] = mapped_column(String(AGENCY_CODE))
    code: Mapped[str] = mapped_column(String(4), default="")
    state: Mapped[str] = mapped_column(String(30))
    description: Mapped[str] = mapped_column(Text, default="")
    actor_code: Mapped[str] = mapped_column(String(AGENCY_CODE), default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime)
