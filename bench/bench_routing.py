"""Deliveries per second through routing alone.

What is measured: routing's real consumer path for DocumentVerified events, from the Kafka
record to deliveries committed in the database — `EventConsumer.handle_records` (decode,
processed-event claims, CONSUMER spans, routing's handler, the database commit), the call the
consumer's poll loop makes with each poll of records — against a real database migrated with
routing's Alembic migrations, and an in-process fake directory, so neither Kafka nor the
directory's latency is in the figure. Each event is one document to RECIPIENTS recipients;
every delivery writes its row, a timeline line, a DeliveryUpdated outbox event and an
evidence-chain entry (the document one more), exactly as in production.

Two ways of feeding the events are measured:

- `batched`: polls of `max_poll_records` records (a backlog), each handled by the consumer in
  as few transactions as its batching makes (the production path);
- `per_event`: one `EventConsumer.handle` (one transaction) per event, the consumer's
  fallback path and what the figure measured before the consumer batched.

Databases: a SQLite file, and a fresh database on the shared PostgreSQL server
(`LIENTHONG_BENCH_PGPORT`, default 55432) when it is reachable. After each run the bench
checks what was written (deliveries, outbox events, evidence entries, a valid chain) and
exits non-zero if anything is missing. Target: >= 1,000 deliveries/s on the 2-core machine.

    .venv/bin/python bench/bench_routing.py [--quick] [--recipients N] [--documents N]
        [--only sqlite|postgres] [--mode batched|per_event]

Writes bench/results/routing.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from benchdb import drop_postgres, fresh_postgres  # bench/ is the script's folder
from sqlalchemy import func, select

from lienthong.events.v1 import events_pb2
from lienthong_common.db import make_engine, make_session_factory, upgrade_database
from lienthong_common.ids import new_id
from lienthong_common.kafka import EventConsumer
from lienthong_common.kafka_access import PRODUCER_HEADER, owner_of
from lienthong_common.outbox import TOPIC_VERIFIED, install_after_commit_hooks, new_event
from lienthong_common.settings import KafkaSettings
from lienthong_routing.clients import Resolution
from lienthong_routing.consumers import VerifiedDocuments
from lienthong_routing.deadlines import WorkingCalendar
from lienthong_routing.evidence import verify
from lienthong_routing.main import MIGRATIONS_DIR
from lienthong_routing.models import OUTBOX, Delivery, EvidenceEntry

TARGET = 1000.0
SENDER = "000.00.00.H49"
WARM_UP = 20


class SelfDirectory:
    """Every code is a live agency that receives for itself."""

    def resolve_recipients(self, codes: Sequence[str], *, as_of: date) -> list[Resolution]:
        return [Resolution(code, code, True) for code in codes]


@dataclass
class Record:
    """A consumed Kafka record, as far as EventConsumer reads one."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.headers:  # as the owner's relay stamps every record
            self.headers = [(PRODUCER_HEADER, (owner_of(self.topic) or "").encode())]


def verified(number: int, recipients: list[str]) -> Record:
    event = new_event(new_id())
    event.verified.CopyFrom(
        events_pb2.DocumentVerified(
            sender_code=SENDER,
            recipient_codes=recipients,
            edxml_document_id=f"{SENDER},2026/11/26,{number}/BENCH",
            subject=f"Văn bản đo hiệu năng {number}",
            indication="TOTAL_PASSED",
        )
    )
    return Record(TOPIC_VERIFIED, 0, number, event.document_id.encode(), event.SerializeToString())


def run(url: str, mode: str, documents: int, recipients: int) -> dict[str, Any]:
    """Route `documents` (+ a warm-up) through a fresh routing database at `url`; the figures."""
    upgrade_database(url, MIGRATIONS_DIR)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    install_after_commit_hooks(sessions)
    consumer = EventConsumer(
        service="routing",
        group="bench-routing",
        topics=[TOPIC_VERIFIED],
        settings=KafkaSettings(),
        sessions=sessions,
        outbox=OUTBOX,
        handler=VerifiedDocuments(
            directory=SelfDirectory(), calendar=WorkingCalendar.of("Asia/Ho_Chi_Minh", range(5))
        ).handle,
    )
    poll = int(getattr(consumer, "max_poll_records", 100))
    # 200 agencies; each document goes to `recipients` of them, round robin.
    agencies = [f"000.{i // 100:02d}.{i % 100:02d}.H49" for i in range(1, 201)]
    records = [
        verified(n, [agencies[(n * recipients + k) % len(agencies)] for k in range(recipients)])
        for n in range(documents + WARM_UP)
    ]

    def feed(chunk: list[Record]) -> None:
        if mode == "batched":
            for start in range(0, len(chunk), poll):
                consumer.handle_records(chunk[start : start + poll])
        else:
            for record in chunk:
                consumer.handle(record.topic, record.value, record.headers)

    feed(records[:WARM_UP])  # imports, statement caches, the connection pool
    started, cpu_started = time.perf_counter(), time.process_time()
    feed(records[WARM_UP:])
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    with sessions() as session:
        chain = verify(session=session)
        written = {
            "deliveries": session.scalar(select(func.count()).select_from(Delivery)),
            "outbox_events": session.scalar(select(func.count()).select_from(OUTBOX.table)),
            "evidence_entries": session.scalar(select(func.count()).select_from(EvidenceEntry)),
            "claimed_events": session.scalar(select(func.count()).select_from(OUTBOX.processed)),
        }
    engine.dispose()
    total = documents + WARM_UP
    expected = {
        "deliveries": total * recipients,
        "outbox_events": total * recipients,
        "evidence_entries": total * (recipients + 1),
        "claimed_events": total,
    }
    measured = documents * recipients
    return {
        "mode": mode,
        "poll_records": poll if mode == "batched" else 1,
        "documents": documents,
        "recipients_per_document": recipients,
        "deliveries": measured,
        "seconds": round(elapsed, 3),
        # CPU seconds of this process: on a busy machine wall time includes waiting for a core
        # (and, with PostgreSQL, the server's own work, which is not in this figure).
        "cpu_seconds": round(cpu, 3),
        "deliveries_per_second": round(measured / elapsed, 1),
        "deliveries_per_cpu_second": round(measured / cpu, 1) if cpu > 0 else None,
        "documents_per_second": round(documents / elapsed, 1),
        "evidence_chain_valid": chain.valid,
        "written": written,
        "complete": chain.valid and written == expected,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short run (< 20 s)")
    parser.add_argument("--recipients", type=int, default=4, help="recipients per document (default 4)")
    parser.add_argument("--documents", type=int, default=0)
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    parser.add_argument("--mode", choices=["batched", "per_event"], default=None, help="default: both")
    args = parser.parse_args(argv)
    documents = args.documents or (300 if args.quick else 2500)
    modes = [args.mode] if args.mode else ["batched", "per_event"]
    results: list[dict[str, Any]] = []
    if args.only in (None, "sqlite"):
        for mode in modes:
            with tempfile.TemporaryDirectory(prefix="bench-routing-") as tmp:
                url = f"sqlite:///{Path(tmp) / 'routing.db'}"
                results.append({"database": "sqlite", **run(url, mode, documents, args.recipients)})
    if args.only in (None, "postgres"):
        for mode in modes:
            url = fresh_postgres("bench_routing")
            if url is None:
                break
            try:
                results.append({"database": "postgresql", **run(url, mode, documents, args.recipients)})
            finally:
                drop_postgres(url)
    load = os.getloadavg()
    print(
        f"{'database':<12}{'mode':<11}{'deliveries':>11}{'seconds':>9}{'deliv/s':>9}{'deliv/cpu-s':>13}"
        "  complete"
    )
    for r in results:
        print(
            f"{r['database']:<12}{r['mode']:<11}{r['deliveries']:>11}{r['seconds']:>9}"
            f"{r['deliveries_per_second']:>9}{r['deliveries_per_cpu_second']!s:>13}  {r['complete']}"
        )
    print(f"target {TARGET:.0f} deliveries/s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    headline = next((r for r in results if r["mode"] == "batched"), results[0] if results else None)
    summary = {
        "area": "routing",
        "what": (
            "routing's consumer path (EventConsumer.handle_records / handle + routing's handler + commit), "
            "fake directory, no Kafka"
        ),
        "target_deliveries_per_second": TARGET,
        "quick": args.quick,
        "load_average": [round(x, 2) for x in load],
        # The headline: the production (batched) path on the first database measured.
        "database": headline["database"] if headline else None,
        "deliveries_per_second": headline["deliveries_per_second"] if headline else None,
        "meets_target": bool(headline and headline["deliveries_per_second"] >= TARGET),
        "results": results,
    }
    out = Path(__file__).resolve().parent / "results" / "routing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return 0 if results and all(r["complete"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
