"""The use cases behind the Statistics API: the report, paper reports, live metrics."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import grpc
from sqlalchemy.orm import Session

from lienthong_common.clock import VIETNAM, now_utc
from lienthong_common.errors import DomainError, ErrorKind, forbidden, invalid
from lienthong_statistics import repository
from lienthong_statistics.clients import AgencyDirectory
from lienthong_statistics.domain import (
    AgencyInfo,
    MonthCount,
    PaperCount,
    Report,
    attributes_of,
    build_report,
    check_paper,
    report_months,
)
from lienthong_statistics.models import PaperReport, PaperReportRevision

ADMIN = "admin"


def list_agencies(directory: AgencyDirectory) -> list[AgencyInfo]:
    try:
        return directory.list_agencies()
    except grpc.RpcError as error:
        raise DomainError(
            ErrorKind.UNAVAILABLE, f"the directory could not list agencies: {error}"
        ) from error


def get_report(
    *,
    session: Session,
    directory: AgencyDirectory,
    province_code: str = "",
    from_month: str = "",
    to_month: str = "",
    tier: int = 0,
    agency_months: bool = False,
    now: datetime | None = None,
) -> Report:
    """The exchange report for one province (or all), one tier (or all), over a range of months."""
    if not 0 <= tier <= 4:
        raise invalid(f"tier {tier} is not a tier; use 1 to 4, or 0 for every tier")
    months = report_months(
        from_month=from_month,
        to_month=to_month,
        earliest=repository.first_month(session=session),
        today=(now or now_utc()).astimezone(VIETNAM).date(),
    )
    agencies = list_agencies(directory)
    rows = repository.counts_between(session=session, from_month=months[0], to_month=months[-1])
    counts = [
        MonthCount(
            agency_code=r.agency_code,
            month=r.month,
            documents_sent=r.documents_sent,
            documents_received=r.documents_received,
            documents_refused=r.documents_refused,
            statuses=r.statuses,
            documents_submitted=r.documents_submitted,
        )
        for r in rows
    ]
    paper = repository.paper_between(session=session, from_month=months[0], to_month=months[-1])
    return build_report(
        agencies=agencies,
        counts=counts,
        paper=paper,
        months=months,
        province_code=province_code,
        tier=tier,
        agency_months=agency_months,
    )


def report_paper(
    *,
    session: Session,
    paper: PaperCount,
    note: str,
    reported_by: str,
    now: datetime | None = None,
) -> tuple[PaperReport, bool, bool]:
    """An agency reports its own paper traffic (an administrator may report for any agency)."""
    if not paper.agency_code:
        raise invalid("agency_code is required")
    if reported_by not in (paper.agency_code, ADMIN):
        raise forbidden(f"{reported_by} may report only its own paper traffic, not {paper.agency_code}'s")
    at = now or now_utc()
    check_paper(paper, today=at.astimezone(VIETNAM).date())
    if len(note) > 1000:
        raise invalid("note is longer than 1000 characters")
    return repository.save_paper(session=session, paper=paper, note=note, reported_by=reported_by, at=at)


def paper_history(*, session: Session, agency_code: str, period: str = "") -> list[PaperReportRevision]:
    if not agency_code:
        raise invalid("agency_code is required")
    return repository.paper_history(session=session, agency_code=agency_code, period=period)


@dataclass
class TierMetrics:
    tier: int
    documents_submitted: int = 0
    documents_sent: int = 0
    documents_delivered: int = 0
    documents_refused: int = 0
    acknowledgements_overdue: int = 0
    acknowledgements_late: int = 0
    acknowledgements_pending: int = 0


def live_metrics(
    *, session: Session, directory: AgencyDirectory, now: datetime | None = None
) -> list[TierMetrics]:
    """Totals since the beginning per tier (of the sender, or of the recipient for deliveries)."""
    today = (now or now_utc()).astimezone(VIETNAM).strftime("%Y-%m-%d")
    known = {a.code: a for a in list_agencies(directory)}
    tiers: dict[int, TierMetrics] = defaultdict(lambda: TierMetrics(0))
    for tier in (1, 2, 3, 4):
        tiers[tier] = TierMetrics(tier)

    def of(code: str) -> TierMetrics:
        tier = attributes_of(code, known).tier
        metrics = tiers[tier]
        metrics.tier = tier
        return metrics

    for code, totals in repository.totals_by_agency(session=session).items():
        metrics = of(code)
        metrics.documents_submitted += totals["documents_submitted"]
        metrics.documents_sent += totals["documents_sent"]
        metrics.documents_delivered += totals["documents_received"]
        metrics.documents_refused += totals["documents_refused"]
        metrics.acknowledgements_late += totals["acknowledgements_late"]
    for code, n in repository.pending_by_recipient(session=session).items():
        of(code).acknowledgements_pending += n
    for code, n in repository.pending_by_recipient(session=session, before_day=today).items():
        of(code).acknowledgements_overdue += n
    return [tiers[t] for t in sorted(tiers)]
