"""The Alembic migrations build a working database that matches the models."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from statistics_support import COMMUNE, SENDER, demo_directory, exchange

from lienthong_common.db import make_engine, make_session_factory, transaction, upgrade_database
from lienthong_statistics.consumers import ExchangeEvents
from lienthong_statistics.main import MIGRATIONS_DIR
from lienthong_statistics.models import Base
from lienthong_statistics.report import get_report


def test_upgrade_on_a_fresh_database_then_use_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade_database(url, MIGRATIONS_DIR)
    upgrade_database(url, MIGRATIONS_DIR)  # idempotent at head

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        sessions = make_session_factory(engine)
        with transaction(sessions) as session:
            for event in exchange(SENDER, [COMMUNE], "2025-08-04T02:00:00Z"):
                ExchangeEvents().handle(session, event)
        with transaction(sessions) as session:
            report = get_report(
                session=session,
                directory=demo_directory(),
                province_code="H49",
                from_month="2025-08",
                to_month="2025-08",
            )
        assert sum(r.documents_received for r in report.rows if r.month == "cumulative") == 1
    finally:
        engine.dispose()
