"""Events per second through EventConsumer's poll loop, on PostgreSQL (and SQLite).

What is measured: `EventConsumer._run` — poll, decode, CONSUMER span, processed-event claim,
the handler, the database commit, the Kafka offset commit — fed by an in-memory stand-in for
kafka-python's KafkaConsumer (poll returns up to `max_poll_records` records at once, as the
real client does with a backlog), so the figure is the consumer's own per-event overhead and
not the broker's. Two trivial handlers: `noop` (the claim alone) and `outbox` (the handler
queues one outbox event, as every real handler does). The database is a fresh one on the
shared PostgreSQL server (`LIENTHONG_BENCH_PGPORT`, default 55432; skipped when it is not
reachable) and a SQLite file, each with a minimal schema (outbox + processed_events).

    .venv/bin/python bench/bench_consumer.py [--quick] [--events N] [--only postgres|sqlite]

Writes bench/results/consumer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchdb import drop_postgres, fresh_postgres  # bench/ is the script's folder
from sqlalchemy import MetaData
from sqlalchemy.orm import Session

from lienthong.events.v1 import events_pb2
from lienthong_common.db import make_engine, make_session_factory
from lienthong_common.kafka import EventConsumer
from lienthong_common.kafka_access import PRODUCER_HEADER, owner_of
from lienthong_common.outbox import (
    TOPIC_DELIVERIES,
    TOPIC_SUBMITTED,
    Outbox,
    install_after_commit_hooks,
    new_event,
)
from lienthong_common.settings import KafkaSettings


@dataclass(frozen=True)
class TopicPartition:
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

    timestamp: int = 0


class FakeKafka:
    """kafka-python's KafkaConsumer, as far as EventConsumer uses it, over a list of records."""

    def __init__(self, records: list[Record], max_poll_records: int) -> None:
        self.records = records
        self.max_poll_records = max_poll_records
        self.position_ = 0
        self.committed = 0
        self.done = threading.Event()
        self.tp = TopicPartition(TOPIC_SUBMITTED, 0)

    def poll(self, timeout_ms: int = 0, max_records: int | None = None, **_: Any) -> dict[Any, list[Record]]:
        limit = min(self.max_poll_records, max_records or self.max_poll_records)
        batch = self.records[self.position_ : self.position_ + limit]
        if not batch:
            time.sleep(min(timeout_ms, 50) / 1000)
            return {}
        self.position_ += len(batch)
        return {self.tp: batch}

    def commit(self, offsets: Any = None) -> None:
        if offsets:
            self.committed = max(int(getattr(m, "offset", m)) for m in offsets.values())
        else:
            self.committed = self.position_
        if self.committed >= len(self.records):
            self.done.set()

    def seek(self, _tp: Any, offset: int) -> None:
        self.position_ = offset

    def assignment(self) -> set[Any]:
        return {self.tp}

    def highwater(self, _tp: Any) -> int:
        return len(self.records)

    def position(self, _tp: Any, timeout_ms: int | None = None) -> int:
        return self.position_

    def close(self, autocommit: bool = False) -> None:
        pass


def make_records(count: int) -> list[Record]:
    records = []
    for offset in range(count):
        event = new_event(str(uuid.uuid4()))
        event.submitted.sender_code = "000.00.00.H49"
        event.submitted.recipient_codes.extend(["000.00.02.H49", "000.01.03.H49", "000.00.00.G22"])
        records.append(
            Record(TOPIC_SUBMITTED, 0, offset, event.document_id.encode(), event.SerializeToString())
        )
    return records


def handler_for(name: str, outbox: Outbox) -> Callable[[Session, events_pb2.Event], None]:
    def noop(_session: Session, _event: events_pb2.Event) -> None:
        return None

    def queue_one(session: Session, event: events_pb2.Event) -> None:
        out = new_event(event.document_id)
        out.delivery_updated.recipient_code = "000.00.02.H49"
        outbox.add(session, topic=TOPIC_DELIVERIES, key=event.document_id, event=out)

    return {"noop": noop, "outbox": queue_one}[name]


def run_one(
    url: str, handler_name: str, count: int, base: type[EventConsumer] = EventConsumer
) -> dict[str, Any]:
    metadata = MetaData()
    outbox = Outbox.for_metadata(metadata)
    engine = make_engine(url)
    metadata.create_all(engine)
    sessions = make_session_factory(engine)
    install_after_commit_hooks(sessions)
    warm = make_records(50)
    records = make_records(count)
    fakes: list[FakeKafka] = []

    class Bench(base):  # type: ignore[valid-type,misc]
        def _connect(self) -> Any:
            fake = FakeKafka(feed.pop(0), int(getattr(self, "max_poll_records", 100)))
            fakes.append(fake)
            return fake

    feed = [warm, records]
    consumer = Bench(
        service="bench",
        group=f"bench-{handler_name}",
        topics=[TOPIC_SUBMITTED],
        settings=KafkaSettings(),
        sessions=sessions,
        outbox=outbox,
        handler=handler_for(handler_name, outbox),
    )
    # Warm-up (imports, statement caches, connection pool) through the same loop.
    consumer.start()
    while not fakes or not fakes[0].done.is_set():
        time.sleep(0.01)
    consumer.stop()
    consumer._stop.clear()
    started, cpu_started = time.perf_counter(), time.process_time()
    consumer.start()
    while len(fakes) < 2 or not fakes[1].done.wait(0.005):
        if time.perf_counter() - started > 300:
            raise SystemExit("the consumer did not finish within 300 s")
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    consumer.stop()
    with sessions() as session:
        claimed = session.execute(
            outbox.processed.select().where(outbox.processed.c.consumer == f"bench-{handler_name}")
        ).all()
    engine.dispose()
    assert len(claimed) == count + len(warm), (len(claimed), count)
    return {
        "handler": handler_name,
        "events": count,
        "seconds": round(elapsed, 3),
        "cpu_seconds": round(cpu, 3),
        "events_per_second": round(count / elapsed, 1),
        "events_per_cpu_second": round(count / cpu, 1) if cpu > 0 else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short run (< 20 s)")
    parser.add_argument("--events", type=int, default=0)
    parser.add_argument("--only", choices=["postgres", "sqlite"], default=None)
    parser.add_argument(
        "--baseline",
        default=None,
        help="measure the EventConsumer of this kafka.py file instead (an A/B against an older copy)",
    )
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "consumer.json"))
    args = parser.parse_args(argv)
    count = args.events or (1000 if args.quick else 10000)
    base: type[EventConsumer] = EventConsumer
    if args.baseline:
        import importlib.util

        spec = importlib.util.spec_from_file_location("baseline_kafka", args.baseline)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        base = module.EventConsumer
    results: list[dict[str, Any]] = []
    if args.only in (None, "postgres"):
        url = fresh_postgres("bench_consumer")
        if url is not None:
            try:
                for handler_name in ("noop", "outbox"):
                    results.append({"database": "postgresql", **run_one(url, handler_name, count, base)})
            finally:
                drop_postgres(url)
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory(prefix="bench-consumer-") as tmp:
            for handler_name in ("noop", "outbox"):
                url = f"sqlite:///{Path(tmp) / f'{handler_name}.db'}"
                results.append({"database": "sqlite", **run_one(url, handler_name, count, base)})
    load = os.getloadavg()
    print(f"{'database':<12}{'handler':<9}{'events':>8}{'seconds':>9}{'events/s':>10}{'events/cpu-s':>14}")
    for r in results:
        print(
            f"{r['database']:<12}{r['handler']:<9}{r['events']:>8}{r['seconds']:>9}"
            f"{r['events_per_second']:>10}{r['events_per_cpu_second']!s:>14}"
        )
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    summary = {
        "area": "consumer",
        "what": (
            "EventConsumer poll loop (claim + handler + DB commit + offset commit), in-memory Kafka stand-in"
        ),
        "quick": args.quick,
        "consumer": args.baseline or "lienthong_common.kafka",
        "load_average": [round(x, 2) for x in load],
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
