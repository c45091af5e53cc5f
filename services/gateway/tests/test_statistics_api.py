"""The statistics endpoints, the /reports page and the live metrics, against a real in-process
statistics gRPC server (SQLite) behind create_app."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from concurrent import futures
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import httpx
import pytest
from fastapi.testclient import TestClient
from gateway_fakes import (
    ADMIN,
    COMMUNE,
    DEPARTMENT,
    OUTSIDER,
    PROVINCE,
    fake_clients,
    gateway_settings,
    secret_of,
)

from lienthong.statistics.v1 import statistics_pb2_grpc
from lienthong_common.db import make_engine, make_session_factory, transaction
from lienthong_common.testing import exchange
from lienthong_gateway.app import create_app
from lienthong_gateway.auth import Caller
from lienthong_gateway.statistics_api import PAPER_FIELDS, sees_paper_of
from lienthong_statistics.consumers import ExchangeEvents
from lienthong_statistics.domain import VIETNAM, AgencyInfo
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
            ExchangeEvents().handle(session, event)
    agencies = [
        AgencyInfo(PROVINCE, 2, "H49"),
        AgencyInfo(DEPARTMENT, 3, "H49"),
        AgencyInfo(COMMUNE, 4, "H49"),
    ]
    directory = SimpleNamespace(list_agencies=lambda: agencies)
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


def sign_in_form(client: TestClient) -> str:
    """The login page's CSRF token (its cookie is now in the client's jar)."""
    page = client.get("/reports", headers={"Accept": "text/html"})
    assert page.status_code == 401 and "client_secret" in page.text
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert match, page.text
    return match.group(1)


def test_reports_page_signs_in_then_shows_the_figures(client: TestClient) -> None:
    csrf = sign_in_form(client)
    assert client.get("/reports").headers["content-type"].startswith("application/problem+json")
    bad = client.post("/reports/login", data={"client_id": PROVINCE, "client_secret": "wrong", "csrf": csrf})
    assert bad.status_code == 401
    signed_in = client.post(
        "/reports/login",
        data={"client_id": PROVINCE, "client_secret": secret_of(PROVINCE), "csrf": csrf},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303
    cookie = signed_in.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/reports" in cookie
    assert "secure" not in cookie  # plain HTTP here; see the HTTPS test
    shown = client.get("/reports", params={"province": "H49"})
    assert shown.status_code == 200 and "<svg" in shown.text
    assert '<td class="n" data-measure="documents_received">1</td>' in shown.text
    assert '<tr data-tier="2">' in shown.text and "100 %" in shown.text
    for page in (shown, bad, signed_in):
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none'
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "no-referrer"
    # Sign-out is a POST with the same CSRF token.
    out = client.post("/reports/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and 'lienthong_report_token=""' in out.headers["set-cookie"]


def test_reports_sign_in_refuses_cross_site_posts(client: TestClient) -> None:
    csrf = sign_in_form(client)
    good = {"client_id": PROVINCE, "client_secret": secret_of(PROVINCE), "csrf": csrf}
    for headers, data in (
        ({"Origin": "https://evil.example"}, good),  # another site, right token
        ({"Referer": "https://evil.example/page"}, good),
        ({}, {**good, "csrf": "0" * 32}),  # the wrong token
        ({}, {k: v for k, v in good.items() if k != "csrf"}),  # no token
    ):
        refused = client.post("/reports/login", data=data, headers=headers, follow_redirects=False)
        assert refused.status_code == 403, (headers, refused.text)
        assert (
            "set-cookie" not in refused.headers
            or "lienthong_report_token" not in refused.headers["set-cookie"]
        )
    no_cookie = client.post(
        "/reports/login", data=good, cookies={"lienthong_csrf": ""}, follow_redirects=False
    )
    assert no_cookie.status_code == 403
    same_site = client.post(
        "/reports/login", data=good, headers={"Origin": "http://testserver"}, follow_redirects=False
    )
    assert same_site.status_code == 303


def test_a_token_in_the_url_signs_nobody_in(client: TestClient) -> None:
    token = bearer(client, PROVINCE)["Authorization"].split()[1]
    page = client.get(
        "/reports", params={"token": token}, headers={"Accept": "text/html"}, follow_redirects=False
    )
    assert page.status_code == 401 and "client_secret" in page.text
    assert "lienthong_report_token" not in page.headers.get("set-cookie", "")
    # Scripts send the token as a header instead.
    assert client.get("/reports", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_the_cookie_is_secure_over_https(client: TestClient) -> None:
    https = TestClient(client.app, base_url="https://testserver")
    page = https.get("/reports", headers={"Accept": "text/html"})
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert "secure" in page.headers["set-cookie"].lower()
    signed_in = https.post(
        "/reports/login",
        data={"client_id": PROVINCE, "client_secret": secret_of(PROVINCE), "csrf": csrf},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303
    assert "; secure" in signed_in.headers["set-cookie"].lower()


def test_paper_counts_are_shown_to_the_agency_its_province_and_admins(client: TestClient) -> None:
    body = {"period": MONTH, "paper_issued": 7, "paper_received": 2, "electronic_issued_other": 1}
    assert (
        client.post("/v1/statistics/paper", json=body, headers=bearer(client, DEPARTMENT)).status_code == 201
    )

    def department_row(code: str, *, csv: bool = False) -> dict[str, Any]:
        params = {"province": "H49", "agency_months": "true"}
        report = client.get("/v1/statistics/report", params=params, headers=bearer(client, code)).json()
        rows = [r for r in report["agencies"] + report["agency_months"] if r["agency_code"] == DEPARTMENT]
        assert rows, report["agencies"]
        assert all(r["paper_issued"] == rows[0]["paper_issued"] for r in rows)
        return rows[0]

    for code in (DEPARTMENT, PROVINCE, ADMIN):
        row = department_row(code)
        assert (row["paper_issued"], row["paper_received"], row["electronic_issued_other"]) == (7, 2, 1), code
    for code in (COMMUNE, OUTSIDER):  # another agency of the province, another province
        row = department_row(code)
        hidden = {k: row[k] for k in PAPER_FIELDS}
        assert hidden == dict.fromkeys(PAPER_FIELDS), code
        assert row["documents_received"] == 1  # electronic traffic stays public
        csv_text = client.get(
            "/v1/statistics/report", params={"format": "csv"}, headers=bearer(client, code)
        ).text
        line = next(x for x in csv_text.splitlines() if x.startswith(f"agency,H49,3,{DEPARTMENT},cumulative"))
        assert ",7,2," not in line
    # Tier and province totals are the province's published aggregates: everyone sees them.
    report = client.get("/v1/statistics/report", headers=bearer(client, OUTSIDER)).json()
    tier3 = next(r for r in report["rows"] if r["tier"] == 3 and r["month"] == "cumulative")
    assert tier3["paper_issued"] == 7


def test_a_configured_reviewer_sees_its_province_only() -> None:
    reviewer = Caller(code="000.00.01.H49", roles=("agency",))
    assert sees_paper_of(reviewer, DEPARTMENT, "H49", ["000.00.01.H49"])
    assert not sees_paper_of(reviewer, DEPARTMENT, "H49", [])
    assert not sees_paper_of(reviewer, "000.00.02.H22", "H22", ["000.00.01.H49"])
    assert not sees_paper_of(Caller(code="000.00.00.H22", roles=("agency",)), DEPARTMENT, "H49", [])


def test_metrics_carry_the_live_exchange_figures_per_tier(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401  # not anonymous on the API port
    assert client.get("/metrics", headers=bearer(client, PROVINCE)).status_code == 403
    text = client.get("/metrics", headers=bearer(client, ADMIN)).text
    assert "lienthong_exchange_up 1.0" in text
    assert 'lienthong_exchange_documents_sent_total{tier="2"} 1.0' in text
    assert 'lienthong_exchange_documents_delivered_total{tier="3"} 1.0' in text
    assert 'lienthong_exchange_acknowledgements_pending{tier="4"} 1.0' in text


def test_with_a_metrics_port_metrics_leave_the_api_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = gateway_settings()
    settings.metrics.port = port
    with TestClient(create_app(settings, clients=fake_clients())) as api:
        assert api.get("/metrics", headers=bearer(api, ADMIN)).status_code == 404
        assert "/metrics" not in api.get("/openapi.json").json()["paths"]
        api.post("/v1/oauth/token", data={"client_id": PROVINCE, "client_secret": secret_of(PROVINCE)})
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert scraped.status_code == 200
        assert (
            'lienthong_gateway_requests_total{method="POST",route="/v1/oauth/token",status="200"}'
            in scraped.text
        )
