"""Routing's tables: documents it has routed or refused, deliveries, and the status timeline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lienthong_common.outbox import Outbox

AGENCY_CODE = 64
# The predicates of the two partial "pending" indexes. The pending reads (vdxp_pending,
# status_messages) state them with a literal, not a bound parameter, or the planner cannot
# match them to the index; test_vdxp_migrations asks both databases for the plans.
UNTAKEN = "state = 'delivered'"
NOT_DONE = "state != 'done'"


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
    __table_args__ = (
        # Business documents (recall, update, replace) find the document they act on by these.
        Index("ix_documents_sender_edxml", "sender_code", "edxml_document_id"),
        # A sender's documents newest first (ListSent), and any party's by edXML id (FindDocuments).
        Index("ix_documents_sender_created", "sender_code", "created_at"),
        Index("ix_documents_edxml_document_id", "edxml_document_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sender_code: Mapped[str] = mapped_column(String(AGENCY_CODE))
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
        # What a recipient's system has not taken yet (VDXP getReceivedEdocList), polled every few
        # seconds: partial, so it holds only the few deliveries still `delivered`.
        Index(
            "ix_deliveries_untaken",
            "recipient_code",
            "delivered_at",
            sqlite_where=text(UNTAKEN),
            postgresql_where=text(UNTAKEN),
        ),
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
    # End of the working day the recipient must acknowledge (01, 02 or 03) by; see deadlines.py.
    ack_deadline: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True, index=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # The document that updated or replaced this one (BussinessDocType 2/3).
    superseded_by: Mapped[str] = mapped_column(String(36), default="")


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


class EvidenceHead(Base):
    """The chain's single head row: last sequence and hash. Locking it serialises appends."""

    __tablename__ = "evidence_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64), default="")


class EvidenceEntry(Base):
    """One link of the append-only evidence chain; `hash` covers `previous_hash` and `body`."""

    __tablename__ = "evidence_log"

    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(20))
    document_id: Mapped[str] = mapped_column(String(36), index=True)
    recipient_code: Mapped[str] = mapped_column(String(AGENCY_CODE), default="")
    body: Mapped[str] = mapped_column(Text)
    previous_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class StatusPackageRecord(Base):
    """A status as the edXML Status package the sender's software reads, numbered per document."""

    __tablename__ = "status_packages"
    __table_args__ = (UniqueConstraint("document_id", "number", name="uq_status_packages_number"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    from_code: Mapped[str] = mapped_column(String(AGENCY_CODE))
    status_code: Mapped[str] = mapped_column(String(4))
    description: Mapped[str] = mapped_column(Text, default="")
    package: Mapped[bytes] = mapped_column(LargeBinary)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class StatusMessage(Base):
    """A recorded status waiting for one addressee's system to take it (VDXP pull).

    One recorded status makes one message per addressee, all sharing `status_id`; see
    status_messages.py for who the addressees are and how a message is acknowledged.
    """

    __tablename__ = "status_messages"
    __table_args__ = (
        # The addressee's pending list, polled every few seconds: partial, so done messages
        # (nearly all of them, over time) are not in it.
        Index(
            "ix_status_messages_pending",
            "to_code",
            "created_at",
            sqlite_where=text(NOT_DONE),
            postgresql_where=text(NOT_DONE),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), index=True)
    # One recorded status (one post); a repeated post is answered with its messages.
    status_id: Mapped[str] = mapped_column(String(36))
    # The package routing kept for this status (ListStatusPackages), when it could build one.
    status_package_id: Mapped[int | None] = mapped_column(ForeignKey("status_packages.id"), nullable=True)
    from_code: Mapped[str] = mapped_column(String(AGENCY_CODE))
    to_code: Mapped[str] = mapped_column(String(AGENCY_CODE))
    status_code: Mapped[str] = mapped_column(String(4))
    description: Mapped[str] = mapped_column(Text, default="")
    # pending | processing | failed | done
    state: Mapped[str] = mapped_column(String(20))
    # When the status was recorded: its Timestamp in the package.
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Webhook(Base):
    """An agency's push endpoint and the secret its payloads are signed with."""

    __tablename__ = "webhooks"

    agency_code: Mapped[str] = mapped_column(String(AGENCY_CODE), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    # Needed in clear to sign (HMAC); never returned after the reply that generated it.
    secret: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class WebhookDelivery(Base):
    """One payload to push to one agency; its id is the idempotency id the receiver sees."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agency_code: Mapped[str] = mapped_column(String(AGENCY_CODE), index=True)
    document_id: Mapped[str] = mapped_column(String(36), index=True)
    # The delivery pushed (kind delivery) or "" (kind status, pushed to the sender).
    delivery_id: Mapped[str] = mapped_column(String(36), default="")
    kind: Mapped[str] = mapped_column(String(20))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    # pending | pushed | dead_lettered
    state: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    pushed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class WebhookAttempt(Base):
    """One POST of a webhook delivery and how the receiver answered."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    webhook_delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    http_status: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
