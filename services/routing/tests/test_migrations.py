"""The Alembic migrations build a working database that matches the models."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from routing_support import HA_LONG, FakeDirectory, route

from lienthong_common.db import make_engine, make_session_factory, transaction, upgrade_database
from lienthong_routing import deliveries
from lienthong_routing.main import MIGRATIONS_DIR
from lienthong_routing.models import Base


def test_upgrade_on_a_fresh_database_then_use_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade_database(url, MIGRATIONS_DIR)
    upgrade_database(url, MIGRATIONS_DIR)  # idempotent at head

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []

        sessions = make_session_factory(engine)
        with transaction(sessions) as session:
            document_id = route(session, FakeDirectory(), recipients=[HA_LONG])
            deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="01")
        with transaction(sessions) as session:
            [(delivery, _)] = deliveries.inbox(session=session, agency_code=HA_LONG).items
            assert delivery.state == "arrived"
    finally:
        engine.dispose()
