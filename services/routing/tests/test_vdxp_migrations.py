"""Migration 0003 on SQLite and PostgreSQL, and the pending reads running over its partial indexes.

A VDXP system polls its pending list every few seconds: each poll must be an index read of the
pending rows, never a scan of every delivery or status message. The plans are asked of the
database for the very statements the pending list executes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from routing_support import HA_LONG, SENDER, FakeDirectory, route
from sqlalchemy import Engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

from lienthong_common import db
from lienthong_common.testing import throwaway_postgres
from lienthong_routing import deliveries, vdxp_pending
from lienthong_routing.main import MIGRATIONS_DIR
from lienthong_routing.models import Base

PENDING_INDEXES = {"ix_deliveries_untaken", "ix_status_messages_pending"}


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def statements_of_a_poll(engine: Engine, sessions: sessionmaker[Session]) -> list[tuple[str, Any]]:
    """Route, answer, then poll both kinds; the SELECTs the poll ran, with their parameters."""
    with db.transaction(sessions) as session:
        document_id = route(session, FakeDirectory(), recipients=[HA_LONG])
        route(session, FakeDirectory(), recipients=[HA_LONG])
        deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="03")
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with db.transaction(sessions) as session:
            listed = vdxp_pending.list_pending(session=session, agency_codes=[HA_LONG, SENDER])
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert [i.kind for i in listed.items] == ["edoc", "status"] and listed.total == 2
    return [(s, p) for s, p in seen if "deliveries" in s or "FROM status_messages" in s]


def test_sqlite_upgrade_downgrade_upgrade_and_the_poll_uses_the_partial_indexes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vdxp.db'}"
    db.upgrade_database(url, MIGRATIONS_DIR)
    command.downgrade(alembic_config(url), "0002")
    engine = db.make_engine(url)
    try:
        assert "status_messages" not in inspect(engine).get_table_names()
        engine.dispose()
        db.upgrade_database(url, MIGRATIONS_DIR)
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        statements = statements_of_a_poll(engine, db.make_session_factory(engine))
        assert len(statements) == 4  # edoc items, edoc count, status items, status count
        used = set()
        with engine.connect() as connection:
            for statement, parameters in statements:
                plan = " ".join(
                    str(row[-1])
                    for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                )
                assert "SCAN deliveries" not in plan and "SCAN status_messages" not in plan, plan
                used |= {name for name in PENDING_INDEXES if name in plan}
        assert used == PENDING_INDEXES
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with throwaway_postgres("routing_vdxp") as url:
        db.upgrade_database(url, MIGRATIONS_DIR)
        yield url


def test_postgresql_schema_matches_and_the_poll_uses_the_partial_indexes(postgres_url: str) -> None:
    engine = db.make_engine(postgres_url)
    try:
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        statements = statements_of_a_poll(engine, db.make_session_factory(engine))
        used = set()
        with engine.connect() as connection:
            # Tables this small are cheapest to scan: forbid it, and see which index is chosen.
            connection.exec_driver_sql("SET enable_seqscan = off")
            for statement, parameters in statements:
                plan = " ".join(
                    str(row[0]) for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
                )
                used |= {name for name in PENDING_INDEXES if name in plan}
        assert used == PENDING_INDEXES
        command.downgrade(alembic_config(postgres_url), "0002")
        assert "status_messages" not in inspect(engine).get_table_names()
        db.upgrade_database(postgres_url, MIGRATIONS_DIR)
    finally:
        engine.dispose()
