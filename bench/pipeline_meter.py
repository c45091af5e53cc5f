"""Where the CPU goes: per-process CPU and RSS from /proc, events handled, bytes and commits.

Every service with its children, the Kafka broker, the PostgreSQL backends serving the
benchmark's databases and the benchmark itself, sampled before and after each step.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline_stack import ROOT, Stack

from lienthong_sdk.local import GRPC_SERVICES, LocalPlatform, split_process_name

PLATFORM = ("gateway", "directory", "docstore", "sigverify", "routing", "statistics", "kafka", "postgresql")


# ----------------------------------------------------------------------------- CPU and memory


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class ProcStat:
    ppid: int
    ticks: int  # utime + stime of the process itself
    child_ticks: int  # cutime + cstime: children it has waited for (e.g. a pool's dead workers)
    rss_bytes: int
    cmdline: str


def read_procs() -> dict[int, ProcStat]:
    """Every process's CPU ticks and RSS from /proc/<pid>/stat (Linux); {} elsewhere."""
    out: dict[int, ProcStat] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read().decode(errors="replace")
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue  # gone meanwhile
        # The command name (field 2) may hold spaces and parentheses: split after the last ")".
        rest = raw[raw.rfind(")") + 2 :].split()
        # rest[0] is field 3 (state): ppid 4, utime 14, stime 15, cutime 16, cstime 17, rss 24.
        out[int(name)] = ProcStat(
            ppid=int(rest[1]),
            ticks=int(rest[11]) + int(rest[12]),
            child_ticks=int(rest[13]) + int(rest[14]),
            rss_bytes=int(rest[21]) * PAGE_BYTES,
            cmdline=cmdline,
        )
    return out


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot (/proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields_ = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = fields_[3] + (fields_[4] if len(fields_) > 4 else 0)  # idle + iowait
    return sum(fields_[:8]) - idle, sum(fields_[:8])


def _descendants(root: int, procs: dict[int, ProcStat]) -> set[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for pid, stat in procs.items():
        children[stat.ppid].append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in found or pid not in procs:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return found


def _pid_file(path: Path) -> int | None:
    try:
        text = path.read_text().split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


def replica_group(service: str, replica: int) -> str:
    """The meter's name for one replica of a service: "sigverify[1]"."""
    return f"{service}[{replica}]"


def is_replica_group(name: str) -> bool:
    return name.endswith("]")


@dataclass
class MeterSample:
    at: float
    procs: dict[int, ProcStat]
    groups: dict[str, set[int]]  # process group -> pids counted in it
    roots: dict[str, list[int]]  # process group -> the pids whose cutime/cstime count too
    machine: tuple[int, int]
    loadavg: tuple[float, float, float]


class ProcessMeter:
    """CPU seconds and RSS per platform process (each service with its children, Kafka, the
    PostgreSQL backends serving the benchmark's databases, the benchmark itself) between two
    samples, from /proc. PostgreSQL's own background processes and other databases' backends
    (the test server is shared) are reported apart as `postgresql_other`."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.db_prefix = stack.db_prefix
        self.kafka_pid_file = ROOT / ".data" / f"kafka-{stack.ports.kafka}" / "kafka.pid"
        # infra/postgres.sh keeps its cluster in $PG_DATA_DIR (default under the temp folder).
        pg_data = os.environ.get("PG_DATA_DIR") or str(
            Path(tempfile.gettempdir()) / f"lienthong-pg-{stack.ports.pgport}"
        )
        self.pg_pid_file = Path(pg_data) / "pgdata" / "postmaster.pid"

    def _roots(self) -> dict[str, list[int]]:
        """Each service's processes (all its replicas) as one group; with replicas, each
        replica also as its own group "<service>[r]" (reported beside, not added to the sums)."""
        roots: dict[str, list[int]] = defaultdict(list)
        replicated = self.stack.local.replicas > 1
        for name, process in self.stack.local.processes.items():
            service, replica = split_process_name(name)
            roots[service].append(process.pid)
            if replicated and service in self.stack.local.replicated:
                roots[replica_group(service, replica)].append(process.pid)
        kafka = _pid_file(self.kafka_pid_file)
        if kafka:
            roots["kafka"] = [kafka]
        roots["bench"] = [os.getpid()]
        return dict(roots)

    def sample(self) -> MeterSample:
        procs = read_procs()
        roots = self._roots()
        groups: dict[str, set[int]] = {}
        for name, pids in roots.items():
            members = set().union(*(_descendants(pid, procs) for pid in pids))
            if name == "bench":  # the verify-only pool has ended; keep the bench to itself
                members = set(pids)
            groups[name] = members
        postmaster = _pid_file(self.pg_pid_file)
        if self.db_prefix and postmaster and postmaster in procs:
            backends = _descendants(postmaster, procs) - {postmaster}
            ours = {p for p in backends if self.db_prefix in procs[p].cmdline}
            groups["postgresql"] = ours
            groups["postgresql_other"] = (backends - ours) | {postmaster}
        try:
            load = os.getloadavg()
        except OSError:
            load = (0.0, 0.0, 0.0)
        return MeterSample(time.time(), procs, groups, roots, machine_ticks(), load)

    @staticmethod
    def delta(a: MeterSample, b: MeterSample, docs: int) -> dict[str, Any]:
        """CPU seconds, CPU ms per document and RSS (at b) per process group between a and b."""
        out: dict[str, Any] = {}
        wall = max(b.at - a.at, 1e-9)
        total_ticks = 0
        for name, members in b.groups.items():
            ticks = 0
            for pid in members:
                before = a.procs.get(pid)
                # A pid new since a (a pool worker, a new PostgreSQL connection) counts whole.
                ticks += b.procs[pid].ticks - (before.ticks if before else 0)
            for root in b.roots.get(name, ()):
                if root in b.procs and root in a.procs:
                    ticks += b.procs[root].child_ticks - a.procs[root].child_ticks
            ticks = max(ticks, 0)
            # postgresql_other is not ours; a replica's own group is already in its service's.
            total_ticks += ticks if name != "postgresql_other" and not is_replica_group(name) else 0
            cpu_s = ticks / CLK_TCK
            out[name] = {
                "cpu_s": round(cpu_s, 2),
                "cores": round(cpu_s / wall, 2),
                "cpu_ms_per_doc": round(cpu_s * 1000 / docs, 1) if docs else None,
                "rss_mb": round(sum(b.procs[p].rss_bytes for p in members) / 1e6, 1),
                "processes": len(members),
            }
        busy = (b.machine[0] - a.machine[0]) / CLK_TCK
        out["_machine"] = {
            "wall_s": round(wall, 2),
            "busy_cores": round(busy / wall, 2),
            # Everything else on the machine: other engineers' work, the shared PostgreSQL's
            # other databases, the system.
            "others_cores": round(max(0.0, busy - total_ticks / CLK_TCK) / wall, 2),
            "loadavg": [round(x, 2) for x in b.loadavg],
        }
        return out


def events_handled(local: LocalPlatform) -> dict[str, dict[str, dict[str, int]] | None]:
    """Events each consumer process has handled so far, per outcome ("handled", "duplicate":
    already handled, e.g. published twice) and topic, from its Prometheus
    `messaging_process_duration_seconds_count`; None when unreadable. With replicas this shows
    how Kafka spread the partitions over them."""
    import httpx

    out: dict[str, dict[str, dict[str, int]] | None] = {}
    for name in local.processes:
        service, _ = split_process_name(name)
        port = local.metrics_port(name)
        if service not in local.replicated or not port:
            continue
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:
            out[name] = None
            continue
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        for line in text.splitlines():
            if not line.startswith("messaging_process_duration_seconds_count{"):
                continue
            labels, _, value = line.rpartition(" ")
            topic = labels.partition('messaging_destination_name="')[2].partition('"')[0]
            outcome = labels.partition('outcome="')[2].partition('"')[0]
            counts[outcome if outcome in ("handled", "duplicate") else "other"][topic or "?"] += int(
                float(value)
            )
        out[name] = {outcome: dict(sorted(c.items())) for outcome, c in sorted(counts.items())}
    return out


def storage_sample(stack: Stack) -> dict[str, dict[str, int]]:
    """Bytes on disk now: each service's PostgreSQL database (pg_database_size), docstore's
    blobs, and each Kafka topic's log segments (*.log files, all partitions). The difference
    between two samples divided by the documents accepted in between is what a document
    costs to keep (WAL, Kafka index files and the replication factor not included);
    `pg_commits` counts each database's committed transactions (pg_stat_database), and
    `kafka_messages` each topic's messages (the sum of its partitions' end offsets). On SQLite
    (no `db_prefix`) the databases' sizes are their files' and commits are not counted."""
    import psycopg

    out: dict[str, dict[str, int]] = {
        "postgresql": {},
        "pg_commits": {},
        "sqlite": {},
        "blobs": {},
        "kafka": {},
        "kafka_messages": kafka_messages(stack),
    }
    if not stack.db_prefix:
        for service in GRPC_SERVICES:
            files = stack.data_dir.glob(f"{service}.db*")
            out["sqlite"][service] = sum(f.stat().st_size for f in files if f.is_file())
    try:
        if not stack.db_prefix:
            raise _NotPostgres
        with psycopg.connect(
            f"postgresql://lienthong:lienthong@127.0.0.1:{stack.ports.pgport}/postgres", autocommit=True
        ) as conn:
            for service in GRPC_SERVICES:
                row = conn.execute(
                    "SELECT pg_database_size(%s)", (f"{stack.db_prefix}_{service}",)
                ).fetchone()
                out["postgresql"][service] = int(row[0]) if row and row[0] is not None else 0
                # Transactions committed in the database so far (statistics flushed within ~1 s).
                row = conn.execute(
                    "SELECT xact_commit FROM pg_stat_database WHERE datname = %s",
                    (f"{stack.db_prefix}_{service}",),
                ).fetchone()
                out["pg_commits"][service] = int(row[0]) if row and row[0] is not None else 0
    except _NotPostgres:
        pass
    except Exception as error:  # noqa: BLE001 - a figure, not a reason to fail the run
        print(f"(could not read the database sizes: {error})", file=sys.stderr)
    blobs = stack.data_dir / "blobs"
    out["blobs"]["docstore"] = (
        sum(f.stat().st_size for f in blobs.rglob("*") if f.is_file()) if blobs.exists() else 0
    )
    logs = ROOT / ".data" / f"kafka-{stack.ports.kafka}" / "logs"
    topics: Counter[str] = Counter()
    if logs.exists():
        for segment in logs.glob("lienthong.*-*/*.log"):
            topics[segment.parent.name.rpartition("-")[0]] += segment.stat().st_size
    out["kafka"] = dict(sorted(topics.items()))
    return out


class _NotPostgres(Exception):
    """The stack runs on SQLite: no PostgreSQL figures to read."""


def kafka_messages(stack: Stack) -> dict[str, int]:
    """Messages in each of the platform's topics so far (sum of the partitions' end offsets)."""
    from kafka import KafkaConsumer  # type: ignore[import-untyped]
    from kafka.structs import TopicPartition  # type: ignore[import-untyped]

    from lienthong_common.outbox import ALL_TOPICS

    try:
        consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{stack.ports.kafka}", client_id="bench-meter")
    except Exception as error:  # noqa: BLE001 - a figure, not a reason to fail the run
        print(f"(could not count the topics' messages: {error})", file=sys.stderr)
        return {}
    try:
        out = {}
        for topic in ALL_TOPICS:
            partitions = consumer.partitions_for_topic(topic) or set()
            ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions]) if partitions else {}
            out[topic] = int(sum(ends.values()))
        return out
    finally:
        consumer.close()


def storage_per_doc(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], docs: int
) -> dict[str, Any]:
    """Per accepted document between two samples: bytes per database, blob store and topic,
    and commits per database."""
    out: dict[str, Any] = {}
    for kind, values in after.items():
        # Bytes to the byte; commits and messages to a tenth.
        digits = 1 if kind in ("pg_commits", "kafka_messages") else None
        out[kind] = {
            name: round((size - before.get(kind, {}).get(name, 0)) / docs, digits) if docs else None
            for name, size in values.items()
        }
    return out
