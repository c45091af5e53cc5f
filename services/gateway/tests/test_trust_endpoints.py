"""The trust-store REST API against a real sigverify servicer (in-process gRPC, SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from fastapi.testclient import TestClient
from gateway_fakes import ADMIN, PROVINCE, fake_clients, gateway_settings, secret_of

from lienthong.sigverify.v1 import sigverify_pb2_grpc
from lienthong_common.db import make_engine, make_session_factory
from lienthong_common.grpcutil import make_server
from lienthong_common.pki import DevPki
from lienthong_common.settings import Settings
from lienthong_gateway.app import create_app
from lienthong_sigverify import grpc_api
from lienthong_sigverify.models import Base
from lienthong_sigverify.trust import TrustStore


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    engine = make_engine(f"sqlite:///{tmp_path / 'sigverify.db'}")
    Base.metadata.create_all(engine)
    sessions = make_session_factory(engine)
    trust = TrustStore(sessions=sessions, settings=Settings(data_dir=tmp_path / "data"), refresh_seconds=0)
    server = make_server(max_workers=2)
    grpc_api.register(server, sessions=sessions, trust=trust)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    clients = replace(fake_clients(), sigverify=sigverify_pb2_grpc.SignatureVerifierStub(channel))
    with TestClient(create_app(gateway_settings(), clients=clients)) as test_client:
        yield test_client
    channel.close()
    server.stop(grace=None)
    engine.dispose()


def _headers(client: TestClient, code: str) -> dict[str, str]:
    reply = client.post("/v1/oauth/token", data={"client_id": code, "client_secret": secret_of(code)})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def test_admin_adds_lists_and_removes(client: TestClient, tmp_path: Path) -> None:
    pki = DevPki.init(tmp_path / "pki")
    admin = _headers(client, ADMIN)
    added = client.post(
        "/v1/trust/anchors", json={"certificate_pem": pki.root_cert_pem.decode()}, headers=admin
    )
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["version"] == 1 and body["created"] is True
    assert body["anchor"]["added_by"] == ADMIN
    fingerprint = body["anchor"]["fingerprint"]

    again = client.post(
        "/v1/trust/anchors", json={"certificate_pem": pki.root_cert_pem.decode()}, headers=admin
    )
    assert again.status_code == 200 and again.json()["version"] == 1

    listed = client.get("/v1/trust/anchors", headers=_headers(client, PROVINCE))  # agencies may read
    assert listed.status_code == 200
    assert [a["fingerprint"] for a in listed.json()["anchors"]] == [fingerprint]

    removed = client.delete(f"/v1/trust/anchors/{fingerprint}", headers=admin)
    assert removed.status_code == 200 and removed.json()["version"] == 2
    assert client.get("/v1/trust/anchors", headers=admin).json()["anchors"] == []
    gone = client.delete(f"/v1/trust/anchors/{fingerprint}", headers=admin)
    assert gone.status_code == 404
    assert gone.headers["content-type"].startswith("application/problem+json")


def test_agencies_cannot_change_the_store(client: TestClient, tmp_path: Path) -> None:
    pki = DevPki.init(tmp_path / "pki")
    agency = _headers(client, PROVINCE)
    reply = client.post(
        "/v1/trust/anchors", json={"certificate_pem": pki.root_cert_pem.decode()}, headers=agency
    )
    assert reply.status_code == 403
    assert client.delete("/v1/trust/anchors/" + "ab" * 32, headers=agency).status_code == 403
    assert client.get("/v1/trust/anchors").status_code == 401


def test_a_signing_certificate_is_refused_with_the_reason(client: TestClient, tmp_path: Path) -> None:
    pki = DevPki.init(tmp_path / "pki")
    leaf = pki.issue_signer(agency_code=PROVINCE, common_name="Someone")
    reply = client.post(
        "/v1/trust/anchors", json={"certificate_pem": leaf.cert_pem.decode()}, headers=_headers(client, ADMIN)
    )
    assert reply.status_code == 422
    assert "not a CA certificate" in reply.json()["detail"]
