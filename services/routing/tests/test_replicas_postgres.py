"""Two routing replicas delivering to the same inboxes at once, on a real PostgreSQL.

Each replica routes its own documents in batched transactions (as EventConsumer does) into the
same recipients' inboxes. Every inbox must come out gap-free with no position taken twice, and
no transaction may fail on the (recipient, position) unique key; a deadlock between the two is
allowed (PostgreSQL aborts one side, the consumer redelivers) and the batch is simply redone.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from routing_support import FakeDirectory, verified_event
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from lienthong_common import db
from lienthong_common.testing import throwaway_postgres
from lienthong_routing.main import MIGRATIONS_DIR as MIGRATIONS
from lienthong_routing.models import Delivery
from lienthong_routing.routed_documents import route_verified_document

ROOT = Path(__file__).resolve().parents[3]
PGPORT = os.environ.get("PGPORT", "55432")
RECIPIENTS = [f"000.00.{i:02d}.H49" for i in range(1, 5)]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with throwaway_postgres("routing_it") as url:
        db.upgrade_database(url, MIGRATIONS)
        yield url


def test_two_replicas_never_take_the_same_inbox_position(postgres_url: str) -> None:
    engine = db.make_engine(postgres_url)
    sessions = db.make_session_factory(engine)
    directory = FakeDirectory()
    failures: list[BaseException] = []
    deadlocks = [0]
    start = threading.Barrier(2)

    def replica(number: int) -> None:
        start.wait()
        for batch in range(8):
            # Each replica walks the recipients in its own order, as different documents would.
            order = RECIPIENTS if number == 0 else list(reversed(RECIPIENTS))
            events = [verified_event(recipients=order[k:] + order[:k]) for k in range(4)]
            for _attempt in range(10):
                try:
                    with sessions() as session, session.begin():
                        for event in events:
                            route_verified_document(session=session, event=event, directory=directory)
                    break
                except sa_exc.OperationalError:  # a deadlock: redone, as the consumer would
                    deadlocks[0] += 1
                except BaseException as error:  # reported by the assertion below
                    failures.append(error)
                    return
            else:
                failures.append(RuntimeError(f"replica {number} batch {batch} kept deadlocking"))

    threads = [threading.Thread(target=replica, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    try:
        assert not failures, failures
        with sessions() as session:
            rows = session.execute(select(Delivery.recipient_code, Delivery.inbox_sequence)).all()
        by_recipient: dict[str, list[int]] = {}
        for code, sequence in rows:
            by_recipient.setdefault(code, []).append(sequence)
        # 2 replicas x 8 batches x 4 documents, every document to every recipient.
        assert {code: sorted(seqs) for code, seqs in by_recipient.items()} == {
            code: list(range(1, 65)) for code in RECIPIENTS
        }
    finally:
        engine.dispose()
