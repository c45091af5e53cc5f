"""`PUT /v1/webhook`: a URL routing refuses (internal address) is a specific 422 problem."""

from __future__ import annotations

from typing import Any

import grpc
from fastapi.testclient import TestClient
from gateway_fakes import DEPARTMENT, FakeRpcError, fake_clients, gateway_settings, secret_of

from lienthong.routing.v1 import routing_pb2
from lienthong_gateway.app import create_app


def test_a_refused_webhook_url_is_a_specific_problem() -> None:
    clients = fake_clients()
    seen: list[str] = []

    def set_webhook(request: Any, timeout: float = 0) -> Any:
        seen.append(request.url)
        if "169.254" in request.url:
            raise FakeRpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "webhook url refused: the host is a cloud metadata address",
            )
        if len(request.secret) in range(1, 16):
            raise FakeRpcError(
                grpc.StatusCode.INVALID_ARGUMENT, "a webhook secret must be at least 16 characters"
            )
        return routing_pb2.Webhook(agency_code=request.agency_code, url=request.url, secret_hint="abcd")

    clients.routing.SetWebhook = set_webhook  # type: ignore[method-assign]
    with TestClient(create_app(gateway_settings(), clients=clients)) as client:
        token = client.post(
            "/v1/oauth/token", data={"client_id": DEPARTMENT, "client_secret": secret_of(DEPARTMENT)}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        refused = client.put("/v1/webhook", json={"url": "http://169.254.169.254/latest/"}, headers=headers)
        assert refused.status_code == 422 and refused.json()["type"].endswith("/webhook-url-refused")
        assert "metadata" in refused.json()["detail"]
        short = client.put(
            "/v1/webhook", json={"url": "https://vanthu.gov.vn/h", "secret": "x"}, headers=headers
        )
        assert short.status_code == 422 and not short.json()["type"].endswith("/webhook-url-refused")
        ok = client.put("/v1/webhook", json={"url": "https://vanthu.gov.vn/h"}, headers=headers)
        assert ok.status_code == 200 and ok.json()["url"] == "https://vanthu.gov.vn/h"
        too_long = client.put("/v1/webhook", json={"url": "https://a.vn/" + "x" * 2000}, headers=headers)
        assert too_long.status_code == 422
    assert len(seen) == 3  # the too-long URL never reached routing
