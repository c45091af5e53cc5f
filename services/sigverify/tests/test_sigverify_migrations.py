"""The Alembic migrations build a database the service can use."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import inspect

from lienthong_common.db import make_engine, make_session_factory, transaction, upgrade_database
from lienthong_common.outbox import TOPIC_VERIFIED, new_event
from lienthong_common.pades import Indication
from lienthong_sigverify import repository
from lienthong_sigverify.domain import Report
from lienthong_sigverify.main import MIGRATIONS
from lienthong_sigverify.models import OUTBOX, Base


def test_migrations_on_a_fresh_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade_database(url, MIGRATIONS)
    upgrade_database(url, MIGRATIONS)  # a second run at head does nothing

    engine = make_engine(url)
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    sessions = make_session_factory(engine)
    at = datetime(2025, 7, 1, tzinfo=UTC)
    report = Report(Indication.INDETERMINATE, "NO_SIGNATURE", "no signature")
    with transaction(sessions) as session:
        repository.save_report(session, document_id="doc-1", report=report, verified_at=at)
        OUTBOX.add(session, topic=TOPIC_VERIFIED, key="doc-1", event=new_event("doc-1"))
        assert OUTBOX.claim_first_time(session, consumer="lienthong-sigverify", event_id="e1")
    with transaction(sessions) as session:
        stored = repository.get_report(session, document_id="doc-1")
        assert OUTBOX.backlog(session) == 1
    assert stored is not None
    assert stored.report == report
    assert stored.verified_at == at
    engine.dispose()
