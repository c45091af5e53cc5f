"""`lienthong stats rebuild`: replay the topics from offset 0 into a fresh store and compare.

The rebuild proves (or restores) exact counting. While it runs, the live consumer pauses
between two events (it holds no transaction then). The rebuild notes the end of every
partition, replays everything before it through the very handler the live consumer uses into a
new SQLite store (its own processed-event ids, so duplicates on the topics count once), and
brings the live store to the same cut by handing the live consumer the events past its
committed offsets (already-handled ones are no-ops by event id). Both stores then reflect
exactly the same events, and their derived tables must be equal row for row. With `apply`,
differing live tables are replaced by the rebuilt ones in one transaction.

Paper reports are primary data (not events) and are left as they are. The replay needs the
topics to keep every event (retention.ms=-1); a partition whose first offset is not 0 makes the
rebuild refuse, since it could not be exact.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from lienthong.events.v1 import events_pb2
from lienthong_common.db import make_engine, make_session_factory, transaction
from lienthong_common.errors import DomainError, ErrorKind
from lienthong_common.kafka import EventConsumer
from lienthong_common.kafka_access import from_owner
from lienthong_common.settings import KafkaSettings
from lienthong_statistics import repository
from lienthong_statistics.consumers import CONSUMER_GROUP, TOPICS, ExchangeEvents
from lienthong_statistics.models import OUTBOX, Base

log = logging.getLogger(__name__)

Partition = tuple[str, int]
REBUILD_CONSUMER = "lienthong-statistics-rebuild"
BATCH = 500
MAX_DIFFERENCES = 50


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class Replay(Protocol):
    """The topics as they stand: where each partition ends, and every record before that."""

    def end_offsets(self) -> dict[Partition, int]: ...

    def committed(self) -> dict[Partition, int]:
        """The live consumer group's committed offsets."""
        ...

    def records(self) -> Iterator[Record]: ...

    def close(self) -> None: ...


class KafkaReplay:
    """Reads the statistics topics from offset 0 to their end as of opening, with no group."""

    def __init__(self, settings: KafkaSettings, *, topics: list[str], group: str, timeout: float = 600.0):
        from kafka import KafkaConsumer, TopicPartition  # type: ignore[import-untyped]

        self._group = group
        self._settings = settings
        self._timeout = timeout
        self._consumer = KafkaConsumer(
            **settings.client_options(),
            group_id=None,
            enable_auto_commit=False,
            client_id=REBUILD_CONSUMER,
            auto_offset_reset="earliest",
        )
        partitions = []
        for topic in topics:
            for number in sorted(self._consumer.partitions_for_topic(topic) or ()):
                partitions.append(TopicPartition(topic, number))
        self._partitions = partitions
        self._consumer.assign(partitions)
        begin = self._consumer.beginning_offsets(partitions) if partitions else {}
        lost = {f"{tp.topic}/{tp.partition}": off for tp, off in begin.items() if off > 0}
        if lost:
            self.close()
            raise DomainError(
                ErrorKind.CONFLICT,
                f"events were deleted by retention (first offsets {lost}); a replay could not be "
                "exact — keep the topics with retention.ms=-1",
            )
        ends = self._consumer.end_offsets(partitions) if partitions else {}
        self._ends = {(tp.topic, tp.partition): int(off) for tp, off in ends.items()}
        if partitions:
            self._consumer.seek_to_beginning(*partitions)

    def end_offsets(self) -> dict[Partition, int]:
        return dict(self._ends)

    def committed(self) -> dict[Partition, int]:
        from kafka.admin import KafkaAdminClient  # type: ignore[import-untyped]

        admin = KafkaAdminClient(client_id=REBUILD_CONSUMER, **self._settings.client_options())
        try:
            if hasattr(admin, "list_group_offsets"):  # kafka-python 3
                offsets = admin.list_group_offsets({self._group: None}).get(self._group, {})
            else:
                offsets = admin.list_consumer_group_offsets(self._group)
        finally:
            admin.close()
        return {
            (tp.topic, tp.partition): int(meta.offset) for tp, meta in offsets.items() if meta.offset >= 0
        }

    def records(self) -> Iterator[Record]:
        remaining = {p for p, end in self._ends.items() if end > 0}
        deadline = time.monotonic() + self._timeout
        while remaining:
            if time.monotonic() > deadline:
                raise DomainError(ErrorKind.TIMED_OUT, "the replay did not reach the end in time")
            batches = self._consumer.poll(timeout_ms=500, max_records=BATCH)
            for tp, batch in batches.items():
                key = (tp.topic, tp.partition)
                for message in batch:
                    if message.offset < self._ends[key]:
                        yield Record(
                            tp.topic, tp.partition, message.offset, message.value, message.headers or []
                        )
                    if message.offset >= self._ends[key] - 1:
                        remaining.discard(key)
            for tp in self._partitions:
                key = (tp.topic, tp.partition)
                if key in remaining and self._consumer.position(tp) >= self._ends[key]:
                    remaining.discard(key)

    def close(self) -> None:
        self._consumer.close(autocommit=False)


@dataclass
class RebuildResult:
    records_read: int = 0
    events_counted: int = 0
    identical: bool = True
    differences: list[str] = field(default_factory=list)
    applied: bool = False
    rows_compared: int = 0
    seconds: float = 0.0
    end_offsets: dict[str, int] = field(default_factory=dict)


def compare(live: dict[str, set[tuple[Any, ...]]], rebuilt: dict[str, set[tuple[Any, ...]]]) -> list[str]:
    """Human-readable differences between two snapshots (keyed by each row's identifying columns)."""
    differences = []
    for table in sorted(set(live) | set(rebuilt)):
        key_width = 2
        mine = {row[:key_width]: row[key_width:] for row in live.get(table, set())}
        theirs = {row[:key_width]: row[key_width:] for row in rebuilt.get(table, set())}
        for key in sorted(set(mine) | set(theirs)):
            if mine.get(key) != theirs.get(key):
                differences.append(
                    f"{table} {' '.join(map(str, key))}: live {mine.get(key)} rebuilt {theirs.get(key)}"
                )
    return differences


class Rebuilder:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        open_replay: Callable[[], Replay],
        consumer: EventConsumer | None = None,
        workdir: Path | None = None,
    ) -> None:
        self._sessions = sessions
        self._open_replay = open_replay
        self._consumer = consumer
        self._workdir = workdir
        self._running = threading.Lock()
        self._count = ExchangeEvents().handle

    def rebuild(self, *, apply: bool = False) -> RebuildResult:
        if not self._running.acquire(blocking=False):
            raise DomainError(ErrorKind.CONFLICT, "a rebuild is already running")
        started = time.monotonic()
        try:
            # The live consumer's guard (a re-entrant lock, see main.py): held, the consumer waits
            # between two transactions while this thread hands it events itself.
            gate = self._consumer.transaction_guard() if self._consumer is not None else nullcontext()
            with gate, tempfile.TemporaryDirectory(prefix="lienthong-rebuild-", dir=self._workdir) as folder:
                result = self._rebuild_into(Path(folder) / "rebuilt.db", apply=apply)
        finally:
            self._running.release()
        result.seconds = round(time.monotonic() - started, 3)
        log.info(
            "rebuild: %d records, %d events, identical=%s, applied=%s in %.1fs",
            result.records_read,
            result.events_counted,
            result.identical,
            result.applied,
            result.seconds,
        )
        return result

    def _rebuild_into(self, path: Path, *, apply: bool) -> RebuildResult:
        engine = make_engine(f"sqlite:///{path}")
        try:
            Base.metadata.create_all(engine)
            shadow = make_session_factory(engine)
            result = RebuildResult()
            replay = self._open_replay()
            try:
                ends = replay.end_offsets()
                committed = replay.committed() if self._consumer is not None else {}
                result.end_offsets = {f"{t}/{p}": off for (t, p), off in sorted(ends.items())}
                pending: list[Record] = []
                for record in replay.records():
                    pending.append(record)
                    if len(pending) >= BATCH:
                        result.events_counted += self._apply(shadow, pending, committed)
                        result.records_read += len(pending)
                        pending = []
                result.events_counted += self._apply(shadow, pending, committed)
                result.records_read += len(pending)
            finally:
                replay.close()
            with transaction(shadow) as session:
                rebuilt = repository.snapshot(session=session)
            with transaction(self._sessions) as session:
                live = repository.snapshot(session=session)
                result.differences = compare(live, rebuilt)
                result.identical = not result.differences
                result.rows_compared = sum(len(v) for v in rebuilt.values())
                if apply and result.differences:
                    repository.replace_derived(session=session, rows=rebuilt)
                    result.applied = True
            result.differences = result.differences[:MAX_DIFFERENCES]
            return result
        finally:
            engine.dispose()

    def _apply(
        self, shadow: sessionmaker[Session], records: list[Record], committed: dict[Partition, int]
    ) -> int:
        """Count a batch into the fresh store; hand the live consumer what it has not committed.

        A record not from its topic's owner is skipped, as the live consumer skips it."""
        records = [r for r in records if from_owner(r.topic, r.headers)]
        counted = 0
        with transaction(shadow) as session:
            for record in records:
                event = events_pb2.Event.FromString(record.value)
                if OUTBOX.claim_first_time(session, consumer=REBUILD_CONSUMER, event_id=event.event_id):
                    self._count(session, event)
                    counted += 1
        if self._consumer is not None:
            for record in records:
                if record.offset >= committed.get((record.topic, record.partition), 0):
                    self._consumer.handle(record.topic, record.value, record.headers)
        return counted


def kafka_replay_opener(settings: KafkaSettings) -> Callable[[], Replay]:
    return lambda: KafkaReplay(settings, topics=TOPICS, group=CONSUMER_GROUP)
