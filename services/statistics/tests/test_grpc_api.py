"""GetReport over a real gRPC server on a free port, and the directory client."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from sqlalchemy.orm import Session, sessionmaker
from statistics_support import COMMUNE, DEPARTMENT, SENDER, demo_directory, exchange

from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong.statistics.v1 import statistics_pb2, statistics_pb2_grpc
from lienthong_common.db import transaction
from lienthong_statistics.clients import GrpcAgencyDirectory
from lienthong_statistics.consumers import ExchangeEvents
from lienthong_statistics.domain import AgencyInfo
from lienthong_statistics.grpc_api import StatisticsServicer


def serve(register: object) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    register(server)  # type: ignore[operator]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def test_get_report_over_grpc(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        for event in exchange(SENDER, [DEPARTMENT, COMMUNE], "2025-08-04T02:00:00Z"):
            ExchangeEvents().handle(session, event)
    servicer = StatisticsServicer(sessions, demo_directory())
    server, port = serve(lambda s: statistics_pb2_grpc.add_StatisticsServicer_to_server(servicer, s))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = statistics_pb2_grpc.StatisticsStub(channel)
            reply = stub.GetReport(
                statistics_pb2.ReportRequest(province_code="H49", from_month="2025-08", to_month="2025-08")
            )
            with pytest.raises(grpc.RpcError) as raised:
                stub.GetReport(statistics_pb2.ReportRequest(from_month="August"))
    finally:
        server.stop(grace=None)

    cumulative = {r.tier: r for r in reply.rows if r.month == "cumulative"}
    assert (
        cumulative[2].documents_sent,
        cumulative[3].documents_received,
        cumulative[4].documents_received,
    ) == (
        1,
        1,
        1,
    )
    assert cumulative[3].agencies == 2 and cumulative[3].agencies_connected == 1
    assert {a.agency_code: a.documents_received for a in reply.agencies}[COMMUNE] == 1
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "from_month 'August' is not a month" in (raised.value.details() or "")


class StandInDirectory(directory_pb2_grpc.DirectoryServiceServicer):
    def ListAgencies(
        self, request: directory_pb2.ListAgenciesRequest, context: grpc.ServicerContext
    ) -> directory_pb2.ListAgenciesResponse:
        return directory_pb2.ListAgenciesResponse(
            agencies=[
                directory_pb2.Agency(code=SENDER, tier=2, province_code="H49", status="active"),
                directory_pb2.Agency(code="000.00.24.H49", tier=3, province_code="H49", status="dissolved"),
                directory_pb2.Agency(code=COMMUNE, tier=4, province_code="H49"),
            ]
        )


def test_directory_client_lists_agencies() -> None:
    server, port = serve(
        lambda s: directory_pb2_grpc.add_DirectoryServiceServicer_to_server(StandInDirectory(), s)
    )
    try:
        agencies = GrpcAgencyDirectory(f"127.0.0.1:{port}", tls=None, deadline_seconds=5).list_agencies()
    finally:
        server.stop(grace=None)
    assert agencies == [
        AgencyInfo(SENDER, 2, "H49", "active"),
        AgencyInfo("000.00.24.H49", 3, "H49", "dissolved"),
        AgencyInfo(COMMUNE, 4, "H49", "active"),
    ]
