"""The use case behind GetReport: counts from the database, attributes from the directory."""

from __future__ import annotations

from datetime import datetime

import grpc
from sqlalchemy.orm import Session

from lienthong_common.grpcutil import DomainError
from lienthong_common.outbox import now_utc
from lienthong_statistics import repository
from lienthong_statistics.directory import AgencyDirectory
from lienthong_statistics.domain import VIETNAM, MonthCount, Report, build_report, report_months


def get_report(
    *,
    session: Session,
    directory: AgencyDirectory,
    province_code: str = "",
    from_month: str = "",
    to_month: str = "",
    now: datetime | None = None,
) -> Report:
    """The exchange report for one province (or all) over a range of months."""
    months = report_months(
        from_month=from_month,
        to_month=to_month,
        earliest=repository.first_month(session=session),
        today=(now or now_utc()).astimezone(VIETNAM).date(),
    )
    try:
        agencies = directory.list_agencies()
    except grpc.RpcError as error:
        raise DomainError(
            grpc.StatusCode.UNAVAILABLE, f"the directory could not list agencies: {error}"
        ) from error
    rows = repository.counts_between(session=session, from_month=months[0], to_month=months[-1])
    counts = [
        MonthCount(
            agency_code=r.agency_code,
            month=r.month,
            documents_sent=r.documents_sent,
            documents_received=r.documents_received,
            documents_refused=r.documents_refused,
            statuses=r.statuses,
        )
        for r in rows
    ]
    return build_report(agencies=agencies, counts=counts, months=months, province_code=province_code)
