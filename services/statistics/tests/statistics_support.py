"""Test helpers for statistics: agencies, a database and a fake directory (the event factories
are shared, in lienthong_common.testing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from lienthong_common.db import make_engine, make_session_factory
from lienthong_common.testing import at, delivery, exchange, refused, verified
from lienthong_statistics.domain import AgencyInfo
from lienthong_statistics.models import Base

SENDER = "000.00.00.H49"  # provincial People's Committee, tier 2
DEPARTMENT = "000.00.01.H49"  # tier 3
COMMUNE = "000.46.01.H49"  # tier 4
OTHER_PROVINCE = "000.00.00.H44"

__all__ = ["at", "delivery", "exchange", "refused", "verified"]  # re-exported for the tests


def fresh_sessions(path: Path) -> sessionmaker[Session]:
    """Sessions on a new SQLite file with statistics' tables."""
    engine = make_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    return make_session_factory(engine)


@dataclass
class FakeDirectory:
    agencies: list[AgencyInfo] = field(default_factory=list)
    calls: int = 0

    def list_agencies(self) -> list[AgencyInfo]:
        self.calls += 1
        return list(self.agencies)


def demo_directory() -> FakeDirectory:
    return FakeDirectory(
        [
            AgencyInfo(SENDER, 2, "H49"),
            AgencyInfo(DEPARTMENT, 3, "H49"),
            AgencyInfo("000.00.02.H49", 3, "H49"),
            AgencyInfo(COMMUNE, 4, "H49"),
            AgencyInfo("000.00.24.H49", 3, "H49", status="dissolved"),
            AgencyInfo(OTHER_PROVINCE, 2, "H44"),
        ]
    )
