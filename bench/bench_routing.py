"""Deliveries per second through routing alone.

What is measured: routing's real consumer path for DocumentVerified events —
`EventConsumer.handle` (decode, processed-event claim, the handler, commit) with routing's
handler — against a real SQLite database file (migrated with routing's Alembic migrations)
and an in-process fake directory, so neither Kafka nor the directory's latency is in the
figure. Each event is one document to RECIPIENTS recipients; every delivery writes its row,
a timeline line, a DeliveryUpdated outbox event and an evidence-chain entry, as in
production. Target: >= 1,000 deliveries/s on the 2-core machine.

    .venv/bin/python bench/bench_routing.py [--quick] [--recipients N] [--documents N]

Writes bench/results/routing.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from lienthong.events.v1 import events_pb2
from lienthong_common.db import make_engine, make_session_factory, upgrade_database
from lienthong_common.ids import new_id
from lienthong_common.kafka import EventConsumer
from lienthong_common.outbox import TOPIC_VERIFIED, new_event
from lienthong_common.settings import KafkaSettings
from lienthong_routing import events
from lienthong_routing.deadlines import WorkingCalendar
from lienthong_routing.directory import Resolution
from lienthong_routing.evidence import verify
from lienthong_routing.main import MIGRATIONS_DIR
from lienthong_routing.models import OUTBOX

TARGET = 1000.0
SENDER = "000.00.00.H49"


class SelfDirectory:
    """Every code is a live agency that receives for itself."""

    def resolve_recipients(self, codes: Sequence[str], *, as_of: date) -> list[Resolution]:
        return [Resolution(code, code, True) for code in codes]


def verified(number: int, recipients: list[str]) -> bytes:
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
    return bytes(event.SerializeToString())


def run(documents: int, recipients: int) -> dict[str, float | int | bool]:
    with tempfile.TemporaryDirectory(prefix="bench-routing-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'routing.db'}"
        upgrade_database(url, MIGRATIONS_DIR)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        consumer = EventConsumer(
            service="routing",
            group="bench-routing",
            topics=[TOPIC_VERIFIED],
            settings=KafkaSettings(),
            sessions=sessions,
            outbox=OUTBOX,
            handler=functools.partial(
                events.handle_event,
                directory=SelfDirectory(),
                calendar=WorkingCalendar.of("Asia/Ho_Chi_Minh", range(5)),
            ),
        )
        # 200 agencies; each document goes to `recipients` of them, round robin.
        agencies = [f"000.{i // 100:02d}.{i % 100:02d}.H49" for i in range(1, 201)]
        payloads = [
            verified(n, [agencies[(n * recipients + k) % len(agencies)] for k in range(recipients)])
            for n in range(documents)
        ]
        for payload in payloads[:20]:  # warm-up: imports, statement caches, first pages
            consumer.handle(TOPIC_VERIFIED, payload, [])
        started, cpu_started = time.perf_counter(), time.process_time()
        for payload in payloads[20:]:
            consumer.handle(TOPIC_VERIFIED, payload, [])
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        with sessions() as session:
            chain = verify(session=session)
        engine.dispose()
    measured = (documents - 20) * recipients
    return {
        "documents": documents - 20,
        "recipients_per_document": recipients,
        "deliveries": measured,
        "seconds": round(elapsed, 3),
        # CPU seconds of this process: on a busy machine wall time includes waiting for a core.
        "cpu_seconds": round(cpu, 3),
        "deliveries_per_cpu_second": round(measured / cpu, 1),
        "deliveries_per_second": round(measured / elapsed, 1),
        "documents_per_second": round((documents - 20) / elapsed, 1),
        "evidence_chain_valid": chain.valid,
        "evidence_entries": chain.entries,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short run (< 20 s)")
    parser.add_argument("--recipients", type=int, default=4, help="recipients per document (default 4)")
    parser.add_argument("--documents", type=int, default=0)
    args = parser.parse_args(argv)
    documents = args.documents or (300 if args.quick else 2500)
    result = run(documents, args.recipients)
    ok = float(result["deliveries_per_second"]) >= TARGET
    summary = {
        "area": "routing",
        "what": "routing consumer path (EventConsumer.handle + handler), SQLite file, fake directory",
        "target_deliveries_per_second": TARGET,
        "meets_target": ok,
        "quick": args.quick,
        **result,
    }
    print(f"{'metric':<28}{'value':>14}")
    keys = (
        "deliveries",
        "seconds",
        "cpu_seconds",
        "deliveries_per_second",
        "deliveries_per_cpu_second",
        "documents_per_second",
        "evidence_entries",
    )
    for key in keys:
        print(f"{key:<28}{result[key]!s:>14}")
    print(f"{'target (deliveries/s)':<28}{TARGET:>14}")
    print(f"{'meets target':<28}{ok!s:>14}")
    out = Path(__file__).resolve().parent / "results" / "routing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
