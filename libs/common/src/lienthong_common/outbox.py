"""Transactional outbox and idempotent consumption.

A service writes the events it publishes into its own `outbox` table in the same
transaction as the change they describe; the relay publishes them to Kafka afterwards and
deletes them only once the broker has acknowledged. A consumer records each event id in
`processed_events` in the same transaction as the effect, so a redelivered event is a no-op.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import propagate
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.orm import Session, sessionmaker

from lienthong.events.v1 import events_pb2
from lienthong_common.ids import new_id

log = logging.getLogger(__name__)

TOPIC_SUBMITTED = "lienthong.documents.submitted"
TOPIC_VERIFIED = "lienthong.documents.verified"
TOPIC_DELIVERIES = "lienthong.deliveries"
TOPIC_DIRECTORY = "lienthong.directory"
ALL_TOPICS = (TOPIC_SUBMITTED, TOPIC_VERIFIED, TOPIC_DELIVERIES, TOPIC_DIRECTORY)


def infrastructure_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Add the outbox and processed-events tables to a service's metadata."""
    outbox = Table(
        "outbox",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("topic", String(200), nullable=False),
        Column("key", String(200), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("traceparent", Text, nullable=False, default=""),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    processed = Table(
        "processed_events",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )
    return outbox, processed


def now_utc() -> datetime:
    return datetime.now(UTC)


def timestamp(at: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(at.astimezone(UTC))
    return ts


def new_event(document_id: str = "", at: datetime | None = None) -> events_pb2.Event:
    """An Event with its id, time and document id set; the caller fills the payload."""
    event = events_pb2.Event(event_id=new_id(), document_id=document_id)
    event.occurred_at.CopyFrom(timestamp(at or now_utc()))
    return event


@dataclass
class Outbox:
    table: Table
    processed: Table
    wakeup: threading.Event

    @classmethod
    def for_metadata(cls, metadata: MetaData) -> Outbox:
        outbox, processed = infrastructure_tables(metadata)
        return cls(outbox, processed, threading.Event())

    def add(self, session: Session, *, topic: str, key: str, event: events_pb2.Event) -> None:
        """Queue an event in the caller's transaction, with the current trace context."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        session.execute(
            insert(self.table).values(
                event_id=event.event_id,
                topic=topic,
                key=key,
                payload=event.SerializeToString(),
                traceparent=carrier.get("traceparent", ""),
                created_at=now_utc(),
            )
        )
        # The relay polls; this makes it look now once the transaction has committed.
        session.info.setdefault("after_commit", []).append(self.wakeup.set)

    def add_many(self, session: Session, *, topic: str, events: list[tuple[str, events_pb2.Event]]) -> None:
        """Queue several (key, event) pairs in one statement (same trace context for all)."""
        if not events:
            return
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        at = now_utc()
        session.execute(
            insert(self.table),
            [
                {
                    "event_id": event.event_id,
                    "topic": topic,
                    "key": key,
                    "payload": event.SerializeToString(),
                    "traceparent": carrier.get("traceparent", ""),
                    "created_at": at,
                }
                for key, event in events
            ],
        )
        session.info.setdefault("after_commit", []).append(self.wakeup.set)

    def claim_first_time(self, session: Session, *, consumer: str, event_id: str) -> bool:
        """Record that `consumer` handled `event_id`; False when it already had."""
        seen = session.execute(
            select(self.processed.c.event_id).where(
                self.processed.c.consumer == consumer, self.processed.c.event_id == event_id
            )
        ).first()
        if seen is not None:
            return False
        session.execute(
            insert(self.processed).values(consumer=consumer, event_id=event_id, processed_at=now_utc())
        )
        return True

    def backlog(self, session: Session) -> int:
        from sqlalchemy import func

        return int(session.execute(select(func.count()).select_from(self.table)).scalar_one())

    def fetch_batch(self, session: Session, limit: int) -> list[tuple[int, str, str, bytes, str]]:
        rows = session.execute(
            select(
                self.table.c.id,
                self.table.c.topic,
                self.table.c.key,
                self.table.c.payload,
                self.table.c.traceparent,
            )
            .order_by(self.table.c.id)
            .limit(limit)
        ).all()
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def delete_upto(self, session: Session, ids: list[int]) -> None:
        session.execute(delete(self.table).where(self.table.c.id.in_(ids)))


def install_after_commit_hooks(factory: sessionmaker[Session]) -> None:
    """Run callbacks queued in session.info['after_commit'] once a transaction commits."""
    from sqlalchemy import event

    @event.listens_for(factory, "after_commit")
    def _after_commit(session: Session) -> None:
        for callback in session.info.pop("after_commit", []):
            callback()

    @event.listens_for(factory, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop("after_commit", None)
