"""The Statistics gRPC servicer: translate the report to protobuf."""

from __future__ import annotations

import grpc
from sqlalchemy.orm import Session, sessionmaker

from lienthong.statistics.v1 import statistics_pb2, statistics_pb2_grpc
from lienthong_common.db import transaction
from lienthong_common.grpcutil import translate_errors
from lienthong_statistics.directory import AgencyDirectory
from lienthong_statistics.report import get_report

SERVICE_NAME = statistics_pb2.DESCRIPTOR.services_by_name["Statistics"].full_name


class StatisticsServicer(statistics_pb2_grpc.StatisticsServicer):
    def __init__(self, sessions: sessionmaker[Session], directory: AgencyDirectory) -> None:
        self._sessions = sessions
        self._directory = directory

    @translate_errors
    def GetReport(
        self, request: statistics_pb2.ReportRequest, context: grpc.ServicerContext
    ) -> statistics_pb2.ReportResponse:
        with transaction(self._sessions) as session:
            report = get_report(
                session=session,
                directory=self._directory,
                province_code=request.province_code,
                from_month=request.from_month,
                to_month=request.to_month,
            )
        return statistics_pb2.ReportResponse(
            rows=[
                statistics_pb2.ReportRow(
                    province_code=r.province_code,
                    tier=r.tier,
                    month=r.month,
                    agencies=r.agencies,
                    agencies_connected=r.agencies_connected,
                    documents_sent=r.documents_sent,
                    documents_received=r.documents_received,
                    documents_refused=r.documents_refused,
                    statuses=r.statuses,
                )
                for r in report.rows
            ],
            agencies=[
                statistics_pb2.AgencyCount(
                    agency_code=a.agency_code,
                    documents_sent=a.documents_sent,
                    documents_received=a.documents_received,
                    documents_refused=a.documents_refused,
                )
                for a in report.agencies
            ],
        )
