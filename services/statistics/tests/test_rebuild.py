"""Rebuild: replay every record into a fresh store, compare with the live one, optionally apply."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker
from statistics_support import COMMUNE, DEPARTMENT, SENDER, delivery, exchange, refused

from lienthong.events.v1 import events_pb2
from lienthong_common.db import transaction
from lienthong_common.errors import DomainError, ErrorKind
from lienthong_statistics import repository
from lienthong_statistics.consumers import ExchangeEvents
from lienthong_statistics.models import OUTBOX, AgencyMonthCount
from lienthong_statistics.rebuild import Partition, Rebuilder, Record


class ListReplay:
    """Records on one partition, some twice (as a crash between commit and offset would leave)."""

    def __init__(self, events: list[events_pb2.Event]) -> None:
        self.stored = [Record("t", 0, i, e.SerializeToString()) for i, e in enumerate(events)]
        self.closed = False

    def end_offsets(self) -> dict[Partition, int]:
        return {("t", 0): len(self.stored)}

    def committed(self) -> dict[Partition, int]:
        return {("t", 0): len(self.stored)}

    def records(self) -> Iterator[Record]:
        yield from self.stored

    def close(self) -> None:
        self.closed = True


def history() -> list[events_pb2.Event]:
    events = [
        *exchange(SENDER, [DEPARTMENT, COMMUNE], "2025-08-04T02:00:00Z"),
        *exchange(DEPARTMENT, [SENDER], "2025-09-04T02:00:00Z"),
        refused(COMMUNE, [SENDER], "2025-09-05T02:00:00Z"),
        delivery(
            SENDER, DEPARTMENT, "2025-09-06T02:00:00Z", state="accepted", previous="delivered", code="03"
        ),
    ]
    for index, event in enumerate(events):
        event.document_id = f"doc-{index % 3}"
    return events


def live_from(sessions: sessionmaker[Session], events: list[events_pb2.Event]) -> None:
    for event in events:
        with transaction(sessions) as session:
            if OUTBOX.claim_first_time(session, consumer="lienthong-statistics", event_id=event.event_id):
                ExchangeEvents().handle(session, event)


def test_rebuild_equals_live_with_duplicates_on_the_topic(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    events = history()
    live_from(sessions, events)
    replayed = events + random.Random(7).sample(events, 4)  # redelivered duplicates
    replay = ListReplay(replayed)
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = Rebuilder(sessions=sessions, open_replay=lambda: replay, workdir=workdir).rebuild()
    assert result.identical, result.differences
    assert (result.records_read, result.events_counted, result.applied) == (len(replayed), len(events), False)
    assert replay.closed and list(workdir.iterdir()) == []  # the fresh store is gone afterwards


def test_rebuild_finds_and_repairs_a_damaged_store(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    events = history()
    live_from(sessions, events)
    with transaction(sessions) as session:
        before = repository.snapshot(session=session)
        session.execute(delete(AgencyMonthCount).where(AgencyMonthCount.agency_code == DEPARTMENT))
    rebuilder = Rebuilder(sessions=sessions, open_replay=lambda: ListReplay(events), workdir=tmp_path)
    found = rebuilder.rebuild()
    assert not found.identical and any(DEPARTMENT in d for d in found.differences)
    repaired = rebuilder.rebuild(apply=True)
    assert repaired.applied
    with transaction(sessions) as session:
        assert repository.snapshot(session=session) == before
    assert rebuilder.rebuild().identical


def test_only_one_rebuild_at_a_time(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    rebuilder = Rebuilder(sessions=sessions, open_replay=lambda: ListReplay([]), workdir=tmp_path)
    rebuilder._running.acquire()
    with pytest.raises(DomainError) as raised:
        rebuilder.rebuild()
    assert raised.value.kind is ErrorKind.CONFLICT
