"""The Statistics gRPC servicer: translate protobuf <-> the use cases in report.py and rebuild.py."""

from __future__ import annotations

from typing import Any

import grpc
from sqlalchemy.orm import Session, sessionmaker

from lienthong.statistics.v1 import statistics_pb2, statistics_pb2_grpc
from lienthong_common.db import transaction
from lienthong_common.errors import DomainError, ErrorKind
from lienthong_common.grpcutil import translate_errors
from lienthong_statistics import report as use_cases
from lienthong_statistics.clients import AgencyDirectory
from lienthong_statistics.domain import AgencyTotal, Measures, PaperCount, ReportRow
from lienthong_statistics.models import PaperReport, PaperReportRevision
from lienthong_statistics.rebuild import Rebuilder

SERVICE_NAME = statistics_pb2.DESCRIPTOR.services_by_name["Statistics"].full_name


def _measures(m: Measures) -> dict[str, Any]:
    values: dict[str, Any] = {
        "documents_sent": m.documents_sent,
        "documents_received": m.documents_received,
        "documents_refused": m.documents_refused,
        "statuses": m.statuses,
        "documents_submitted": m.documents_submitted,
        "paper_issued": m.paper_issued,
        "paper_received": m.paper_received,
        "electronic_issued_other": m.electronic_issued_other,
    }
    for rate in ("send_rate", "receive_rate", "electronic_share"):
        value = getattr(m, rate)
        if value is not None:
            values[rate] = value
    return values


def row_message(r: ReportRow) -> statistics_pb2.ReportRow:
    message = statistics_pb2.ReportRow(
        province_code=r.province_code,
        tier=r.tier,
        month=r.month,
        agencies=r.agencies,
        agencies_connected=r.agencies_connected,
        **_measures(r),
    )
    if r.connected_share is not None:
        message.connected_share = r.connected_share
    return message


def agency_message(a: AgencyTotal) -> statistics_pb2.AgencyCount:
    return statistics_pb2.AgencyCount(
        agency_code=a.agency_code,
        province_code=a.province_code,
        tier=a.tier,
        month=a.month,
        connected=a.connected,
        **_measures(a),
    )


def paper_message(p: PaperReport | PaperReportRevision) -> statistics_pb2.PaperReport:
    return statistics_pb2.PaperReport(
        agency_code=p.agency_code,
        period=p.period,
        paper_issued=p.paper_issued,
        paper_received=p.paper_received,
        electronic_issued_other=p.electronic_issued_other,
        note=p.note or "",
    )


def revision_message(p: PaperReport | PaperReportRevision, revision: int) -> statistics_pb2.PaperRevision:
    return statistics_pb2.PaperRevision(
        revision=revision,
        report=paper_message(p),
        reported_by=p.reported_by,
        reported_at=p.reported_at.isoformat(),
    )


class StatisticsServicer(statistics_pb2_grpc.StatisticsServicer):
    def __init__(
        self,
        sessions: sessionmaker[Session],
        directory: AgencyDirectory,
        rebuilder: Rebuilder | None = None,
    ) -> None:
        self._sessions = sessions
        self._directory = directory
        self._rebuilder = rebuilder

    @translate_errors
    def GetReport(
        self, request: statistics_pb2.ReportRequest, context: grpc.ServicerContext
    ) -> statistics_pb2.ReportResponse:
        with transaction(self._sessions) as session:
            report = use_cases.get_report(
                session=session,
                directory=self._directory,
                province_code=request.province_code,
                from_month=request.from_month,
                to_month=request.to_month,
                tier=request.tier,
                agency_months=request.agency_months,
            )
        return statistics_pb2.ReportResponse(
            months=report.months,
            rows=[row_message(r) for r in report.rows],
            provinces=[row_message(r) for r in report.provinces],
            agencies=[agency_message(a) for a in report.agencies],
            agency_months=[agency_message(a) for a in report.agency_months],
        )

    @translate_errors
    def ReportPaper(
        self, request: statistics_pb2.ReportPaperRequest, context: grpc.ServicerContext
    ) -> statistics_pb2.ReportPaperResponse:
        sent = request.report
        with transaction(self._sessions) as session:
            current, changed, created = use_cases.report_paper(
                session=session,
                paper=PaperCount(
                    agency_code=sent.agency_code,
                    month=sent.period,
                    paper_issued=sent.paper_issued,
                    paper_received=sent.paper_received,
                    electronic_issued_other=sent.electronic_issued_other,
                ),
                note=sent.note,
                reported_by=request.reported_by,
            )
            reply = statistics_pb2.ReportPaperResponse(
                current=revision_message(current, current.revision), changed=changed, created=created
            )
        return reply

    @translate_errors
    def GetPaperHistory(
        self, request: statistics_pb2.PaperHistoryRequest, context: grpc.ServicerContext
    ) -> statistics_pb2.PaperHistoryResponse:
        with transaction(self._sessions) as session:
            revisions = use_cases.paper_history(
                session=session, agency_code=request.agency_code, period=request.period
            )
            return statistics_pb2.PaperHistoryResponse(
                revisions=[revision_message(r, r.revision) for r in revisions]
            )

    @translate_errors
    def GetLiveMetrics(
        self, request: statistics_pb2.LiveMetricsRequest, context: grpc.ServicerContext
    ) -> statistics_pb2.LiveMetricsResponse:
        with transaction(self._sessions) as session:
            tiers = use_cases.live_metrics(session=session, directory=self._directory)
        return statistics_pb2.LiveMetricsResponse(
            tiers=[statistics_pb2.TierMetrics(**vars(t)) for t in tiers]
        )

    @translate_errors
    def Rebuild(
        self, request: statistics_pb2.RebuildRequest, context: grpc.ServicerContext
    ) -> statistics_pb2.RebuildResponse:
        if self._rebuilder is None:
            raise DomainError(ErrorKind.UNSUPPORTED, "this statistics server cannot rebuild")
        result = self._rebuilder.rebuild(apply=request.apply)
        return statistics_pb2.RebuildResponse(**vars(result))
