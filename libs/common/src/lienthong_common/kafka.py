"""Kafka publishing (the outbox relay) and idempotent consumption, with W3C trace context.

The relay publishes outbox rows with a PRODUCER span whose parent is the trace context stored
with the row; a consumer's CONSUMER span is the child of the producer's context, plus a link,
so one document's journey through every service is one trace.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kafka import KafkaConsumer, KafkaProducer  # type: ignore[import-untyped]
from kafka.admin import KafkaAdminClient, NewTopic  # type: ignore[import-untyped]
from kafka.errors import TopicAlreadyExistsError  # type: ignore[import-untyped]
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind
from sqlalchemy.orm import Session, sessionmaker

from lienthong.events.v1 import events_pb2
from lienthong_common import metrics
from lienthong_common.outbox import ALL_TOPICS, Outbox
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
    admin = KafkaAdminClient(bootstrap_servers=settings.servers, client_id="lienthong-admin")
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

    def _producer_or_connect(self) -> Any:
        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self.settings.servers,
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

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                published = self.publish_pending()
                backoff = 0.5
            except Exception:
                log.exception("outbox relay failed; retrying in %.1fs", backoff)
                self._reset_producer()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if published == 0:
                self.outbox.wakeup.wait(self.poll_interval)
                self.outbox.wakeup.clear()

    def _reset_producer(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=1)
            except Exception:
                log.debug("closing a failed producer raised", exc_info=True)
            self._producer = None

    def publish_pending(self) -> int:
        """Publish one batch; returns how many rows were published."""
        with self.sessions() as session:
            batch = self.outbox.fetch_batch(session, self.batch_size)
        if not batch:
            return 0
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
                futures.append(producer.send(topic, key=key.encode(), value=payload, headers=headers))
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=30)  # raises if the broker did not acknowledge
        for _row_id, topic, _key, payload, _traceparent in batch:
            metrics.observe_published(topic, payload)
        with self.sessions() as session, session.begin():
            self.outbox.delete_upto(session, [row[0] for row in batch])
        return len(batch)


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


class EventConsumer:
    """Consumes topics as one group; each event handled once, in a transaction with its effect.

    Offsets are committed only after the handler's transaction has committed, so a crash
    re-delivers; the processed-events record makes the re-delivery a no-op.
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
    ) -> None:
        self.service = service
        self.group = group
        self.topics = topics
        self.settings = settings
        self.sessions = sessions
        self.outbox = outbox
        self.handler = handler
        self.before_batch = before_batch
        self.max_attempts = max_attempts
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
            bootstrap_servers=self.settings.servers,
            group_id=self.group,
            client_id=f"lienthong-{self.service}",
            enable_auto_commit=False,
            auto_offset_reset=self.settings.auto_offset_reset,
            max_poll_records=100,
            session_timeout_ms=10000,
            heartbeat_interval_ms=3000,
        )
        return consumer

    def _run(self) -> None:
        consumer: Any = None
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._connect()
                batches = consumer.poll(timeout_ms=500)
                if batches and self.before_batch is not None:
                    self._prepare([r for records in batches.values() for r in records])
                for records in batches.values():
                    for record in records:
                        self._handle_with_retries(record)
                if batches:
                    consumer.commit()
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
            consumer.close(autocommit=False)

    def _prepare(self, records: list[Any]) -> None:
        """Give the batch to `before_batch` (e.g. to start CPU work in parallel); never fails it.

        The effects still happen one event at a time, each in its own transaction, in handle().
        """
        assert self.before_batch is not None
        events = [events_pb2.Event.FromString(r.value) for r in records]
        # prepared(event) inside the hook puts its work for one event into that event's trace.
        _batch.contexts = {
            e.event_id: (r.topic, propagate.extract(_headers_to_carrier(r.headers)))
            for e, r in zip(events, records, strict=True)
        }
        try:
            self.before_batch(events)
        except Exception:
            log.exception("consumer %s: preparing a batch failed; handling it event by event", self.group)
        finally:
            _batch.contexts = {}

    def _handle_with_retries(self, record: Any) -> None:
        delay = 0.2
        for attempt in range(1, self.max_attempts + 1):
            try:
                self.handle(record.topic, record.value, record.headers)
                return
            except Exception:
                if attempt == self.max_attempts:
                    raise
                log.exception(
                    "handling %s offset %s failed (attempt %d); retrying",
                    record.topic,
                    record.offset,
                    attempt,
                )
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def handle(self, topic: str, value: bytes, headers: list[tuple[str, bytes]] | None) -> bool:
        """Handle one message; False when it had been handled before."""
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
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": topic,
                    "messaging.consumer.group.name": self.group,
                    "messaging.message.id": event.event_id,
                    **event_attributes(event),
                },
            ) as span:
                with self.sessions() as session, session.begin():
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


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
