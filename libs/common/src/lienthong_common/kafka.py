"""Kafka publishing (the outbox relay) and idempotent consumption, with W3C trace context.

The relay publishes outbox rows with a PRODUCER span whose parent is the trace context stored
with the row; a consumer's CONSUMER span is the child of the producer's context, plus a link,
so one document's journey through every service is one trace.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from kafka import KafkaConsumer, KafkaProducer  # type: ignore[import-untyped]
from kafka.admin import KafkaAdminClient, NewTopic  # type: ignore[import-untyped]
from kafka.errors import TopicAlreadyExistsError  # type: ignore[import-untyped]
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from lienthong.events.v1 import events_pb2
from lienthong_common import metrics
from lienthong_common.clock import now_utc
from lienthong_common.kafka_access import PRODUCER_HEADER, SERVICES, from_owner, owner_of, producer_of
from lienthong_common.outbox import ALL_TOPICS, PARKED, DeadLetter, Outbox
from lienthong_common.settings import KafkaSettings
from lienthong_common.telemetry import event_attributes

log = logging.getLogger(__name__)
tracer = trace.get_tracer("lienthong.kafka")

Handler = Callable[[Session, events_pb2.Event], None]
# Sees each polled batch before its events are handled one by one (no session: no effects).
BatchHook = Callable[[list[events_pb2.Event]], None]


def broker_reachable(settings: KafkaSettings, timeout: float = 1.0) -> bool:
    """True when a TCP connection to some bootstrap server succeeds."""
    for server in settings.servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def ensure_topics(settings: KafkaSettings, topics: tuple[str, ...] = ALL_TOPICS) -> None:
    """Create the platform's topics when missing (on Kubernetes Strimzi owns them)."""
    admin = KafkaAdminClient(client_id="lienthong-admin", **settings.client_options())
    try:
        existing = set(admin.list_topics())
        wanted = [
            # Events are kept forever: `lienthong stats rebuild` replays them from offset 0.
            NewTopic(
                name=t,
                num_partitions=settings.topic_partitions,
                replication_factor=1,
                topic_configs={"retention.ms": "-1"},
            )
            for t in topics
            if t not in existing
        ]
        if wanted:
            try:
                admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def _headers_to_carrier(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in (headers or [])}


def _payload_attributes(payload: bytes) -> dict[str, Any]:
    try:
        return event_attributes(events_pb2.Event.FromString(payload))
    except Exception:  # noqa: BLE001 - a span attribute must never stop publishing
        return {}


class OutboxRelay:
    """Publishes committed outbox rows in order, deleting each batch once acknowledged."""

    def __init__(
        self,
        *,
        service: str,
        settings: KafkaSettings,
        sessions: sessionmaker[Session],
        outbox: Outbox,
        batch_size: int = 500,
        # Rows added in this process wake the relay at commit (Outbox.wakeup), so the poll is
        # only a safety net (rows left by a crash); polling less keeps idle services off the DB.
        poll_interval: float = 1.0,
    ) -> None:
        self.service = service
        self.settings = settings
        self.sessions = sessions
        self.outbox = outbox
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer: Any = None
        self._lock_connection: Any = None
        self._lock_checked = 0.0
        self._lock_file: int | None = None
        self._lock_file_held = False

    def is_leader(self) -> bool:
        """Whether this relay may publish: one relay per database at a time.

        Replicas of a service share one outbox table; if each relay published it, rows would
        go out twice (consumers drop the copy, at a cost) and out of order across relays. On
        PostgreSQL the publishing relay holds a session advisory lock on a connection kept for
        the purpose: the others stand by and try again each poll, so a relay that dies (its
        connection closes, the lock goes with it) is replaced within a poll interval. On SQLite
        (worker processes of one service on one host share the file) the same is done with an
        exclusive flock on `<database>.relay.lock`, which the kernel releases when its holder
        dies. An in-memory SQLite database is one process's own: always the leader.
        """
        engine = self.sessions.kw.get("bind")
        if engine is None:
            return True
        dialect = engine.dialect.name
        if dialect == "sqlite":
            database = engine.url.database
            if not database or database == ":memory:" or database.startswith("file:"):
                return True
            return self._lock_file_or_standby(f"{database}.relay.lock")
        if dialect == "postgresql":
            return self._advisory_lock_or_standby(engine)
        return True

    def _advisory_lock_or_standby(self, engine: Any) -> bool:
        """Hold (or try once more to take) the PostgreSQL session advisory lock that makes this
        relay publish."""
        if self._lock_connection is not None:
            # The lock lives as long as its connection: check that at most once a poll interval
            # rather than on every drain (a relay that lost it meanwhile only publishes rows
            # twice, which consumers drop).
            if time.monotonic() - self._lock_checked < self.poll_interval:
                return True
            try:
                self._lock_connection.exec_driver_sql("SELECT 1")
                self._lock_checked = time.monotonic()
                return True
            except Exception:  # noqa: BLE001 - connection lost (database restart): lock lost too
                self._release_leadership()
        connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            held = connection.execute(
                text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"),
                {"key": f"lienthong.outbox-relay.{self.outbox.table.name}"},
            ).scalar()
        except Exception:
            connection.invalidate()
            raise
        if held:
            self._lock_connection = connection
            self._lock_checked = time.monotonic()
            log.info("outbox relay of %s is the publishing relay for its database", self.service)
            return True
        connection.close()
        return False

    def _lock_file_or_standby(self, path: str) -> bool:
        """Hold (or try once more to take) the exclusive flock that makes this relay publish."""
        if self._lock_file_held:
            return True
        if self._lock_file is None:
            # O_CLOEXEC: a worker process started later must not inherit (and keep) the lock.
            self._lock_file = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # another relay leads; try again next poll
        self._lock_file_held = True
        log.info("outbox relay of %s is the publishing relay for its database (%s)", self.service, path)
        return True

    def _release_leadership(self) -> None:
        if self._lock_file is not None:
            # Closing the descriptor releases the flock. The file stays: unlinking it could let
            # a standby lock a name another relay is about to open afresh.
            os.close(self._lock_file)
            self._lock_file = None
            self._lock_file_held = False
        if self._lock_connection is not None:
            try:
                # Released here and now: closing the socket alone frees the lock only once the
                # server notices, and a standby asking meanwhile would be refused.
                self._lock_connection.exec_driver_sql("SELECT pg_advisory_unlock_all()")
            except Exception:
                log.debug("unlocking the relay's lock connection raised", exc_info=True)
            try:
                self._lock_connection.invalidate()  # closes the session: the lock is released
            except Exception:
                log.debug("closing the relay's lock connection raised", exc_info=True)
            self._lock_connection = None

    def _producer_or_connect(self) -> Any:
        if self._producer is None:
            self._producer = KafkaProducer(
                **self.settings.client_options(),
                client_id=f"lienthong-{self.service}-relay",
                acks="all",
                retries=5,
                linger_ms=2,
                max_in_flight_requests_per_connection=1,
            )
        return self._producer

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.outbox.wakeup.set()
        if self._thread:
            self._thread.join(timeout)
        if self._producer is not None:
            self._producer.close(timeout=5)
        self._release_leadership()

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                # Cleared before looking, so a commit during the drain is never missed.
                self.outbox.wakeup.clear()
                published = self.drain()
                backoff = 0.5
            except Exception:
                log.exception("outbox relay failed; retrying in %.1fs", backoff)
                self._reset_producer()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if published == 0:
                self.outbox.wakeup.wait(self.poll_interval)

    def _reset_producer(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=1)
            except Exception:
                log.debug("closing a failed producer raised", exc_info=True)
            self._producer = None

    def publish_pending(self) -> int:
        """Publish one batch; returns how many rows were published."""
        if not self.is_leader():
            return 0
        with self.sessions() as session:
            batch = self.outbox.fetch_batch(session, self.batch_size)
        if not batch:
            return 0
        self._publish(batch)
        with self.sessions() as session, session.begin():
            self.outbox.delete_upto(session, [row[0] for row in batch])
        return len(batch)

    def drain(self, max_batches: int = 100) -> int:
        """Publish until the outbox is empty (or `max_batches`); returns how many rows.

        Deleting an acknowledged batch and fetching the next one share one transaction, so a
        busy outbox costs one transaction per batch. A relay that is not the leader publishes
        nothing (see is_leader).
        """
        if not self.is_leader():
            return 0
        with self.sessions() as session:
            batch = self.outbox.fetch_batch(session, self.batch_size)
        published = 0
        for _ in range(max_batches):
            if not batch or self._stop.is_set():
                break
            self._publish(batch)
            published += len(batch)
            with self.sessions() as session, session.begin():
                self.outbox.delete_upto(session, [row[0] for row in batch])
                batch = self.outbox.fetch_batch(session, self.batch_size)
        return published

    def _publish(self, batch: list[tuple[int, str, str, bytes, str]]) -> None:
        """Send a batch and wait until the broker has acknowledged every record."""
        producer = self._producer_or_connect()
        futures = []
        for _row_id, topic, key, payload, traceparent in batch:
            parent = propagate.extract({"traceparent": traceparent} if traceparent else {})
            with tracer.start_as_current_span(
                f"{topic} publish",
                context=parent,
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "publish",
                    "messaging.destination.name": topic,
                    "messaging.kafka.message.key": key,
                    "lienthong.document.id": key,
                    **_payload_attributes(payload),
                },
            ):
                carrier: dict[str, str] = {}
                propagate.inject(carrier)
                headers = [(k, v.encode()) for k, v in carrier.items()]
                # Who published it: consumers skip a record not from its topic's owner.
                headers.append((PRODUCER_HEADER, self.service.encode()))
                futures.append(producer.send(topic, key=key.encode(), value=payload, headers=headers))
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=30)  # raises if the broker did not acknowledge
        for _row_id, topic, _key, payload, _traceparent in batch:
            metrics.observe_published(topic, payload)


_batch = threading.local()


@contextmanager
def prepared(event: events_pb2.Event) -> Iterator[None]:
    """Inside a `before_batch` hook: work done ahead for `event` joins the event's trace.

    A span "<topic> prepare", child of the producer's context (as the CONSUMER span will be),
    so calls made here (fetching a package, say) are part of the document's journey.
    """
    found = getattr(_batch, "contexts", {}).get(event.event_id)
    if found is None:
        yield
        return
    topic, parent = found
    producer_span = trace.get_current_span(parent).get_span_context()
    with tracer.start_as_current_span(
        f"{topic} prepare",
        context=parent,
        kind=SpanKind.INTERNAL,
        links=[Link(producer_span)] if producer_span.is_valid else [],
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            **event_attributes(event),
        },
    ):
        yield


def is_transient(error: BaseException) -> bool:
    """True for failures of the surroundings (database, broker, another service), not the event.

    A transient failure is retried for as long as it lasts and never parks the event: a
    directory or database outage must not send every document to the dead letters. Anything
    else (a bug, a constraint violation, an undecodable payload) is the event's own fault.
    An exception may decide for itself with a boolean `transient` attribute.
    """
    import grpc
    from sqlalchemy import exc as sa_exc

    transient_codes = {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    }
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        marked = getattr(current, "transient", None)
        if isinstance(marked, bool):
            return marked
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sa_exc.OperationalError | sa_exc.TimeoutError | sa_exc.DisconnectionError):
            return True
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        if isinstance(current, grpc.RpcError) and callable(getattr(current, "code", None)):
            try:
                code = current.code()
            except Exception:  # noqa: BLE001 - an RpcError without a usable code
                code = None
            if code in transient_codes:
                return True
        current = current.__cause__ or current.__context__
    return False


def _describe(error: BaseException) -> str:
    return f"{type(error).__qualname__}: {error}"[:4000]


class EventConsumer:
    """Consumes topics as one group; each event handled once, in a transaction with its effect.

    A poll's records are handled in as few database transactions as possible: each chunk of
    the batch (at most `max_batch_events` events, `max_batch_bytes` of payload, or
    `max_batch_seconds` of handling) is one transaction — the events' processed-event claims,
    each event's handler(session, event) under its own CONSUMER span, one commit. Offsets are
    committed to Kafka only after the database has committed, so a crash re-delivers; the
    processed-event record makes the re-delivery a no-op. If anything in a chunk fails, the
    chunk is rolled back and re-done event by event, each in its own transaction with retries,
    so a bad event delays the good ones of its batch by one attempt only.

    An event whose handler fails `max_attempts` times for a reason of its own (not a transient
    outage, see `is_transient`) is parked in the service's `dead_letters` table, counted,
    logged, and its offset committed; `lienthong-<svc> dead-letters redrive` handles it again.
    """

    def __init__(
        self,
        *,
        service: str,
        group: str,
        topics: list[str],
        settings: KafkaSettings,
        sessions: sessionmaker[Session],
        outbox: Outbox,
        handler: Handler,
        max_attempts: int = 8,
        before_batch: BatchHook | None = None,
        guard: AbstractContextManager[Any] | None = None,
        max_poll_records: int = 500,
        max_batch_events: int = 500,
        max_batch_bytes: int = 8 * 1024 * 1024,
        max_batch_seconds: float = 0.5,
        poll_timeout_ms: int = 500,
        retry_delay: float = 0.2,
        commit_interval: float = 1.0,
    ) -> None:
        self.service = service
        self.group = group
        self.topics = topics
        self.settings = settings
        self.sessions = sessions
        self.outbox = outbox
        self.handler = handler
        self.before_batch = before_batch
        self.guard = guard
        self.max_attempts = max_attempts
        self.max_poll_records = max_poll_records
        self.max_batch_events = max(1, max_batch_events)
        self.max_batch_bytes = max_batch_bytes
        self.max_batch_seconds = max_batch_seconds
        self.poll_timeout_ms = poll_timeout_ms
        self.retry_delay = retry_delay
        self.commit_interval = commit_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"consumer-{self.group}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def _connect(self) -> Any:
        consumer = KafkaConsumer(
            *self.topics,
            **self.settings.client_options(),
            group_id=self.group,
            client_id=f"lienthong-{self.service}",
            enable_auto_commit=False,
            auto_offset_reset=self.settings.auto_offset_reset,
            max_poll_records=self.max_poll_records,
            fetch_max_wait_ms=self.settings.consumer_fetch_max_wait_ms,
            session_timeout_ms=10000,
            heartbeat_interval_ms=3000,
        )
        return consumer

    def _run(self) -> None:
        """Poll, handle, and commit the group's offsets — not after every poll, but once the
        consumer has caught up (a poll came back empty), at most every `commit_interval` while
        records keep coming, and when stopping. An offset only says where a restarted member
        resumes: every handled event is already claimed in the database, so events handled but
        not yet committed (a crash, a rebalance) come back as duplicates and change nothing.
        One OffsetCommit per poll was a broker round trip and a log append per poll.
        """
        consumer: Any = None
        uncommitted = False
        committed_at = time.monotonic()
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._connect()
                    uncommitted = False
                batches = consumer.poll(timeout_ms=self.poll_timeout_ms)
                polled = [r for records in batches.values() for r in records] if batches else []
                records = self.from_owners(polled)
                if records:
                    if self.before_batch is not None:
                        self._prepare(records)
                    self.handle_records(records)
                if polled:
                    uncommitted = True  # past skipped records too: they are never applied
                if uncommitted and (not polled or time.monotonic() - committed_at >= self.commit_interval):
                    consumer.commit()
                    uncommitted = False
                    committed_at = time.monotonic()
                metrics.record_consumer_lag(consumer, self.group)
            except Exception:
                log.exception("consumer %s failed; reconnecting", self.group)
                if consumer is not None:
                    try:
                        consumer.close(autocommit=False)
                    except Exception:
                        log.debug("closing a failed consumer raised", exc_info=True)
                consumer = None
                self._stop.wait(1.0)
        if consumer is not None:
            if uncommitted:
                try:
                    consumer.commit()  # every polled record was handled: resume after them
                except Exception:
                    log.warning("consumer %s: committing offsets on stop failed", self.group, exc_info=True)
            consumer.close(autocommit=False)

    def from_owners(self, records: list[Any]) -> list[Any]:
        """The records whose producer header names their topic's owner; the others are skipped.

        A skipped record is logged and counted (lienthong_consumer_foreign_records_total), never
        handled; its offset is committed with the batch's. The broker's ACLs already refuse a
        write by anyone but the owner: this catches a misconfigured principal (docs/adr/0071).
        """
        kept = []
        for record in records:
            if from_owner(record.topic, record.headers):
                kept.append(record)
                continue
            producer = producer_of(record.headers)
            label = producer if producer in SERVICES else ("missing" if producer is None else "unknown")
            metrics.count_foreign_record(group=self.group, topic=record.topic, producer=label)
            log.warning(
                "consumer %s skipped %s partition %s offset %s: producer header %s, owner is %s",
                self.group,
                record.topic,
                getattr(record, "partition", "?"),
                getattr(record, "offset", "?"),
                repr(producer[:64]) if producer is not None else "missing",
                owner_of(record.topic),
            )
        return kept

    def _prepare(self, records: list[Any]) -> None:
        """Give the batch to `before_batch` (e.g. to start CPU work in parallel); never fails it.

        The effects still happen in handle_records(), in the consumer's transactions.
        """
        assert self.before_batch is not None
        events = []
        contexts = {}
        for r in records:
            try:
                event = events_pb2.Event.FromString(r.value)
            except Exception:  # noqa: BLE001 - an undecodable record is parked by the handling
                log.debug("undecodable record at %s offset %s", r.topic, getattr(r, "offset", "?"))
                continue
            events.append(event)
            contexts[event.event_id] = (r.topic, propagate.extract(_headers_to_carrier(r.headers)))
        # prepared(event) inside the hook puts its work for one event into that event's trace.
        _batch.contexts = contexts
        try:
            self.before_batch(events)
        except Exception:
            log.exception("consumer %s: preparing a batch failed; handling it event by event", self.group)
        finally:
            _batch.contexts = {}

    # -- batches ---------------------------------------------------------------------------------

    def transaction_guard(self) -> AbstractContextManager[Any]:
        """Held around each of the consumer's transactions (a batch, or one event).

        `guard` is for a caller that must hold the consumer between two transactions, never
        inside one (statistics' rebuild pausing the live consumer): a re-entrant lock, say.
        """
        return self.guard if self.guard is not None else nullcontext()

    def _batched(self) -> bool:
        # A subclass that wraps handle() (e.g. to hold a lock around each event) relies on every
        # event going through it: keep it on the event-by-event path.
        return type(self).handle is EventConsumer.handle

    def handle_records(self, records: list[Any]) -> None:
        """Handle polled records in order: chunks in one transaction each, else one by one.

        Returns once every record is handled, parked or (a duplicate) skipped; raises when a
        record keeps failing transiently (the caller reconnects and Kafka re-delivers).
        """
        if not self._batched():
            for record in records:
                self._handle_with_retries(record)
            return
        position = 0
        while position < len(records):
            chunk = self._next_chunk(records, position)
            try:
                handled = self.handle_batch(chunk)
            except Exception as error:  # noqa: BLE001 - any failure: redo the chunk event by event
                log.warning(
                    "consumer %s: a batch of %d events failed (%s); handling them one by one",
                    self.group,
                    len(chunk),
                    _describe(error),
                )
                for record in chunk:
                    self._handle_with_retries(record)
                handled = len(chunk)
            position += handled

    def _next_chunk(self, records: list[Any], start: int) -> list[Any]:
        size = 0
        end = start
        while end < len(records) and end - start < self.max_batch_events:
            size += len(records[end].value or b"")
            if end > start and size > self.max_batch_bytes:
                break
            end += 1
        return records[start:end]

    def handle_batch(self, records: list[Any]) -> int:
        """Handle records in ONE transaction; returns how many (a prefix) it handled.

        Stops early (committing what it did) after `max_batch_seconds` of handling, so a
        transaction never holds its locks for long. Raises — having rolled everything back —
        if any record fails to decode or any handler raises.
        """
        if not records:
            return 0
        events = [events_pb2.Event.FromString(r.value) for r in records]
        contexts = [propagate.extract(_headers_to_carrier(r.headers)) for r in records]
        links = []
        for parent in contexts[:64]:
            producer_span = trace.get_current_span(parent).get_span_context()
            if producer_span.is_valid:
                links.append(Link(producer_span))
        outcomes: list[tuple[str, events_pb2.Event, float, str]] = []
        with tracer.start_as_current_span(
            f"{self.group} batch",
            kind=SpanKind.INTERNAL,
            links=links,
            attributes={
                "messaging.system": "kafka",
                "messaging.consumer.group.name": self.group,
                "messaging.batch.message_count": len(records),
            },
        ) as batch_span:
            started = time.perf_counter()
            with self.transaction_guard(), self.sessions() as session, session.begin():
                fresh = self.outbox.claim_many(
                    session, consumer=self.group, event_ids=[e.event_id for e in events]
                )
                seen: set[str] = set()
                done = 0
                for record, event, parent in zip(records, events, contexts, strict=True):
                    if done and time.perf_counter() - started > self.max_batch_seconds:
                        break
                    first = event.event_id in fresh and event.event_id not in seen
                    seen.add(event.event_id)
                    outcomes.append(
                        (record.topic, event, *self._process(session, record.topic, event, parent, first))
                    )
                    done += 1
                if done < len(records):
                    # Claimed in this transaction but left for the next one: release them.
                    later = {e.event_id for e in events[done:]} & fresh - seen
                    self.outbox.unclaim(session, consumer=self.group, event_ids=sorted(later))
                committing = time.perf_counter()
            commit_share = (time.perf_counter() - committing) / max(1, done)
            batch_span.set_attribute("lienthong.batch.handled", done)
        for topic, event, seconds, outcome in outcomes:
            metrics.observe_consumed(
                group=self.group, topic=topic, event=event, seconds=seconds + commit_share, outcome=outcome
            )
        return done

    def _process(
        self, session: Session, topic: str, event: events_pb2.Event, parent: Any, first: bool
    ) -> tuple[float, str]:
        """One event of a batch under its CONSUMER span (the child of its producer's context)."""
        started = time.perf_counter()
        producer_span = trace.get_current_span(parent).get_span_context()
        token = otel_context.attach(parent)
        try:
            with tracer.start_as_current_span(
                f"{topic} process",
                kind=SpanKind.CONSUMER,
                links=[Link(producer_span)] if producer_span.is_valid else [],
                attributes=self._span_attributes(topic, event),
            ) as span:
                if not first:
                    span.set_attribute("lienthong.duplicate", True)
                    return time.perf_counter() - started, "duplicate"
                self.handler(session, event)
                return time.perf_counter() - started, "handled"
        finally:
            otel_context.detach(token)

    def _span_attributes(self, topic: str, event: events_pb2.Event) -> dict[str, Any]:
        return {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": topic,
            "messaging.consumer.group.name": self.group,
            "messaging.message.id": event.event_id,
            **event_attributes(event),
        }

    # -- one event at a time ----------------------------------------------------------------------

    def _handle_with_retries(self, record: Any) -> None:
        delay = self.retry_delay
        first_failed: Any = None
        attempt = 0
        while True:
            attempt += 1
            try:
                self.handle(record.topic, record.value, record.headers)
                return
            except Exception as error:
                first_failed = first_failed or now_utc()
                if self._stop.is_set():
                    raise  # stopping: never park for want of time; Kafka re-delivers
                if attempt >= self.max_attempts:
                    if is_transient(error) or self.outbox.dead_letters is None:
                        raise  # the consumer reconnects; the event comes back
                    self._park(record, error, attempt, first_failed)
                    return
                log.warning(
                    "handling %s offset %s failed (attempt %d of %d): %s; retrying",
                    record.topic,
                    getattr(record, "offset", "?"),
                    attempt,
                    self.max_attempts,
                    _describe(error),
                    exc_info=attempt == 1,
                )
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _park(self, record: Any, error: BaseException, attempts: int, first_failed: Any) -> None:
        """Put a poison message in the dead letters, so its partition moves on."""
        value = bytes(record.value or b"")
        try:
            event_id = events_pb2.Event.FromString(value).event_id
        except Exception:  # noqa: BLE001 - an undecodable payload is parked as it is
            event_id = ""
        key = (
            record.key.decode("utf-8", "replace") if isinstance(record.key, bytes) else str(record.key or "")
        )
        carrier = _headers_to_carrier(record.headers)
        with self.sessions() as session, session.begin():
            row = self.outbox.park(
                session,
                consumer=self.group,
                topic=record.topic,
                partition=int(getattr(record, "partition", 0)),
                offset=int(getattr(record, "offset", -1)),
                key=key,
                event_id=event_id,
                payload=value,
                traceparent=carrier.get("traceparent", ""),
                error=_describe(error),
                attempts=attempts,
                first_failed_at=first_failed,
            )
        metrics.count_dead_letter(group=self.group, topic=record.topic)
        log.error(
            "DEAD LETTER: consumer %s parked %s partition %s offset %s (event %s) after %d attempts: %s; "
            "re-drive with `lienthong-%s dead-letters redrive --id %d`",
            self.group,
            record.topic,
            getattr(record, "partition", "?"),
            getattr(record, "offset", "?"),
            event_id or "undecodable",
            attempts,
            _describe(error),
            self.service,
            row,
            exc_info=error,
        )

    def handle(self, topic: str, value: bytes, headers: list[tuple[str, bytes]] | None) -> bool:
        """Handle one message in its own transaction; False when it had been handled before."""
        event = events_pb2.Event.FromString(value)
        started = time.perf_counter()
        outcome = "failed"
        parent = propagate.extract(_headers_to_carrier(headers))
        producer_span = trace.get_current_span(parent).get_span_context()
        links = [Link(producer_span)] if producer_span.is_valid else []
        token = otel_context.attach(parent)
        try:
            with tracer.start_as_current_span(
                f"{topic} process",
                kind=SpanKind.CONSUMER,
                links=links,
                attributes=self._span_attributes(topic, event),
            ) as span:
                with self.transaction_guard(), self.sessions() as session, session.begin():
                    if not self.outbox.claim_first_time(
                        session, consumer=self.group, event_id=event.event_id
                    ):
                        span.set_attribute("lienthong.duplicate", True)
                        outcome = "duplicate"
                        return False
                    self.handler(session, event)
                outcome = "handled"
                return True
        finally:
            otel_context.detach(token)
            metrics.observe_consumed(
                group=self.group,
                topic=topic,
                event=event,
                seconds=time.perf_counter() - started,
                outcome=outcome,
            )

    # -- dead letters ------------------------------------------------------------------------------

    def dead_letters(self, *, states: tuple[str, ...] = (PARKED,), limit: int = 1000) -> list[DeadLetter]:
        with self.sessions() as session:
            return self.outbox.list_dead_letters(session, consumer=self.group, states=states, limit=limit)

    def redrive(self, ids: list[int] | None = None) -> list[tuple[int, str]]:
        """Handle parked events again; see `redrive_dead_letters`."""
        return redrive_dead_letters(self, ids=ids)


def redrive_dead_letters(consumer: EventConsumer, *, ids: list[int] | None = None) -> list[tuple[int, str]]:
    """Re-handle this consumer group's parked events (all, or the given row ids), oldest first.

    Each in its own transaction with its processed-event claim, under a CONSUMER span in the
    event's original trace: `handled` (the row becomes `redriven`), `duplicate` (it had been
    handled meanwhile; also `redriven`) or `failed: <error>` (still parked, attempts + 1).
    Returns (row id, outcome) pairs.
    """
    results: list[tuple[int, str]] = []
    with consumer.sessions() as session:
        parked = consumer.outbox.list_dead_letters(
            session, consumer=consumer.group, states=(PARKED,), ids=ids or (), limit=100_000
        )
    for letter in parked:
        headers = [("traceparent", letter.traceparent.encode())] if letter.traceparent else []
        try:
            with consumer.sessions() as session, session.begin():
                first = _redrive_one(consumer, session, letter, headers)
                consumer.outbox.mark_redriven(session, letter.id)
            outcome = "handled" if first else "duplicate"
        except Exception as error:
            log.exception("re-driving dead letter %d failed", letter.id)
            with consumer.sessions() as session, session.begin():
                consumer.outbox.note_failed_redrive(session, letter.id, _describe(error))
            outcome = f"failed: {_describe(error)}"
        results.append((letter.id, outcome))
    return results


def _redrive_one(
    consumer: EventConsumer, session: Session, letter: DeadLetter, headers: list[tuple[str, bytes]]
) -> bool:
    event = events_pb2.Event.FromString(letter.payload)
    parent = propagate.extract(_headers_to_carrier(headers))
    token = otel_context.attach(parent)
    try:
        with tracer.start_as_current_span(
            f"{letter.topic} process",
            kind=SpanKind.CONSUMER,
            attributes={**consumer._span_attributes(letter.topic, event), "lienthong.redrive": True},
        ) as span:
            if not consumer.outbox.claim_first_time(
                session, consumer=consumer.group, event_id=event.event_id
            ):
                span.set_attribute("lienthong.duplicate", True)
                return False
            consumer.handler(session, event)
            return True
    finally:
        otel_context.detach(token)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
