"""Fixtures: a fresh SQLite directory per test, and small factories for agencies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lienthong_common.db import make_engine, make_session_factory, transaction
from lienthong_common.outbox import install_after_commit_hooks
from lienthong_directory import domain
from lienthong_directory.domain import AgencyRecord
from lienthong_directory.models import Base


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'directory.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    factory = make_session_factory(engine)
    install_after_commit_hooks(factory)
    return factory


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction, rolled back at the end."""
    with sessions() as session, session.begin():
        yield session
        session.rollback()


def add_agency(
    session: Session,
    code: str,
    tier: int,
    name: str = "",
    *,
    on: date | None = None,
    status: str = "active",
    successor: str = "",
) -> domain.UpsertOutcome:
    """Upsert an agency effective `on` (default today)."""
    record = AgencyRecord(
        code=code, name=name or f"Cơ quan {code}", tier=tier, status=status, successor_code=successor
    )
    return domain.upsert_agency(session=session, record=record, effective_from=on)


@pytest.fixture
def quang_ninh(sessions: sessionmaker[Session]) -> None:
    """Quảng Ninh root, a district and a commune under it, all from 2020-01-01."""
    day = date(2020, 1, 1)
    with transaction(sessions) as session:
        add_agency(session, "000.00.00.H49", 2, "Ủy ban nhân dân tỉnh Quảng Ninh", on=day)
        add_agency(session, "000.00.12.H49", 3, "Ủy ban nhân dân huyện Hoành Bồ", on=day)
        add_agency(session, "000.00.03.H49", 3, "Ủy ban nhân dân thành phố Hạ Long", on=day)
        add_agency(session, "000.01.03.H49", 4, "Ủy ban nhân dân phường Hồng Gai", on=day)
