"""Cursor paging while documents keep arriving from concurrent writers: nothing skipped or repeated."""

from __future__ import annotations

import threading
import time

from routing_support import HA_LONG, FakeDirectory, route
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from lienthong_common.db import transaction
from lienthong_routing import deliveries

PER_WRITER = 40


def _writer(sessions: sessionmaker[Session], routed: list[str], errors: list[BaseException]) -> None:
    directory = FakeDirectory()
    try:
        for _ in range(PER_WRITER):
            for attempt in range(50):  # what the consumer does: retry the transaction on conflict
                try:
                    with transaction(sessions) as session:
                        document_id = route(session, directory, recipients=[HA_LONG])
                    routed.append(document_id)
                    break
                except (IntegrityError, OperationalError):
                    time.sleep(0.005 * (attempt + 1))
            else:
                raise AssertionError("a write kept conflicting")
    except BaseException as error:
        errors.append(error)


def test_paging_under_concurrent_arrivals(sessions: sessionmaker[Session]) -> None:
    routed: list[str] = []
    errors: list[BaseException] = []
    writers = [threading.Thread(target=_writer, args=(sessions, routed, errors)) for _ in range(2)]
    for w in writers:
        w.start()
    seen: list[str] = []
    sequences: list[int] = []
    cursor = ""
    while any(w.is_alive() for w in writers) or len(seen) < len(routed):
        with transaction(sessions) as session:
            page = deliveries.inbox(session=session, agency_code=HA_LONG, cursor=cursor, limit=7)
        seen += [doc.id for _, doc in page.items]
        sequences += [d.inbox_sequence for d, _ in page.items]
        cursor = page.next_cursor
        if not page.items:
            time.sleep(0.01)
    for w in writers:
        w.join()
    assert errors == []
    assert len(routed) == 2 * PER_WRITER
    assert sorted(seen) == sorted(routed)  # every document once
    assert len(set(seen)) == len(seen)
    assert sequences == sorted(sequences) == list(range(1, len(routed) + 1))  # oldest first, no gaps
