"""Database reads and writes for statistics (keyword-only, each taking the caller's session)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lienthong_statistics.domain import PaperCount
from lienthong_statistics.models import (
    COUNTERS,
    AgencyMonthCount,
    PaperReport,
    PaperReportRevision,
    PendingAcknowledgement,
)

TABLE = cast(Table, AgencyMonthCount.__table__)
PENDING = cast(Table, PendingAcknowledgement.__table__)
# The tables a replay of the events rebuilds (the paper reports are primary data, not derived).
DERIVED_TABLES = (TABLE, PENDING)


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


def _upsert_dialect(session: Session) -> Any:
    """The dialect module with INSERT .. ON CONFLICT (PostgreSQL, SQLite), else None."""
    name = session.get_bind().dialect.name
    return {"postgresql": postgresql, "sqlite": sqlite}.get(name)


@functools.cache
def _count_upsert(dialect_name: str) -> Any:
    """INSERT .. ON CONFLICT DO UPDATE adding every counter, built once per dialect: executed
    with one parameter set per (agency, month) it compiles once (a statement built from the
    rows' values compiled afresh for every event, most of the consumer's own CPU)."""
    dialect = {"postgresql": postgresql, "sqlite": sqlite}[dialect_name]
    statement = dialect.insert(TABLE)
    return statement.on_conflict_do_update(
        index_elements=[TABLE.c.agency_code, TABLE.c.month],
        set_={name: TABLE.c[name] + statement.excluded[name] for name in COUNTERS},
    )


@functools.cache
def _await_insert(dialect_name: str) -> Any:
    """INSERT .. ON CONFLICT DO NOTHING of awaited deliveries, built (and compiled) once."""
    dialect = {"postgresql": postgresql, "sqlite": sqlite}[dialect_name]
    return dialect.insert(PENDING).on_conflict_do_nothing()


def add_counts(*, session: Session, amounts: Mapping[tuple[str, str, str], int]) -> None:
    """Add to many counters at once, amounts keyed by (agency, month, counter): one
    INSERT .. ON CONFLICT DO UPDATE statement for all of them (row by row elsewhere)."""
    rows: dict[tuple[str, str], dict[str, int]] = {}
    for (agency_code, month, counter), amount in amounts.items():
        if counter not in COUNTERS:
            raise ValueError(f"unknown counter {counter!r}")
        row = rows.setdefault((agency_code, month), dict.fromkeys(COUNTERS, 0))
        row[counter] += amount
    if not rows:
        return
    dialect = _upsert_dialect(session)
    if dialect is None:
        for (agency_code, month, counter), amount in amounts.items():
            add_to_count(
                session=session, agency_code=agency_code, month=month, counter=counter, amount=amount
            )
        return
    # Sorted: concurrent replicas lock the rows in one order.
    parameters = [{"agency_code": a, "month": m, **counts} for (a, m), counts in sorted(rows.items())]
    session.execute(_count_upsert(session.get_bind().dialect.name), parameters)


def await_acknowledgements(*, session: Session, awaited: Iterable[tuple[str, str, str]]) -> None:
    """Remember deliveries (document, recipient, day) until acknowledged, in one statement; a
    delivery already awaited is left as it is."""
    rows = [{"document_id": d, "recipient_code": r, "delivered_day": day} for d, r, day in awaited]
    if not rows:
        return
    dialect = _upsert_dialect(session)
    if dialect is None:
        for row in rows:
            await_acknowledgement(
                session=session,
                document_id=row["document_id"],
                recipient_code=row["recipient_code"],
                day=row["delivered_day"],
            )
        return
    session.execute(_await_insert(session.get_bind().dialect.name), rows)


def acknowledge_once(*, session: Session, document_id: str, recipient_code: str) -> str | None:
    """`acknowledge` in one round trip (DELETE .. RETURNING where the database has it)."""
    if _upsert_dialect(session) is None:
        return acknowledge(session=session, document_id=document_id, recipient_code=recipient_code)
    deleted = session.execute(
        delete(PENDING)
        .where(PENDING.c.document_id == document_id, PENDING.c.recipient_code == recipient_code)
        .returning(PENDING.c.delivered_day)
    ).first()
    return None if deleted is None else str(deleted[0])


def await_acknowledgement(*, session: Session, document_id: str, recipient_code: str, day: str) -> None:
    """Remember a delivery until its recipient acknowledges it (a repeat changes nothing)."""
    exists = session.get(PendingAcknowledgement, (document_id, recipient_code))
    if exists is None:
        session.add(
            PendingAcknowledgement(document_id=document_id, recipient_code=recipient_code, delivered_day=day)
        )
        session.flush()


def acknowledge(*, session: Session, document_id: str, recipient_code: str) -> str | None:
    """Forget an awaited delivery; returns the day it was delivered, None when none was awaited."""
    pending = session.get(PendingAcknowledgement, (document_id, recipient_code))
    if pending is None:
        return None
    day = pending.delivered_day
    session.execute(
        delete(PENDING).where(
            PENDING.c.document_id == document_id, PENDING.c.recipient_code == recipient_code
        )
    )
    return day


def pending_by_recipient(*, session: Session, before_day: str | None = None) -> dict[str, int]:
    """Deliveries awaiting acknowledgement per recipient (only those delivered before a day)."""
    query = select(PENDING.c.recipient_code, func.count()).group_by(PENDING.c.recipient_code)
    if before_day is not None:
        query = query.where(PENDING.c.delivered_day < before_day)
    return {code: int(n) for code, n in session.execute(query)}


def counts_between(*, session: Session, from_month: str, to_month: str) -> list[AgencyMonthCount]:
    """Every (agency, month) row with from_month <= month <= to_month (YYYY-MM sorts as text)."""
    query = (
        select(AgencyMonthCount)
        .where(AgencyMonthCount.month >= from_month, AgencyMonthCount.month <= to_month)
        .order_by(AgencyMonthCount.agency_code, AgencyMonthCount.month)
    )
    return list(session.scalars(query))


def totals_by_agency(*, session: Session) -> dict[str, dict[str, int]]:
    """Every counter summed over all months, per agency."""
    columns = [func.sum(TABLE.c[name]) for name in COUNTERS]
    query = select(TABLE.c.agency_code, *columns).group_by(TABLE.c.agency_code)
    return {
        row[0]: {name: int(value or 0) for name, value in zip(COUNTERS, row[1:], strict=True)}
        for row in session.execute(query)
    }


def first_month(*, session: Session) -> str | None:
    """The earliest month anything was counted or reported in."""
    counted = session.scalar(select(func.min(AgencyMonthCount.month)))
    reported = session.scalar(select(func.min(PaperReport.period)))
    return min((m for m in (counted, reported) if m), default=None)


def paper_between(*, session: Session, from_month: str, to_month: str) -> list[PaperCount]:
    query = select(PaperReport).where(PaperReport.period >= from_month, PaperReport.period <= to_month)
    return [
        PaperCount(
            agency_code=r.agency_code,
            month=r.period,
            paper_issued=r.paper_issued,
            paper_received=r.paper_received,
            electronic_issued_other=r.electronic_issued_other,
        )
        for r in session.scalars(query)
    ]


def current_paper(*, session: Session, agency_code: str, period: str) -> PaperReport | None:
    return session.get(PaperReport, (agency_code, period))


def save_paper(
    *,
    session: Session,
    paper: PaperCount,
    note: str,
    reported_by: str,
    at: datetime,
) -> tuple[PaperReport, bool, bool]:
    """Record a report: (current, changed, created). The same values again change nothing.

    A different report for the same agency and period replaces the current one; every accepted
    revision stays in paper_report_revisions.
    """
    current = session.get(PaperReport, (paper.agency_code, paper.month), with_for_update=True)
    values = {
        "paper_issued": paper.paper_issued,
        "paper_received": paper.paper_received,
        "electronic_issued_other": paper.electronic_issued_other,
        "note": note,
    }
    if current is not None and all(getattr(current, k) == v for k, v in values.items()):
        return current, False, False
    created = current is None
    revision = 1 if current is None else current.revision + 1
    if current is None:
        current = PaperReport(agency_code=paper.agency_code, period=paper.month)
        session.add(current)
    for key, value in values.items():
        setattr(current, key, value)
    current.revision = revision
    current.reported_by = reported_by
    current.reported_at = at
    session.add(
        PaperReportRevision(
            agency_code=paper.agency_code,
            period=paper.month,
            revision=revision,
            reported_by=reported_by,
            reported_at=at,
            **values,
        )
    )
    session.flush()
    return current, True, created


def paper_history(*, session: Session, agency_code: str, period: str = "") -> list[PaperReportRevision]:
    query = select(PaperReportRevision).where(PaperReportRevision.agency_code == agency_code)
    if period:
        query = query.where(PaperReportRevision.period == period)
    return list(session.scalars(query.order_by(PaperReportRevision.period, PaperReportRevision.revision)))


def snapshot(*, session: Session) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of the derived tables, for comparing two stores (zero counters ignored)."""
    counts = {
        tuple(row)
        for row in session.execute(
            select(TABLE.c.agency_code, TABLE.c.month, *[TABLE.c[n] for n in COUNTERS])
        )
        if any(row[2:])
    }
    pending = {
        tuple(row)
        for row in session.execute(
            select(PENDING.c.document_id, PENDING.c.recipient_code, PENDING.c.delivered_day)
        )
    }
    return {TABLE.name: counts, PENDING.name: pending}


def replace_derived(*, session: Session, rows: dict[str, set[tuple[Any, ...]]]) -> None:
    """Replace the derived tables' contents with `rows` (as `snapshot` returns them)."""
    session.execute(delete(TABLE))
    session.execute(delete(PENDING))
    counts = [
        {"agency_code": r[0], "month": r[1], **dict(zip(COUNTERS, r[2:], strict=True))}
        for r in rows[TABLE.name]
    ]
    if counts:
        session.execute(insert(TABLE), counts)
    pending = [
        {"document_id": r[0], "recipient_code": r[1], "delivered_day": r[2]} for r in rows[PENDING.name]
    ]
    if pending:
        session.execute(insert(PENDING), pending)
