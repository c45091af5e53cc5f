"""EventConsumer: a poll batch in one transaction, poison messages parked, re-drive, crashes.

Against real databases — a SQLite file and a fresh database on the shared PostgreSQL server
(infra/postgres.sh) — with an in-memory stand-in for kafka-python's consumer, so the offset
commit can be made to fail exactly between the database commit and the Kafka commit. (The
e2e crash-recovery test does the same with the real broker and SIGKILL.)
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, event, func, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from lienthong.events.v1 import events_pb2
from lienthong_common import metrics
from lienthong_common.db import make_engine, make_session_factory
from lienthong_common.kafka import EventConsumer, is_transient, redrive_dead_letters
from lienthong_common.kafka_access import PRODUCER_HEADER, owner_of
from lienthong_common.outbox import (
    PARKED,
    REDRIVEN,
    TOPIC_DELIVERIES,
    TOPIC_SUBMITTED,
    Outbox,
    install_after_commit_hooks,
    new_event,
)
from lienthong_common.settings import KafkaSettings
from lienthong_common.testing import throwaway_postgres

ROOT = Path(__file__).resolve().parents[3]
PGPORT = os.environ.get("PGPORT", "55432")
GROUP = "test-consumer"


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.headers:  # as the owner's relay stamps every record
            self.headers = [(PRODUCER_HEADER, (owner_of(self.topic) or "").encode())]


class Broker:
    """One partition's records and the group's committed offset, surviving reconnects."""

    def __init__(self, records: list[Record], *, fail_commits: int = 0) -> None:
        self.records = records
        self.committed = 0
        self.fail_commits = fail_commits
        self.connects = 0
        self.offset_commits = 0

    def connect(self, max_poll_records: int) -> FakeConsumer:
        self.connects += 1
        return FakeConsumer(self, max_poll_records)


class FakeConsumer:
    def __init__(self, broker: Broker, max_poll_records: int) -> None:
        self.broker = broker
        self.position = broker.committed  # a new member starts at the committed offset
        self.max_poll_records = max_poll_records
        self.tp = TP(TOPIC_SUBMITTED, 0)

    def poll(self, timeout_ms: int = 0, **_: Any) -> dict[Any, list[Record]]:
        batch = self.broker.records[self.position : self.position + self.max_poll_records]
        if not batch:
            time.sleep(0.01)
            return {}
        self.position += len(batch)
        return {self.tp: batch}

    def commit(self, offsets: Any = None) -> None:
        if self.broker.fail_commits:
            self.broker.fail_commits -= 1
            raise RuntimeError("killed between the database commit and the offset commit")
        self.broker.offset_commits += 1
        self.broker.committed = self.position

    def assignment(self) -> set[Any]:
        return set()

    def close(self, autocommit: bool = False) -> None:
        pass


@dataclass
class Store:
    sessions: sessionmaker[Session]
    outbox: Outbox
    effects: Table
    commits: list[int]

    def effect_counts(self) -> dict[str, int]:
        with self.sessions() as session:
            rows = session.execute(
                select(self.effects.c.event_id, func.count()).group_by(self.effects.c.event_id)
            ).all()
        return {event_id: count for event_id, count in rows}

    def processed(self) -> set[str]:
        with self.sessions() as session:
            return set(
                session.execute(
                    select(self.outbox.processed.c.event_id).where(self.outbox.processed.c.consumer == GROUP)
                ).scalars()
            )


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'consumer.db'}"
        else:
            url = stack.enter_context(throwaway_postgres("consumer_it"))
        yield from _store(url)


def _store(url: str) -> Iterator[Store]:
    metadata = MetaData()
    outbox = Outbox.for_metadata(metadata)
    effects = Table(
        "effects",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False),
    )
    engine = make_engine(url)
    metadata.create_all(engine)
    sessions = make_session_factory(engine)
    install_after_commit_hooks(sessions)
    commits: list[int] = []
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    try:
        yield Store(sessions, outbox, effects, commits)
    finally:
        engine.dispose()


class Handler:
    """Writes one effect row and queues one outbox event; fails for the events it is told to."""

    def __init__(self, store: Store, *, poison: set[str] | None = None, error: Exception | None = None):
        self.store = store
        self.poison = poison or set()
        self.error = error or ValueError("this event cannot be handled")
        self.calls: list[str] = []

    def __call__(self, session: Session, event: events_pb2.Event) -> None:
        self.calls.append(event.event_id)
        session.execute(insert(self.store.effects).values(event_id=event.event_id))
        out = new_event(event.document_id)
        out.delivery_updated.recipient_code = "000.00.02.H49"
        self.store.outbox.add(session, topic=TOPIC_DELIVERIES, key=event.document_id, event=out)
        if event.event_id in self.poison:
            raise self.error


def make_records(count: int, start: int = 0) -> list[Record]:
    records = []
    for offset in range(start, start + count):
        e = new_event(str(uuid.uuid4()))
        e.submitted.sender_code = "000.00.00.H49"
        records.append(Record(TOPIC_SUBMITTED, 0, offset, e.document_id.encode(), e.SerializeToString()))
    return records


def event_id(record: Record) -> str:
    return events_pb2.Event.FromString(record.value).event_id


def make_consumer(store: Store, handler: Any, broker: Broker | None = None, **options: Any) -> EventConsumer:
    options.setdefault("retry_delay", 0.01)
    options.setdefault("max_attempts", 3)
    options.setdefault("max_batch_seconds", 60.0)  # a loaded test machine must not split batches

    class Fed(EventConsumer):
        def _connect(self) -> Any:
            assert broker is not None
            return broker.connect(self.max_poll_records)

    return Fed(
        service="test",
        group=GROUP,
        topics=[TOPIC_SUBMITTED],
        settings=KafkaSettings(),
        sessions=store.sessions,
        outbox=store.outbox,
        handler=handler,
        **options,
    )


def run_until_committed(consumer: EventConsumer, broker: Broker, timeout: float = 60) -> None:
    consumer.start()
    try:
        deadline = time.monotonic() + timeout
        while broker.committed < len(broker.records):
            assert time.monotonic() < deadline, f"committed {broker.committed} of {len(broker.records)}"
            time.sleep(0.02)
    finally:
        consumer.stop()


def test_a_poll_batch_is_one_transaction(store: Store) -> None:
    handler = Handler(store)
    records = make_records(40)
    broker = Broker(records)
    consumer = make_consumer(store, handler, broker, max_poll_records=100)
    run_until_committed(consumer, broker)
    assert store.effect_counts() == {event_id(r): 1 for r in records}
    assert store.processed() == {event_id(r) for r in records}
    assert len(store.commits) == 1  # claims, 40 effects, 40 outbox rows: one commit
    with store.sessions() as session:
        assert session.execute(select(func.count()).select_from(store.outbox.table)).scalar_one() == 40


def test_batches_are_capped_by_count_and_bytes(store: Store) -> None:
    handler = Handler(store)
    records = make_records(25)
    consumer = make_consumer(store, handler, max_batch_events=10)
    consumer.handle_records(records)
    assert len(store.commits) == 3  # 10 + 10 + 5
    store.commits.clear()
    more = make_records(6)
    size = len(more[0].value)
    consumer = make_consumer(store, handler, max_batch_bytes=size * 2)
    consumer.handle_records(more)
    assert len(store.commits) == 3  # two records' worth of bytes per transaction
    assert set(store.effect_counts().values()) == {1}


def test_the_time_cap_commits_early_and_releases_the_rest(store: Store) -> None:
    handler = Handler(store)
    records = make_records(5)
    consumer = make_consumer(store, handler, max_batch_seconds=0.0)
    assert consumer.handle_batch(records) == 1  # at least one event per transaction
    assert store.processed() == {event_id(records[0])}  # the others' claims were released
    consumer.handle_records(records)  # the first is now a duplicate; the rest one per commit
    assert store.effect_counts() == {event_id(r): 1 for r in records}
    assert handler.calls == [event_id(r) for r in records]


def test_a_duplicate_inside_one_batch_and_a_redelivered_batch_are_no_ops(store: Store) -> None:
    handler = Handler(store)
    records = make_records(5)
    consumer = make_consumer(store, handler)
    consumer.handle_records([*records, records[2]])  # the relay published one event twice
    consumer.handle_records(records)  # the whole batch again
    assert store.effect_counts() == {event_id(r): 1 for r in records}
    assert len(handler.calls) == 5


def test_a_poison_event_is_parked_and_the_others_handled_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[tuple[str, str]] = []
    monkeypatch.setattr(metrics, "count_dead_letter", lambda *, group, topic: counted.append((group, topic)))
    records = make_records(9)
    bad = event_id(records[4])
    handler = Handler(store, poison={bad})
    broker = Broker(records)
    consumer = make_consumer(store, handler, broker, max_attempts=3)
    run_until_committed(consumer, broker)  # the partition moves on past the poison message

    good = {event_id(r) for r in records} - {bad}
    assert store.effect_counts() == {e: 1 for e in good}
    assert store.processed() == good
    # One batch, rolled back at the bad event, then each event alone (the bad one max_attempts
    # times): those before it were handled twice (once rolled back), those after it once.
    assert handler.calls.count(bad) == 1 + 3
    assert [handler.calls.count(event_id(r)) for r in records] == [2, 2, 2, 2, 4, 1, 1, 1, 1]
    assert counted == [(GROUP, TOPIC_SUBMITTED)]
    [letter] = consumer.dead_letters()
    assert (letter.topic, letter.partition, letter.offset, letter.event_id) == (TOPIC_SUBMITTED, 0, 4, bad)
    assert letter.payload == records[4].value and letter.key == records[4].key.decode()
    assert letter.attempts == 3 and letter.state == PARKED and "ValueError" in letter.error
    assert letter.first_failed_at <= letter.last_failed_at

    # Re-driven once the cause is fixed: handled in the original consumer's name, exactly once.
    handler.poison.clear()
    assert redrive_dead_letters(consumer) == [(letter.id, "handled")]
    assert store.effect_counts() == {e: 1 for e in good | {bad}}
    assert consumer.dead_letters() == []
    [done] = consumer.dead_letters(states=(REDRIVEN,))
    assert done.redriven_at is not None
    assert consumer.redrive() == []  # nothing left parked


def test_records_not_from_the_topics_owner_are_skipped_counted_and_committed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[tuple[str, str, str]] = []
    monkeypatch.setattr(
        metrics,
        "count_foreign_record",
        lambda *, group, topic, producer: counted.append((group, topic, producer)),
    )
    records = make_records(5)
    # The submitted topic is the docstore's: a record from routing, one from a name no service
    # has, and one with no producer header at all are never applied.
    records[1].headers = [(PRODUCER_HEADER, b"routing")]
    records[2].headers = [(PRODUCER_HEADER, b"\xffintruder")]
    records[3].headers = [("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")]
    handler = Handler(store)
    broker = Broker(records)
    consumer = make_consumer(store, handler, broker, max_poll_records=100)
    run_until_committed(consumer, broker)  # the offsets move on past the skipped records

    owned = {event_id(records[0]), event_id(records[4])}
    assert store.effect_counts() == {e: 1 for e in owned}
    assert store.processed() == owned  # skipped ids are not claimed: nothing of them recorded
    assert set(handler.calls) == owned
    assert counted == [
        (GROUP, TOPIC_SUBMITTED, "routing"),
        (GROUP, TOPIC_SUBMITTED, "unknown"),
        (GROUP, TOPIC_SUBMITTED, "missing"),
    ]
    assert consumer.dead_letters() == []


def test_a_failed_redrive_leaves_the_row_parked(store: Store) -> None:
    records = make_records(1)
    bad = event_id(records[0])
    handler = Handler(store, poison={bad})
    consumer = make_consumer(store, handler, max_attempts=2)
    consumer.handle_records(records)
    [letter] = consumer.dead_letters()
    [(row, outcome)] = consumer.redrive([letter.id])
    assert row == letter.id and outcome.startswith("failed: ValueError")
    [again] = consumer.dead_letters()
    assert again.attempts == letter.attempts + 1 and again.state == PARKED
    assert store.effect_counts() == {}
    # Parked again after a re-delivery (a crash before the offset commit): one row, attempts add up.
    consumer.handle_records(records)
    [same] = consumer.dead_letters()
    assert same.id == letter.id and same.attempts == again.attempts + 2


def test_an_undecodable_message_is_parked(store: Store) -> None:
    records = make_records(3)
    records[1] = Record(TOPIC_SUBMITTED, 0, 1, b"k", b"\xff\xff not protobuf")
    handler = Handler(store)
    consumer = make_consumer(store, handler, max_attempts=2)
    consumer.handle_records(records)
    [letter] = consumer.dead_letters()
    assert letter.offset == 1 and letter.event_id == "" and letter.payload == records[1].value
    assert set(store.effect_counts()) == {event_id(records[0]), event_id(records[2])}


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("SELECT 1", {}, Exception("database is locked")),
        ConnectionResetError("the directory went away"),
    ],
)
def test_a_transient_failure_is_never_parked(store: Store, error: Exception) -> None:
    records = make_records(3)
    handler = Handler(store, poison={event_id(records[1])}, error=error)
    consumer = make_consumer(store, handler, max_attempts=2)
    with pytest.raises(type(error)):
        consumer.handle_records(records)  # the consumer reconnects; Kafka re-delivers
    assert consumer.dead_letters() == []
    assert set(store.effect_counts()) == {event_id(records[0])}


def test_is_transient() -> None:
    class Rpc(grpc.RpcError):
        def __init__(self, code: grpc.StatusCode) -> None:
            self._code = code

        def code(self) -> grpc.StatusCode:
            return self._code

    assert is_transient(Rpc(grpc.StatusCode.UNAVAILABLE))
    assert is_transient(Rpc(grpc.StatusCode.DEADLINE_EXCEEDED))
    assert not is_transient(Rpc(grpc.StatusCode.INVALID_ARGUMENT))
    assert not is_transient(ValueError("bad"))
    try:
        try:
            raise TimeoutError("slow")
        except TimeoutError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert is_transient(outer)

    class Marked(Exception):
        transient = False

    assert not is_transient(Marked())


def test_a_crash_between_the_database_commit_and_the_offset_commit(store: Store) -> None:
    handler = Handler(store)
    records = make_records(30)
    broker = Broker(records, fail_commits=2)  # twice: the batch comes back twice
    consumer = make_consumer(store, handler, broker, max_poll_records=30)
    run_until_committed(consumer, broker)
    assert broker.connects == 3
    assert store.effect_counts() == {event_id(r): 1 for r in records}
    assert handler.calls == [event_id(r) for r in records]  # re-deliveries: claims only
    with store.sessions() as session:
        assert session.execute(select(func.count()).select_from(store.outbox.table)).scalar_one() == 30


def test_offsets_are_committed_once_caught_up_not_after_every_poll(store: Store) -> None:
    handler = Handler(store)
    records = make_records(30)
    broker = Broker(records)
    consumer = make_consumer(store, handler, broker, max_poll_records=10, commit_interval=3600.0)
    run_until_committed(consumer, broker)
    assert len(store.commits) == 3  # one transaction per poll of 10
    assert broker.offset_commits == 1  # and one offset commit, when a poll came back empty
    assert store.effect_counts() == {event_id(r): 1 for r in records}


def test_stopping_during_retries_never_parks(store: Store) -> None:
    records = make_records(1)
    handler = Handler(store, poison={event_id(records[0])})
    consumer = make_consumer(store, handler, max_attempts=1000, retry_delay=0.05)
    raised: list[BaseException] = []

    def work() -> None:
        try:
            consumer.handle_records(records)
        except ValueError as error:
            raised.append(error)

    thread = threading.Thread(target=work)
    thread.start()
    time.sleep(0.2)
    consumer._stop.set()
    thread.join(10)
    assert not thread.is_alive() and len(raised) == 1  # given back to Kafka, not parked
    assert consumer.dead_letters() == []


def test_a_subclass_wrapping_handle_keeps_event_by_event(store: Store) -> None:
    seen: list[str] = []

    class Wrapped(EventConsumer):
        def handle(self, topic: str, value: bytes, headers: list[tuple[str, bytes]] | None) -> bool:
            seen.append(topic)
            return super().handle(topic, value, headers)

    handler = Handler(store)
    consumer = Wrapped(
        service="test",
        group=GROUP,
        topics=[TOPIC_SUBMITTED],
        settings=KafkaSettings(),
        sessions=store.sessions,
        outbox=store.outbox,
        handler=handler,
    )
    consumer.handle_records(make_records(4))
    assert len(seen) == 4 and len(store.commits) == 4


def test_two_replicas_racing_for_the_same_batch_handle_each_event_once(store: Store) -> None:
    """During a rebalance two members may both hold a partition for a moment."""
    records = make_records(60)
    handler = Handler(store)
    consumers = [make_consumer(store, handler, max_batch_events=20) for _ in range(2)]
    errors: list[BaseException] = []

    def work(consumer: EventConsumer) -> None:
        try:
            consumer.handle_records(records)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(c,)) for c in consumers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert store.effect_counts() == {event_id(r): 1 for r in records}


def test_the_dead_letters_command_lists_and_redrives(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse
    import json
    from types import SimpleNamespace

    from lienthong_common.service import dead_letters_command

    records = make_records(2)
    bad = event_id(records[1])
    handler = Handler(store, poison={bad})
    consumer = make_consumer(store, handler, max_attempts=1)
    consumer.handle_records(records)
    runtime = SimpleNamespace(name="test", consumers=[consumer])

    def run(action: str, *options: str) -> tuple[int, list[dict[str, Any]]]:
        args = argparse.Namespace(action=action, id=[], group=None, all="--all" in options, json=True)
        code = dead_letters_command(runtime, args)  # type: ignore[arg-type]
        return code, [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    code, listed = run("list")
    assert code == 0 and [(r["event_id"], r["offset"], r["state"]) for r in listed] == [(bad, 1, PARKED)]
    code, outcomes = run("redrive")  # still failing: reported, exit status 1, still parked
    assert code == 1 and outcomes[0]["outcome"].startswith("failed: ValueError")
    handler.poison.clear()
    assert run("redrive") == (0, [{"id": listed[0]["id"], "group": GROUP, "outcome": "handled"}])
    assert run("list") == (0, [])
    code, everything = run("list", "--all")
    assert [r["state"] for r in everything] == [REDRIVEN]
    assert store.effect_counts() == {event_id(r): 1 for r in records}


def test_a_transaction_guard_is_held_around_each_batch(store: Store) -> None:
    held: list[int] = []

    class Guarded(EventConsumer):
        def transaction_guard(self) -> Any:
            from contextlib import contextmanager

            @contextmanager
            def hold() -> Iterator[None]:
                held.append(1)
                yield

            return hold()

    consumer = Guarded(
        service="test",
        group=GROUP,
        topics=[TOPIC_SUBMITTED],
        settings=KafkaSettings(),
        sessions=store.sessions,
        outbox=store.outbox,
        handler=Handler(store),
        max_batch_seconds=60,
    )
    consumer.handle_records(make_records(6))
    assert held == [1] and len(store.commits) == 1


def test_the_relay_drains_in_order_one_transaction_per_batch(store: Store) -> None:
    from lienthong_common.kafka import OutboxRelay

    sent: list[tuple[str, bytes]] = []

    class Future:
        def get(self, timeout: float) -> None:
            return None

    class Producer:
        def send(self, topic: str, *, key: bytes, value: bytes, headers: Any) -> Future:
            sent.append((topic, value))
            return Future()

        def flush(self, timeout: float) -> None:
            pass

    queued = []
    with store.sessions() as session, session.begin():
        for _ in range(1100):
            e = new_event(str(uuid.uuid4()))
            queued.append(e.SerializeToString())
            store.outbox.add(session, topic=TOPIC_DELIVERIES, key=e.document_id, event=e)
    store.commits.clear()
    relay = OutboxRelay(
        service="test", settings=KafkaSettings(), sessions=store.sessions, outbox=store.outbox, batch_size=500
    )
    relay._producer = Producer()
    assert relay.drain() == 1100
    assert [value for _topic, value in sent] == queued
    assert len(store.commits) == 3  # delete batch N + fetch batch N+1, together
    with store.sessions() as session:
        assert store.outbox.backlog(session) == 0
    assert relay.drain() == 0


def test_dead_letters_are_counted_and_the_parked_ones_gauged(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import REGISTRY, generate_latest

    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(metrics, "_instruments", metrics._create(provider.get_meter("test")))
    monkeypatch.setattr(metrics, "_outboxes", [])
    try:
        metrics.watch_outbox("test", store.sessions, store.outbox)
        records = make_records(2)
        consumer = make_consumer(store, Handler(store, poison={event_id(records[0])}), max_attempts=1)
        consumer.handle_records(records)
        exported = generate_latest(REGISTRY).decode()
    finally:
        provider.shutdown()
    [counted] = [
        line for line in exported.splitlines() if line.startswith("lienthong_consumer_dead_letters_total")
    ]
    assert f'messaging_consumer_group_name="{GROUP}"' in counted and counted.endswith(" 1.0")
    [parked] = [line for line in exported.splitlines() if line.startswith("lienthong_dead_letters_parked")]
    assert 'service="test"' in parked and parked.endswith(" 1.0")
    assert "lienthong_consumer_dead_letters_total" in metrics.SPARSE_METRIC_NAMES
    assert "lienthong_dead_letters_parked" in metrics.METRIC_NAMES


def test_each_event_of_a_batch_keeps_its_consumer_span(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import propagate, trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from lienthong_common import kafka

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    monkeypatch.setattr(kafka, "tracer", tracer)
    records = make_records(3)
    producers = []
    for record in records:
        with tracer.start_as_current_span("publish", kind=trace.SpanKind.PRODUCER) as producer:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
        producers.append(producer.get_span_context())
        record.headers = [(k, v.encode()) for k, v in carrier.items()]
    exporter.clear()
    make_consumer(store, Handler(store)).handle_records(records)

    spans = exporter.get_finished_spans()
    consumers = [s for s in spans if s.kind == trace.SpanKind.CONSUMER]
    assert [s.name for s in consumers] == [f"{TOPIC_SUBMITTED} process"] * 3
    for span, producer in zip(consumers, producers, strict=True):
        assert span.parent is not None and span.parent.span_id == producer.span_id
        assert span.context.trace_id == producer.trace_id
        assert [link.context.span_id for link in span.links] == [producer.span_id]
        assert span.attributes is not None and span.attributes["messaging.message.id"]
    [batch] = [s for s in spans if s.name == f"{GROUP} batch"]
    assert batch.attributes is not None and batch.attributes["messaging.batch.message_count"] == 3
    assert len(batch.links) == 3


def test_one_relay_per_database_publishes(store: Store) -> None:
    """Replicas share an outbox: only one relay publishes; another takes over when it stops."""
    from lienthong_common.kafka import OutboxRelay

    sent: dict[str, list[bytes]] = {"a": [], "b": []}

    def producer(name: str) -> Any:
        class Future:
            def get(self, timeout: float) -> None:
                return None

        class Producer:
            def send(self, topic: str, *, key: bytes, value: bytes, headers: Any) -> Future:
                sent[name].append(value)
                return Future()

            def flush(self, timeout: float) -> None:
                pass

            def close(self, timeout: float) -> None:
                pass

        return Producer()

    def queue(n: int) -> list[bytes]:
        payloads = []
        with store.sessions() as session, session.begin():
            for _ in range(n):
                e = new_event(str(uuid.uuid4()))
                payloads.append(e.SerializeToString())
                store.outbox.add(session, topic=TOPIC_DELIVERIES, key=e.document_id, event=e)
        return payloads

    relays = {
        name: OutboxRelay(
            service=name, settings=KafkaSettings(), sessions=store.sessions, outbox=store.outbox
        )
        for name in ("a", "b")
    }
    for name, relay in relays.items():
        relay._producer = producer(name)
    first = queue(10)
    assert relays["a"].drain() == 10
    second = queue(5)
    # PostgreSQL: an advisory lock; SQLite (worker processes on one host): a lock file.
    assert relays["b"].drain() == 0  # standing by while "a" leads
    relays["a"].stop()
    assert relays["b"].drain() == 5
    assert sent == {"a": first, "b": second}
    relays["b"].stop()
