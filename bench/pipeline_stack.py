"""The pipeline benchmark's surroundings: ports, Kafka and PostgreSQL, the six services.

`running_stack` gives a freshly reset broker, fresh databases, the platform's processes
(LocalPlatform, what `make run` starts) and the demo directory; chaos/run.py uses it too.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lienthong_common.testing import InfraError, run_infra
from lienthong_common.testing import fresh_databases as fresh_service_databases
from lienthong_sdk.client import LienthongClient
from lienthong_sdk.demo import load_credentials, seed
from lienthong_sdk.local import ALL_SERVICES, GRPC_SERVICES, LocalPlatform

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

# Demo agencies that receive (data/directory/demo.json; 000.00.12.H49 is dissolved, so it is
# left out: its deliveries would land in its successor's inbox under another code).
AGENCIES = [
    "000.00.00.G22",
    "000.00.00.G09",
    "000.00.00.H49",
    "000.00.01.H49",
    "000.00.02.H49",
    "000.00.03.H49",
    "000.00.04.H49",
    "000.01.03.H49",
    "000.02.03.H49",
    "000.01.04.H49",
    "000.02.04.H49",
]
SENDERS = ["000.00.00.H49", "000.00.02.H49", "000.00.03.H49", "000.00.00.G22"]

# ----------------------------------------------------------------------------- progress


class Progress:
    """A one-line progress display on stderr (\\r), no dependency."""

    def __init__(self, label: str, total: float) -> None:
        self.label = label
        self.total = max(total, 1e-9)
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def update(self, done: float, extra: str = "") -> None:
        now = time.monotonic()
        if now - self._last < (0.2 if self.tty else 5.0):
            return
        self._last = now
        frac = min(1.0, done / self.total)
        bar = "#" * int(frac * 30)
        line = f"{self.label:<22} [{bar:<30}] {frac * 100:5.1f}% {now - self.start:6.1f}s {extra}"
        sys.stderr.write(("\r" + line[:150]) if self.tty else line[:150] + "\n")
        sys.stderr.flush()

    def close(self, extra: str = "") -> None:
        self._last = 0.0
        self.update(self.total, extra)
        if self.tty:
            sys.stderr.write("\n")


# ----------------------------------------------------------------------------- infrastructure


def infra(script: str, *args: str, env: dict[str, str]) -> str:
    """infra/<script> (lienthong_common.testing.run_infra); a failure ends the run with its output."""
    try:
        return run_infra(script, *args, env=env)
    except InfraError as error:
        raise SystemExit(str(error)) from None


@dataclass
class Ports:
    kafka: int
    port_base: int
    pgport: int

    @property
    def kafka_env(self) -> dict[str, str]:
        # Generous start timeouts: a busy 2-core machine can take over a minute to start a broker.
        return {
            "KAFKA_PORT": str(self.kafka),
            "KAFKA_CONTROLLER_PORT": str(self.kafka + 1),
            "KAFKA_START_TIMEOUT": os.environ.get("KAFKA_START_TIMEOUT", "240"),
        }

    @property
    def pg_env(self) -> dict[str, str]:
        return {"PGPORT": str(self.pgport), "PG_START_TIMEOUT": os.environ.get("PG_START_TIMEOUT", "120")}


def default_ports() -> Ports:
    return Ports(
        kafka=int(os.environ.get("LIENTHONG_BENCH_KAFKA_PORT", "19952")),
        port_base=int(os.environ.get("LIENTHONG_BENCH_PORT_BASE", "27051")),
        pgport=int(os.environ.get("LIENTHONG_BENCH_PGPORT", "55432")),
    )


def fresh_databases(ports: Ports, prefix: str) -> dict[str, str]:
    return fresh_service_databases(ports.pgport, prefix, GRPC_SERVICES)


def drop_databases(ports: Ports, prefix: str) -> None:
    import psycopg

    try:
        with psycopg.connect(
            f"postgresql://lienthong:lienthong@127.0.0.1:{ports.pgport}/postgres", autocommit=True
        ) as conn:
            for service in GRPC_SERVICES:
                conn.execute(f'DROP DATABASE IF EXISTS "{prefix}_{service}" WITH (FORCE)')
    except Exception as error:  # noqa: BLE001 - cleanup only
        print(f"(could not drop the benchmark databases: {error})", file=sys.stderr)


@dataclass
class Stack:
    local: LocalPlatform
    ports: Ports
    data_dir: Path
    db_prefix: str = ""

    def client(self, code: str) -> LienthongClient:
        return LienthongClient(
            self.local.gateway_url, code, load_credentials(self.data_dir)[code], timeout=60
        )


@contextmanager
def running_stack(
    ports: Ports,
    *,
    keep: bool = False,
    extra_env: dict[str, str] | None = None,
    replicas: int = 1,
    partitions: int = 0,
    database: str = "postgresql",
) -> Iterator[Stack]:
    """Kafka (reset), PostgreSQL with fresh databases, six services, the demo directory seeded.

    `replicas` processes of each consumer service (LocalPlatform.replicated), one consumer
    group per service; `partitions` (0: the platform's default) per topic, made by the fresh
    broker's admin (infra/kafka.sh; the services have no right to create topics). `database="sqlite"`
    runs the services on their SQLite files under the data directory (`make run`'s default)
    and leaves PostgreSQL alone."""
    on_postgres = database == "postgresql"
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    data_dir = Path(tempfile.mkdtemp(prefix="lienthong-bench-"))

    def fresh_kafka() -> None:
        env = {**ports.kafka_env, **({"KAFKA_TOPIC_PARTITIONS": str(partitions)} if partitions else {})}
        infra("kafka.sh", "reset", env=env)
        infra("kafka.sh", "start", env=env)

    # The broker (a JVM: the slowest thing to start) comes up while PostgreSQL, the databases
    # and the migrations are prepared; the services start once both are there.
    starting = ThreadPoolExecutor(1)
    kafka_started = starting.submit(fresh_kafka)
    if on_postgres:
        infra("postgres.sh", "start", env=ports.pg_env)
    local = LocalPlatform(
        data_dir=data_dir,
        grpc_port_base=ports.port_base,
        http_port=ports.port_base + 100,
        kafka_bootstrap=f"127.0.0.1:{ports.kafka}",
        database_urls=fresh_databases(ports, prefix) if on_postgres else {},
        extra_env={
            "LIENTHONG_DRAIN_SECONDS": "2",
            "OTEL_TRACES_EXPORTER": "none",
            # The load comes from four agencies at up to hundreds of documents a second.
            "LIENTHONG_GATEWAY__RATE_LIMIT_PER_SECOND": "0",
            # The pool of signed PDFs is reused across documents; with the verdict cache off
            # every document is verified for real, as distinct documents would be.
            "LIENTHONG_SIGVERIFY__VERDICT_CACHE_SECONDS": "0",
            **({"LIENTHONG_KAFKA__TOPIC_PARTITIONS": str(partitions)} if partitions else {}),
            **(extra_env or {}),
        },
        replicas=replicas,
    )
    try:
        try:
            local.data_dir.mkdir(parents=True, exist_ok=True)
            local.prepare_pki()
            local.migrate_all()
        finally:
            kafka_started.result()  # raises what the broker's start raised
            starting.shutdown()
        local.start_services(ALL_SERVICES)  # every replica of the replicated services
        local.wait_ready(timeout=120)
        seed(
            directory_address=local.grpc_address("directory"),
            data_dir=data_dir,
            dataset=ROOT / "data" / "directory" / "demo.json",
        )
        yield Stack(local=local, ports=ports, data_dir=data_dir, db_prefix=prefix if on_postgres else "")
    finally:
        local.stop()
        infra("kafka.sh", "stop", env=ports.kafka_env)
        if on_postgres:
            drop_databases(ports, prefix)
        if keep:
            print(f"(kept {data_dir})", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
