"""Resolving the recipients of a document addressed to a group of ~200 communes, through gRPC.

What is measured: ResolveRecipients for the group address `000.00.01.X00` (every tier-4 agency
under Hải Phòng's People's Committee, as of 2020-06-01: the 2019 four-tier shape, 223
communes and wards) against the real DirectoryServicer in an in-process gRPC server on a free
port, backed by a migrated SQLite file loaded with data/directory/national.json and
haiphong.json (with --quick, their agencies only, without the 2025 reorganisations). Each call
returns one Resolution per member. Target: p99 under 20 ms on the 2-core machine.

    .venv/bin/python bench/bench_directory.py [--quick] [--calls N]

Writes bench/results/directory.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent import futures
from datetime import date
from pathlib import Path

import grpc

from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong_common.db import make_engine, make_session_factory, transaction, upgrade_database
from lienthong_directory import transfer
from lienthong_directory.grpc_api import DirectoryServicer
from lienthong_directory.main import MIGRATIONS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "directory"
GROUP = "000.00.01.X00"
AS_OF = "2020-06-01"
TARGET_P99_MS = 20.0


def load(url: str, *, quick: bool) -> float:
    started = time.perf_counter()
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        for name in ("national.json", "haiphong.json"):
            document = json.loads((DATA / name).read_text(encoding="utf-8"))
            if quick:
                document.pop("reorganizations", None)
            report = transfer.import_content(
                session=session,
                fmt="json",
                content=json.dumps(document).encode(),
                default_day=date(2019, 1, 1),
            )
            if not report.applied:
                raise SystemExit(f"{name}: {report.rejected[:3]}")
    engine.dispose()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--calls", type=int)
    args = parser.parse_args(argv)
    calls = args.calls or (100 if args.quick else 1000)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'directory.db'}"
        upgrade_database(url, MIGRATIONS)
        load_seconds = load(url, quick=args.quick)
        engine = make_engine(url)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        directory_pb2_grpc.add_DirectoryServiceServicer_to_server(
            DirectoryServicer(sessions=make_session_factory(engine)), server
        )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = directory_pb2_grpc.DirectoryServiceStub(channel)
                request = directory_pb2.ResolveRecipientsRequest(codes=[GROUP], as_of=AS_OF)
                members = len(stub.ResolveRecipients(request, timeout=10).resolutions)
                for _ in range(10):  # warm-up
                    stub.ResolveRecipients(request, timeout=10)
                samples = []
                for _ in range(calls):
                    started = time.perf_counter()
                    stub.ResolveRecipients(request, timeout=10)
                    samples.append((time.perf_counter() - started) * 1000)
        finally:
            server.stop(None)
            engine.dispose()
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    result = {
        "benchmark": "directory.resolve_group",
        "group": GROUP,
        "as_of": AS_OF,
        "members": members,
        "calls": calls,
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(samples[-1], 2),
        "target_p99_ms": TARGET_P99_MS,
        "met": p99 < TARGET_P99_MS,
        "load_seconds": round(load_seconds, 1),
        "quick": args.quick,
    }
    print(f"{'benchmark':<28} {'members':>7} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8} {'target':>8}")
    print(
        f"{'directory resolve group':<28} {members:>7} {calls:>6} {p50:>8.2f} {p99:>8.2f} "
        f"{'<' + str(TARGET_P99_MS):>8} {'ok' if result['met'] else 'MISSED'}"
    )
    out = ROOT / "bench" / "results" / "directory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
