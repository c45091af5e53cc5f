"""Paper reports (idempotent, correctable, audited) and the rates they make with electronic counts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session
from statistics_support import COMMUNE, DEPARTMENT, SENDER, delivery, demo_directory, exchange, verified

from lienthong_common.errors import DomainError, ErrorKind
from lienthong_statistics.consumers import ExchangeEvents
from lienthong_statistics.domain import PaperCount
from lienthong_statistics.report import get_report, live_metrics, paper_history, report_paper

NOW = datetime(2025, 8, 20, 3, 0, tzinfo=UTC)
AUG = "2025-08-04T02:00:00Z"


def paper(code: str, issued: int, received: int, other: int = 0, month: str = "2025-08") -> PaperCount:
    return PaperCount(code, month, issued, received, other)


def test_same_report_again_changes_nothing_and_a_correction_is_kept(session: Session) -> None:
    first, changed, created = report_paper(
        session=session, paper=paper(DEPARTMENT, 10, 1), note="", reported_by=DEPARTMENT, now=NOW
    )
    assert (first.revision, changed, created) == (1, True, True)
    again, changed, created = report_paper(
        session=session, paper=paper(DEPARTMENT, 10, 1), note="", reported_by=DEPARTMENT, now=NOW
    )
    assert (again.revision, changed, created) == (1, False, False)
    fixed, changed, created = report_paper(
        session=session, paper=paper(DEPARTMENT, 37, 1), note="sửa", reported_by="admin", now=NOW
    )
    assert (fixed.revision, fixed.paper_issued, changed, created) == (2, 37, True, False)
    history = paper_history(session=session, agency_code=DEPARTMENT)
    assert [(r.revision, r.paper_issued, r.reported_by) for r in history] == [
        (1, 10, DEPARTMENT),
        (2, 37, "admin"),
    ]


@pytest.mark.parametrize(
    ("report", "by", "code", "needle"),
    [
        (paper(DEPARTMENT, 1, 1), COMMUNE, ErrorKind.FORBIDDEN, "only its own"),
        (paper(DEPARTMENT, -1, 1), DEPARTMENT, ErrorKind.INVALID, "paper_issued must be"),
        (
            paper(DEPARTMENT, 1, 1, month="2025-13"),
            DEPARTMENT,
            ErrorKind.INVALID,
            "not a month",
        ),
        (
            paper(DEPARTMENT, 1, 1, month="2025-09"),
            DEPARTMENT,
            ErrorKind.INVALID,
            "has not begun",
        ),
    ],
)
def test_bad_paper_reports_are_refused(
    session: Session, report: PaperCount, by: str, code: ErrorKind, needle: str
) -> None:
    with pytest.raises(DomainError) as raised:
        report_paper(session=session, paper=report, note="", reported_by=by, now=NOW)
    assert raised.value.kind is code and needle in str(raised.value)


def test_rates_combine_electronic_and_paper_exactly(session: Session) -> None:
    # Department: 13 sent electronically, 37 on paper -> 26 %; 49 received, 1 on paper -> 98 %.
    for _ in range(13):
        ExchangeEvents().handle(session, verified(DEPARTMENT, [COMMUNE], AUG))
    for _ in range(49):
        ExchangeEvents().handle(session, delivery(SENDER, DEPARTMENT, AUG))
    report_paper(
        session=session, paper=paper(DEPARTMENT, 37, 1, other=24), note="", reported_by=DEPARTMENT, now=NOW
    )
    report = get_report(
        session=session,
        directory=demo_directory(),
        province_code="H49",
        from_month="2025-08",
        to_month="2025-08",
    )
    tier3 = next(r for r in report.rows if r.tier == 3 and r.month == "cumulative")
    assert (tier3.send_rate, tier3.receive_rate, tier3.electronic_share) == (0.26, 0.98, 0.5)
    assert (tier3.agencies, tier3.agencies_connected, tier3.connected_share) == (2, 1, 0.5)
    tier4 = next(r for r in report.rows if r.tier == 4 and r.month == "cumulative")
    assert tier4.send_rate is None and tier4.receive_rate is None  # nothing to divide
    [whole] = [r for r in report.provinces if r.month == "cumulative"]
    assert (whole.documents_sent, whole.paper_issued, whole.agencies) == (13, 37, 4)
    only3 = get_report(
        session=session, directory=demo_directory(), tier=3, from_month="2025-08", to_month="2025-08"
    )
    assert {r.tier for r in only3.rows} == {3}


def test_agency_months_and_paper_only_agencies(session: Session) -> None:
    for event in exchange(SENDER, [DEPARTMENT], AUG):
        ExchangeEvents().handle(session, event)
    report_paper(session=session, paper=paper(COMMUNE, 5, 5), note="", reported_by=COMMUNE, now=NOW)
    report = get_report(
        session=session,
        directory=demo_directory(),
        from_month="2025-07",
        to_month="2025-08",
        agency_months=True,
    )
    months = {(a.agency_code, a.month): a for a in report.agency_months}
    assert months[(SENDER, "2025-08")].connected and months[(SENDER, "2025-08")].send_rate == 1.0
    assert (COMMUNE, "2025-07") not in months
    commune = next(a for a in report.agencies if a.agency_code == COMMUNE)
    assert (commune.connected, commune.paper_issued, commune.send_rate) == (False, 5, 0.0)


def test_acknowledgements_pending_late_and_overdue_per_tier(session: Session) -> None:
    day1, day1_later, day2 = "2025-08-04T02:00:00Z", "2025-08-04T09:00:00Z", "2025-08-05T02:00:00Z"
    for event in exchange(SENDER, [DEPARTMENT, COMMUNE], day1):
        event.document_id = "doc-1"
        ExchangeEvents().handle(session, event)
    on_time = delivery(
        SENDER, DEPARTMENT, day1_later, state="arrived", previous="delivered", code="01", actor=DEPARTMENT
    )
    on_time.document_id = "doc-1"
    ExchangeEvents().handle(session, on_time)
    recall = delivery(
        SENDER, COMMUNE, day1_later, state="recall_requested", previous="delivered", code="13", actor=SENDER
    )
    recall.document_id = "doc-1"
    ExchangeEvents().handle(session, recall)  # the sender speaking is no acknowledgement
    metrics = {
        m.tier: m
        for m in live_metrics(
            session=session, directory=demo_directory(), now=datetime(2025, 8, 4, 10, tzinfo=UTC)
        )
    }
    assert (metrics[4].acknowledgements_pending, metrics[4].acknowledgements_overdue) == (1, 0)
    later = {
        m.tier: m
        for m in live_metrics(
            session=session, directory=demo_directory(), now=datetime(2025, 8, 6, tzinfo=UTC)
        )
    }
    assert (later[4].acknowledgements_overdue, later[3].acknowledgements_overdue) == (1, 0)
    late = delivery(
        SENDER, COMMUNE, day2, state="accepted", previous="recall_requested", code="03", actor=COMMUNE
    )
    late.document_id = "doc-1"
    ExchangeEvents().handle(session, late)
    final = {
        m.tier: m
        for m in live_metrics(
            session=session, directory=demo_directory(), now=datetime(2025, 8, 6, tzinfo=UTC)
        )
    }
    assert (
        final[4].acknowledgements_pending,
        final[4].acknowledgements_late,
        final[3].acknowledgements_late,
    ) == (0, 1, 0)
    assert (final[2].documents_sent, final[3].documents_delivered, final[4].documents_delivered) == (1, 1, 1)
