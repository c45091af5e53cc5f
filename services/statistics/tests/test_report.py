"""GetReport: grouping by province, tier and month, cumulative rows, replay reproducibility."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from sqlalchemy.orm import Session
from statistics_support import (
    COMMUNE,
    DEPARTMENT,
    OTHER_PROVINCE,
    SENDER,
    FakeDirectory,
    delivery,
    demo_directory,
    exchange,
    fresh_sessions,
    refused,
)

from lienthong.events.v1 import events_pb2
from lienthong_common.db import transaction
from lienthong_common.errors import DomainError, ErrorKind
from lienthong_statistics.clients import CachedAgencyDirectory
from lienthong_statistics.consumers import ExchangeEvents
from lienthong_statistics.domain import AgencyInfo
from lienthong_statistics.report import get_report

DISSOLVED = "000.00.24.H49"
AUG, SEP = "2025-08-04T02:00:00Z", "2025-09-09T02:00:00Z"
NOW = datetime(2025, 10, 15, tzinfo=UTC)


def history() -> list[events_pb2.Event]:
    return [
        *exchange(SENDER, [DEPARTMENT, COMMUNE], AUG),
        *exchange(DISSOLVED, [SENDER], AUG),
        *exchange(DEPARTMENT, [SENDER, OTHER_PROVINCE], SEP),
        refused(DEPARTMENT, [SENDER], SEP),
        *exchange("vxp.saas.03", [SENDER], SEP),
        delivery(
            SENDER, DEPARTMENT, SEP, state="accepted", previous="delivered", code="03", actor=DEPARTMENT
        ),
    ]


def table(report: object) -> list[tuple[object, ...]]:
    return [
        (
            r.province_code,
            r.tier,
            r.month,
            r.agencies,
            r.agencies_connected,
            r.documents_sent,
            r.documents_received,
            r.documents_refused,
            r.statuses,
        )
        for r in report.rows  # type: ignore[attr-defined]
    ]


@pytest.fixture
def counted(session: Session) -> Session:
    for event in history():
        ExchangeEvents().handle(session, event)
    return session


def test_report_for_one_province_by_tier_and_month(counted: Session) -> None:
    report = get_report(
        session=counted,
        directory=demo_directory(),
        province_code="H49",
        from_month="2025-08",
        to_month="2025-09",
    )
    assert table(report) == [
        ("H49", 2, "2025-08", 1, 1, 1, 1, 0, 0),
        ("H49", 2, "2025-09", 1, 1, 0, 2, 0, 0),
        ("H49", 2, "cumulative", 1, 1, 1, 3, 0, 0),
        # The dissolved district's document counts; it is neither an agency now nor connected.
        ("H49", 3, "2025-08", 2, 1, 1, 1, 0, 0),
        ("H49", 3, "2025-09", 2, 1, 1, 0, 1, 1),
        ("H49", 3, "cumulative", 2, 1, 2, 1, 1, 1),
        ("H49", 4, "2025-08", 1, 1, 0, 1, 0, 0),
        ("H49", 4, "2025-09", 1, 0, 0, 0, 0, 0),
        ("H49", 4, "cumulative", 1, 1, 0, 1, 0, 0),
    ]
    assert [
        (a.agency_code, a.documents_sent, a.documents_received, a.documents_refused) for a in report.agencies
    ] == [
        (SENDER, 1, 3, 0),
        (DEPARTMENT, 1, 1, 1),
        ("000.00.02.H49", 0, 0, 0),
        (DISSOLVED, 1, 0, 0),
        (COMMUNE, 0, 1, 0),
    ]


def test_month_range_limits_the_counts(counted: Session) -> None:
    report = get_report(
        session=counted,
        directory=demo_directory(),
        province_code="H49",
        from_month="2025-09",
        to_month="2025-09",
    )
    assert [r[2] for r in table(report)] == ["2025-09", "cumulative"] * 3
    cumulative = {(r[0], r[1]): r for r in table(report) if r[2] == "cumulative"}
    assert cumulative[("H49", 2)][5:] == (0, 2, 0, 0)


def test_all_provinces_with_defaults_and_unknown_agencies(counted: Session) -> None:
    report = get_report(session=counted, directory=demo_directory(), now=NOW)
    months = sorted({r[2] for r in table(report)})
    assert months == ["2025-08", "2025-09", "2025-10", "cumulative"]
    groups = sorted({(r[0], r[1]) for r in table(report)})
    assert groups == [("", 0), ("H44", 2), ("H49", 2), ("H49", 3), ("H49", 4)]
    cumulative = {(r[0], r[1]): r for r in table(report) if r[2] == "cumulative"}
    assert cumulative[("", 0)][3:6] == (0, 0, 1)  # vxp.saas.03: not in the directory, still counted
    assert cumulative[("H44", 2)][3:7] == (1, 1, 0, 1)
    assert sum(r[5] for r in cumulative.values()) == 4  # every TOTAL_PASSED document once
    assert sum(r[6] for r in cumulative.values()) == 6  # one per delivery


def test_replay_in_any_order_gives_identical_numbers(counted: Session, tmp_path: Path) -> None:
    events = history()
    random.Random(7).shuffle(events)
    replayed = fresh_sessions(tmp_path / "replay.db")
    with transaction(replayed) as session:
        for event in events:
            ExchangeEvents().handle(session, event)
    with transaction(replayed) as session:
        again = get_report(session=session, directory=demo_directory(), now=NOW)
    original = get_report(session=counted, directory=demo_directory(), now=NOW)
    assert table(again) == table(original)
    assert again.agencies == original.agencies


@pytest.mark.parametrize(
    ("from_month", "to_month", "needle"),
    [
        ("2025-13", "", "from_month '2025-13' is not a month"),
        ("", "2025/09", "to_month '2025/09' is not a month"),
        ("2025-10", "2025-09", "from_month 2025-10 is after to_month 2025-09"),
        ("2000-01", "2025-09", "at most 120 months"),
    ],
)
def test_bad_months_are_invalid(session: Session, from_month: str, to_month: str, needle: str) -> None:
    with pytest.raises(DomainError) as raised:
        get_report(session=session, directory=demo_directory(), from_month=from_month, to_month=to_month)
    assert raised.value.kind is ErrorKind.INVALID
    assert needle in raised.value.message


def test_empty_database_reports_this_month(session: Session) -> None:
    report = get_report(session=session, directory=demo_directory(), province_code="H44", now=NOW)
    assert table(report) == [
        ("H44", 2, "2025-10", 1, 0, 0, 0, 0, 0),
        ("H44", 2, "cumulative", 1, 0, 0, 0, 0, 0),
    ]


def test_unreachable_directory_is_unavailable(session: Session) -> None:
    class Down:
        def list_agencies(self) -> list[AgencyInfo]:
            raise grpc.RpcError("connection refused")

    with pytest.raises(DomainError) as raised:
        get_report(session=session, directory=Down(), now=NOW)
    assert raised.value.kind is ErrorKind.UNAVAILABLE


def test_directory_answers_are_cached_for_a_minute() -> None:
    inner = FakeDirectory([AgencyInfo(SENDER, 2, "H49")])
    clock = [1000.0]
    cached = CachedAgencyDirectory(inner, ttl_seconds=60, clock=lambda: clock[0])
    cached.list_agencies()
    clock[0] += 59
    cached.list_agencies()
    assert inner.calls == 1
    clock[0] += 1
    cached.list_agencies()
    assert inner.calls == 2
