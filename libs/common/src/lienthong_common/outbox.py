"""Transactional outbox and idempotent consumption.

A service writes the events it publishes into its own `outbox` table in the same
transaction as the change they describe; the relay publishes them to Kafka afterwards and
deletes them only once the broker has acknowledged. A consumer records each event id in
`processed_events` in the same transaction as the effect, so a redelivered event is a no-op.
An event whose handler keeps failing is parked in `dead_letters` (see kafka.EventConsumer).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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
    UniqueConstraint,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from lienthong.events.v1 import events_pb2

# Re-exported: callers not yet moved to lienthong_common.clock import it from here.
from lienthong_common.clock import now_utc as now_utc
from lienthong_common.ids import new_id

log = logging.getLogger(__name__)

TOPIC_SUBMITTED = "lienthong.documents.submitted"
TOPIC_VERIFIED = "lienthong.documents.verified"
TOPIC_DELIVERIES = "lienthong.deliveries"
TOPIC_DIRECTORY = "lienthong.directory"
ALL_TOPICS = (TOPIC_SUBMITTED, TOPIC_VERIFIED, TOPIC_DELIVERIES, TOPIC_DIRECTORY)


DEAD_LETTERS = "dead_letters"
PARKED = "parked"
REDRIVEN = "redriven"


def dead_letter_columns() -> list[Any]:
    """The dead-letter table's columns and constraints (fresh objects: metadata and migrations).

    One row per poison message of one consumer group: where it was read (topic, partition,
    offset), what it was (key, event id, payload, trace context), why it failed and when.
    `state` is `parked` until an operator re-drives it (`redriven`); rows are never deleted
    by the platform, so nothing accepted is lost.
    """
    return [
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("consumer", String(100), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("kafka_partition", Integer, nullable=False),
        Column("kafka_offset", BigInteger, nullable=False),
        Column("key", String(200), nullable=False),
        Column("event_id", String(36), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("traceparent", Text, nullable=False),
        Column("error", Text, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("first_failed_at", DateTime(timezone=True), nullable=False),
        Column("last_failed_at", DateTime(timezone=True), nullable=False),
        Column("state", String(20), nullable=False),
        Column("redriven_at", DateTime(timezone=True), nullable=True),
        UniqueConstraint(
            "consumer", "topic", "kafka_partition", "kafka_offset", name="uq_dead_letters_position"
        ),
    ]


def create_dead_letters_table() -> None:
    """The body of each service's `lienthong_common` Alembic branch revision."""
    from alembic import op

    op.create_table(DEAD_LETTERS, *dead_letter_columns())


def drop_dead_letters_table() -> None:
    from alembic import op

    op.drop_table(DEAD_LETTERS)


def infrastructure_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Add the outbox, processed-events and dead-letter tables to a service's metadata."""
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
    Table(DEAD_LETTERS, metadata, *dead_letter_columns())
    return outbox, processed


def timestamp(at: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(at.astimezone(UTC))
    return ts


def new_event(document_id: str = "", at: datetime | None = None) -> events_pb2.Event:
    """An Event with its id, time and document id set; the caller fills the payload."""
    event = events_pb2.Event(event_id=new_id(), document_id=document_id)
    event.occurred_at.CopyFrom(timestamp(at or now_utc()))
    return event


@dataclass(frozen=True)
class DeadLetter:
    """A parked event, as `lienthong-<svc> dead-letters list` shows it."""

    id: int
    consumer: str
    topic: str
    partition: int
    offset: int
    key: str
    event_id: str
    payload: bytes
    traceparent: str
    error: str
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    state: str
    redriven_at: datetime | None


@dataclass
class Outbox:
    table: Table
    processed: Table
    wakeup: threading.Event
    # None for a metadata without the table (then a poison message blocks as it used to).
    dead_letters: Table | None = field(default=None)

    @classmethod
    def for_metadata(cls, metadata: MetaData) -> Outbox:
        outbox, processed = infrastructure_tables(metadata)
        return cls(outbox, processed, threading.Event(), metadata.tables.get(DEAD_LETTERS))

    def add(self, session: Session, *, topic: str, key: str, event: events_pb2.Event) -> None:
        """Queue an event in the caller's transaction, with the current trace context."""
        self.add_many(session, topic=topic, events=[(key, event)])

    def add_many(self, session: Session, *, topic: str, events: list[tuple[str, events_pb2.Event]]) -> None:
        """Queue several (key, event) pairs in one statement (same trace context for all)."""
        if not events:
            return
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        at = now_utc()
        rows = [
            {
                "event_id": event.event_id,
                "topic": topic,
                "key": key,
                "payload": event.SerializeToString(),
                "traceparent": carrier.get("traceparent", ""),
                "created_at": at,
            }
            for key, event in events
        ]
        # One statement for every event (parameters bound at execution), so it compiles once.
        session.connection().execute(insert(self.table), rows[0] if len(rows) == 1 else rows)
        # The relay polls; this makes it look now once the transaction has committed.
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

    def claim_many(self, session: Session, *, consumer: str, event_ids: Sequence[str]) -> set[str]:
        """Record that `consumer` handles these events; returns the ids not handled before.

        Two statements for the whole batch (a SELECT of those already there, one multi-row
        INSERT of the others). A concurrent claim of the same id (two replicas during a
        rebalance) makes the INSERT fail on the primary key, which rolls the batch back.
        """
        unique = list(dict.fromkeys(event_ids))
        if not unique:
            return set()
        seen = set(
            session.execute(
                select(self.processed.c.event_id).where(
                    self.processed.c.consumer == consumer, self.processed.c.event_id.in_(unique)
                )
            ).scalars()
        )
        fresh = [event_id for event_id in unique if event_id not in seen]
        if fresh:
            at = now_utc()
            session.execute(
                insert(self.processed),
                [{"consumer": consumer, "event_id": event_id, "processed_at": at} for event_id in fresh],
            )
        return set(fresh)

    def unclaim(self, session: Session, *, consumer: str, event_ids: Sequence[str]) -> None:
        """Undo claims made in this transaction for events it then did not handle."""
        if event_ids:
            session.execute(
                delete(self.processed).where(
                    self.processed.c.consumer == consumer, self.processed.c.event_id.in_(list(event_ids))
                )
            )

    # -- dead letters ---------------------------------------------------------------------------

    def _dead_letters(self) -> Table:
        if self.dead_letters is None:
            raise RuntimeError("this service's metadata has no dead_letters table")
        return self.dead_letters

    def park(
        self,
        session: Session,
        *,
        consumer: str,
        topic: str,
        partition: int,
        offset: int,
        key: str,
        event_id: str,
        payload: bytes,
        traceparent: str,
        error: str,
        attempts: int,
        first_failed_at: datetime,
    ) -> int:
        """Park a message (again: a re-delivered parked message adds its attempts); returns the row id."""
        table = self._dead_letters()
        at = now_utc()
        where = (
            (table.c.consumer == consumer)
            & (table.c.topic == topic)
            & (table.c.kafka_partition == partition)
            & (table.c.kafka_offset == offset)
        )
        existing = session.execute(select(table.c.id).where(where)).scalar_one_or_none()
        if existing is not None:
            session.execute(
                update(table)
                .where(table.c.id == existing)
                .values(
                    attempts=table.c.attempts + attempts,
                    error=error,
                    last_failed_at=at,
                    state=PARKED,
                    redriven_at=None,
                )
            )
            return int(existing)
        return int(
            session.execute(
                insert(table)
                .values(
                    consumer=consumer,
                    topic=topic,
                    kafka_partition=partition,
                    kafka_offset=offset,
                    key=key[:200],
                    event_id=event_id[:36],
                    payload=payload,
                    traceparent=traceparent,
                    error=error,
                    attempts=attempts,
                    first_failed_at=first_failed_at,
                    last_failed_at=at,
                    state=PARKED,
                )
                .returning(table.c.id)
            ).scalar_one()
        )

    def list_dead_letters(
        self,
        session: Session,
        *,
        consumer: str | None = None,
        states: Sequence[str] = (PARKED,),
        ids: Sequence[int] = (),
        limit: int = 1000,
    ) -> list[DeadLetter]:
        table = self._dead_letters()
        query = select(table).order_by(table.c.id).limit(limit)
        if consumer is not None:
            query = query.where(table.c.consumer == consumer)
        if states:
            query = query.where(table.c.state.in_(list(states)))
        if ids:
            query = query.where(table.c.id.in_(list(ids)))
        return [
            DeadLetter(
                id=r.id,
                consumer=r.consumer,
                topic=r.topic,
                partition=r.kafka_partition,
                offset=r.kafka_offset,
                key=r.key,
                event_id=r.event_id,
                payload=r.payload,
                traceparent=r.traceparent,
                error=r.error,
                attempts=r.attempts,
                first_failed_at=r.first_failed_at,
                last_failed_at=r.last_failed_at,
                state=r.state,
                redriven_at=r.redriven_at,
            )
            for r in session.execute(query)
        ]

    def mark_redriven(self, session: Session, dead_letter_id: int) -> None:
        table = self._dead_letters()
        session.execute(
            update(table).where(table.c.id == dead_letter_id).values(state=REDRIVEN, redriven_at=now_utc())
        )

    def note_failed_redrive(self, session: Session, dead_letter_id: int, error: str) -> None:
        table = self._dead_letters()
        session.execute(
            update(table)
            .where(table.c.id == dead_letter_id)
            .values(attempts=table.c.attempts + 1, error=error, last_failed_at=now_utc())
        )

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
