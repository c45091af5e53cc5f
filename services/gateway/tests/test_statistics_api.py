"""The statistics endpoints, the /reports page and the live metrics, against a real in-process
statistics gRPC server (SQLite) behind create_app."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent import futures
from datetime import datetime
from pathlib import Path

import grpc
import pytest
from fastapi.testclient import TestClient
from gateway_fakes import ADMIN, COMMUNE, DEPARTMENT, PROVINCE, fake_clients, gateway_settings, secret_of

from lienthong.statistics.v1 import statistics_pb2_grpc
from lienthong_common.db import make_engine, make_session_factory, transaction
from lienthong_gateway.app import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "statistics" / "tests"))
from statistics_support import FakeDirectory, exchange

from lienthong_statistics.domain import VIETNAM, AgencyInfo
from lienthong_statistics.events import handle_event
from lienthong_statistics.grpc_api import StatisticsServicer
from lienthong_statistics.models import Base

MONTH = datetime.now(VIETNAM).strftime("%Y-%m")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    engine = make_engine(f"sqlite:///{tmp_path / 'statistics.db'}")
    Base.metadata.create_all(engine)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        for event in exchange(PROVINCE, [DEPARTMENT, COMMUNE], f"{MONTH}-01T05:00:00Z"):
            handle_event(session, event)
    directory = FakeDirectory(
        [AgencyInfo(PROVINCE, 2, "H49"), AgencyInfo(DEPARTMENT, 3, "H49"), AgencyInfo(COMMUNE, 4, "H49")]
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    statistics_pb2_grpc.add_StatisticsServicer_to_server(StatisticsServicer(sessions, directory), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    clients = fake_clients()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    clients.statistics = statistics_pb2_grpc.StatisticsStub(channel)
    try:
        with TestClient(create_app(gateway_settings(), clients=clients)) as test_client:
            yield test_client
    finally:
        channel.close()
        server.stop(grace=None)
        engine.dispose()


def bearer(client: TestClient, code: str) -> dict[str, str]:
    reply = client.post("/v1/oauth/token", data={"client_id": code, "client_secret": secret_of(code)})
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def test_paper_report_is_idempotent_correctable_and_own_only(client: TestClient) -> None:
    me = bearer(client, DEPARTMENT)
    body = {"period": MONTH, "paper_issued": 3, "paper_received": 1}
    assert client.post("/v1/statistics/paper", json=body, headers=me).status_code == 201
    again = client.post("/v1/statistics/paper", json=body, headers=me)
    assert again.status_code == 200 and again.json()["changed"] is False
    fixed = client.post("/v1/statistics/paper", json={**body, "paper_issued": 1}, headers=me).json()
    assert (fixed["revision"], fixed["changed"]) == (2, True)
    other = client.post("/v1/statistics/paper", json={**body, "agency_code": COMMUNE}, headers=me)
    assert other.status_code == 403
    wrong = client.post("/v1/statistics/paper", json={**body, "paper_issued": "many"}, headers=me)
    assert wrong.status_code == 422
    history = client.get("/v1/statistics/paper", headers=me).json()["revisions"]
    assert [r["paper_issued"] for r in history] == [3, 1]

    report = client.get("/v1/statistics/report", params={"province": "H49"}, headers=me).json()
    tier3 = next(r for r in report["rows"] if r["tier"] == 3 and r["month"] == "cumulative")
    assert (tier3["documents_received"], tier3["paper_received"], tier3["receive_rate"]) == (1, 1, 0.5)
    assert tier3["send_rate"] == 0.0 and isinstance(tier3["documents_sent"], int)
    csv_text = client.get("/v1/statistics/report", params={"format": "csv"}, headers=me).text
    assert csv_text.splitlines()[0].startswith("level,province_code,tier,agency_code,month")
    assert "tier,H49,3,,cumulative,1,1,1.0,0,1,0.0,0.5,0.0,1,1,0,0,0,0" in csv_text


def test_rebuild_is_for_administrators(client: TestClient) -> None:
    assert client.post("/v1/statistics/rebuild", headers=bearer(client, PROVINCE)).status_code == 403
    # Built without a rebuilder: UNIMPLEMENTED comes back as a 5xx problem.
    assert client.post("/v1/statistics/rebuild", headers=bearer(client, ADMIN)).status_code in (501, 502)


def test_reports_page_signs_in_then_shows_the_figures(client: TestClient) -> None:
    page = client.get("/reports", headers={"Accept": "text/html"})
    assert page.status_code == 401 and "client_secret" in page.text
    assert client.get("/reports").headers["content-type"].startswith("application/problem+json")
    bad = client.post("/reports/login", data={"client_id": PROVINCE, "client_secret": "wrong"})
    assert bad.status_code == 401
    signed_in = client.post(
        "/reports/login",
        data={"client_id": PROVINCE, "client_secret": secret_of(PROVINCE)},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303 and "httponly" in signed_in.headers["set-cookie"].lower()
    shown = client.get("/reports", params={"province": "H49"})
    assert shown.status_code == 200 and "<svg" in shown.text
    assert '<td class="n" data-measure="documents_received">1</td>' in shown.text
    assert '<tr data-tier="2">' in shown.text and "100 %" in shown.text


def test_metrics_carry_the_live_exchange_figures_per_tier(client: TestClient) -> None:
    text = client.get("/metrics").text
    assert "lienthong_exchange_up 1.0" in text
    assert 'lienthong_exchange_documents_sent_total{tier="2"} 1.0' in text
    assert 'lienthong_exchange_documents_delivered_total{tier="3"} 1.0' in text
    assert 'lienthong_exchange_acknowledgements_pending{tier="4"} 1.0' in text
