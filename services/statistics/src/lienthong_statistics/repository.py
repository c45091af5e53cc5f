"""Database reads and writes for statistics (keyword-only, each taking the caller's session)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lienthong_statistics.models import COUNTERS, AgencyMonthCount

TABLE = cast(Table, AgencyMonthCount.__table__)


def add_to_count(*, session: Session, agency_code: str, month: str, counter: str, amount: int = 1) -> None:
    """Add to one counter of (agency, month), creating the row when it is the first."""
    if counter not in COUNTERS:
        raise ValueError(f"unknown counter {counter!r}")
    column = TABLE.c[counter]
    where = (TABLE.c.agency_code == agency_code, TABLE.c.month == month)
    increment = update(TABLE).where(*where).values({counter: column + amount})
    if cast(CursorResult[Any], session.execute(increment)).rowcount:
        return
    try:
        # A savepoint, so losing an insert race to another replica only costs this statement.
        with session.begin_nested():
            session.execute(
                insert(TABLE).values(
                    agency_code=agency_code,
                    month=month,
                    **{name: (amount if name == counter else 0) for name in COUNTERS},
                )
            )
    except IntegrityError:
        session.execute(increment)


def counts_between(*, session: Session, from_month: str, to_month: str) -> list[AgencyMonthCount]:
    """Every (agency, month) row with from_month <= month <= to_month (YYYY-MM sorts as text)."""
    query = (
        select(AgencyMonthCount)
        .where(AgencyMonthCount.month >= from_month, AgencyMonthCount.month <= to_month)
        .order_by(AgencyMonthCount.agency_code, AgencyMonthCount.month)
    )
    return list(session.scalars(query))


def first_month(*, session: Session) -> str | None:
    """The earliest month anything was counted in."""
    return session.scalar(select(func.min(AgencyMonthCount.month)))
