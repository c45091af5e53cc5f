"""The VDXP systems admin API: against a real directory servicer (in-process gRPC, SQLite, a master
key), and who may call it (fakes)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from fastapi.testclient import TestClient
from gateway_fakes import ADMIN, COMMUNE, DEPARTMENT, PROVINCE, fake_clients, gateway_settings, secret_of

from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong_common.db import make_engine, make_session_factory, upgrade_database
from lienthong_common.grpcutil import make_server
from lienthong_common.outbox import install_after_commit_hooks
from lienthong_directory.envelope import MasterKeyRing, new_master_key_text
from lienthong_directory.grpc_api import DirectoryServicer
from lienthong_directory.main import MIGRATIONS
from lienthong_gateway.app import create_app

SIGNED = b'{"XroadVnpt-systemid":"vxp.saas.03","XroadVnpt-timestamp":"15032025T091530+0042"}'


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[directory_pb2_grpc.DirectoryServiceStub]:
    url = f"sqlite:///{tmp_path / 'directory.db'}"
    upgrade_database(url, MIGRATIONS)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    install_after_commit_hooks(sessions)
    keys = MasterKeyRing.parse(new_master_key_text("k1"), source="test")
    server = make_server(max_workers=4)
    directory_pb2_grpc.add_DirectoryServiceServicer_to_server(
        DirectoryServicer(sessions=sessions, master_keys=keys), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = directory_pb2_grpc.DirectoryServiceStub(channel)
    for code, tier in ((PROVINCE, 2), (DEPARTMENT, 3), ("000.00.03.H49", 3), (COMMUNE, 4)):
        stub.UpsertAgency(
            directory_pb2.UpsertAgencyRequest(
                agency=directory_pb2.Agency(code=code, name=f"Cơ quan {code}", tier=tier)
            )
        )
    stub.SetCredential(
        directory_pb2.SetCredentialRequest(client_id=ADMIN, secret=secret_of(ADMIN), roles=["admin"])
    )
    stub.SetCredential(directory_pb2.SetCredentialRequest(client_id=PROVINCE, secret=secret_of(PROVINCE)))
    yield stub
    channel.close()
    server.stop(grace=None)
    engine.dispose()


@pytest.fixture
def client(directory: directory_pb2_grpc.DirectoryServiceStub) -> Iterator[TestClient]:
    clients = replace(fake_clients(), directory=directory)
    with TestClient(create_app(gateway_settings(), clients=clients)) as test_client:
        yield test_client


def _headers(client: TestClient, code: str) -> dict[str, str]:
    reply = client.post("/v1/oauth/token", data={"client_id": code, "client_secret": secret_of(code)})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def _signs(directory: directory_pb2_grpc.DirectoryServiceStub, system_id: str, secret: str) -> bool:
    signature = hmac.new(secret.encode(), SIGNED, hashlib.sha256).hexdigest()
    reply = directory.VerifyVdxpSignature(
        directory_pb2.VerifyVdxpSignatureRequest(system_id=system_id, signed=SIGNED, signature=signature)
    )
    return bool(reply.valid)


def _problem(reply: Any, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = reply.json()
    return problem


def test_admin_adds_a_system_and_gets_its_secret_once(
    client: TestClient, directory: directory_pb2_grpc.DirectoryServiceStub
) -> None:
    admin = _headers(client, ADMIN)
    added = client.post(
        "/v1/vdxp/systems",
        json={"system_id": "vxp.saas.03", "agencies": [DEPARTMENT, COMMUNE]},
        headers=admin,
    )
    assert added.status_code == 201, added.text
    assert added.headers["cache-control"] == "no-store"
    assert added.headers["location"] == "/v1/vdxp/systems/vxp.saas.03"
    body = added.json()
    secret = body["secret"]
    assert len(secret) >= 32 and _signs(directory, "vxp.saas.03", secret)
    assert body["system"] == {
        "system_id": "vxp.saas.03",
        "agencies": [DEPARTMENT, COMMUNE],
        "admin": False,
        "created_at": body["system"]["created_at"],
        "active_secrets": 1,
        "previous_valid_until": None,
    }
    listed = client.get("/v1/vdxp/systems", headers=admin)
    assert listed.status_code == 200 and secret not in listed.text
    assert [s["system_id"] for s in listed.json()["systems"]] == ["vxp.saas.03"]
    assert client.get("/v1/vdxp/systems", params={"agency": PROVINCE}, headers=admin).json() == {
        "systems": []
    }
    one = client.get("/v1/vdxp/systems/vxp.saas.03", headers=admin)
    assert one.status_code == 200 and one.json()["agencies"] == [DEPARTMENT, COMMUNE]


def test_an_existing_installations_secret_is_kept_as_given(
    client: TestClient, directory: directory_pb2_grpc.DirectoryServiceStub
) -> None:
    body = {"system_id": "vxp.saas.03", "agencies": [PROVINCE], "admin": True, "secret": "s3cret"}
    added = client.post("/v1/vdxp/systems", json=body, headers=_headers(client, ADMIN))
    assert added.status_code == 201 and added.json()["secret"] == "s3cret"
    assert added.json()["system"]["admin"] is True
    assert _signs(directory, "vxp.saas.03", "s3cret")


def test_refusals_are_problems_with_the_domain_reason(client: TestClient) -> None:
    admin = _headers(client, ADMIN)
    client.post("/v1/vdxp/systems", json={"system_id": "vxp.saas.03", "agencies": [PROVINCE]}, headers=admin)
    again = client.post(
        "/v1/vdxp/systems", json={"system_id": "vxp.saas.03", "agencies": [PROVINCE]}, headers=admin
    )
    assert _problem(again, 409)["detail"] == "VDXP system vxp.saas.03 already exists"
    unknown = client.post(
        "/v1/vdxp/systems", json={"system_id": "vxp.saas.04", "agencies": ["000.00.00.H98"]}, headers=admin
    )
    assert (
        _problem(unknown, 404)["detail"]
        == "VDXP system vxp.saas.04: agency 000.00.00.H98 is not in the directory"
    )
    bad_id = client.post(
        "/v1/vdxp/systems", json={"system_id": "vxp saas", "agencies": [PROVINCE]}, headers=admin
    )
    assert "must be 1-64 letters" in _problem(bad_id, 422)["detail"]
    no_agency = client.post(
        "/v1/vdxp/systems", json={"system_id": "vxp.saas.05", "agencies": []}, headers=admin
    )
    _problem(no_agency, 422)
    missing = client.patch("/v1/vdxp/systems/vxp.saas.99", json={"admin": True}, headers=admin)
    assert _problem(missing, 404)["detail"] == "VDXP system vxp.saas.99 is not in the directory"
    too_long = client.post("/v1/vdxp/systems/vxp.saas.03/rotate", json={"overlap_seconds": -1}, headers=admin)
    _problem(too_long, 422)


def test_patch_changes_only_what_it_names(client: TestClient) -> None:
    admin = _headers(client, ADMIN)
    client.post(
        "/v1/vdxp/systems",
        json={"system_id": "vxp.saas.03", "agencies": [DEPARTMENT, COMMUNE]},
        headers=admin,
    )
    promoted = client.patch("/v1/vdxp/systems/vxp.saas.03", json={"admin": True}, headers=admin)
    assert promoted.status_code == 200, promoted.text
    assert (promoted.json()["admin"], promoted.json()["agencies"]) == (True, [DEPARTMENT, COMMUNE])
    moved = client.patch("/v1/vdxp/systems/vxp.saas.03", json={"agencies": [PROVINCE]}, headers=admin)
    assert (moved.json()["admin"], moved.json()["agencies"]) == (True, [PROVINCE])


def test_rotation_overlaps_a_day_by_default_and_not_at_all_with_zero(
    client: TestClient, directory: directory_pb2_grpc.DirectoryServiceStub
) -> None:
    admin = _headers(client, ADMIN)
    first = client.post(
        "/v1/vdxp/systems", json={"system_id": "vxp.saas.03", "agencies": [PROVINCE]}, headers=admin
    ).json()["secret"]
    rotated = client.post("/v1/vdxp/systems/vxp.saas.03/rotate", headers=admin)
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    second = rotated.json()["secret"]
    assert (
        rotated.json()["system"]["active_secrets"] == 2 and rotated.json()["system"]["previous_valid_until"]
    )
    assert _signs(directory, "vxp.saas.03", first) and _signs(directory, "vxp.saas.03", second)
    at_once = client.post("/v1/vdxp/systems/vxp.saas.03/rotate", json={"overlap_seconds": 0}, headers=admin)
    third = at_once.json()["secret"]
    assert at_once.json()["system"]["active_secrets"] == 1
    assert not _signs(directory, "vxp.saas.03", second) and _signs(directory, "vxp.saas.03", third)
    chosen = client.post(
        "/v1/vdxp/systems/vxp.saas.03/rotate",
        json={"overlap_seconds": 0, "secret": "chosen-secret"},
        headers=admin,
    )
    assert chosen.json()["secret"] == "chosen-secret" and _signs(directory, "vxp.saas.03", "chosen-secret")


def test_delete_removes_the_system_and_its_secrets(
    client: TestClient, directory: directory_pb2_grpc.DirectoryServiceStub
) -> None:
    admin = _headers(client, ADMIN)
    secret = client.post(
        "/v1/vdxp/systems", json={"system_id": "vxp.saas.03", "agencies": [PROVINCE]}, headers=admin
    ).json()["secret"]
    removed = client.delete("/v1/vdxp/systems/vxp.saas.03", headers=admin)
    assert removed.status_code == 200 and removed.json()["system_id"] == "vxp.saas.03"
    assert not _signs(directory, "vxp.saas.03", secret)
    _problem(client.delete("/v1/vdxp/systems/vxp.saas.03", headers=admin), 404)


CALLS = [
    ("POST", "/v1/vdxp/systems", {"system_id": "vxp.saas.09", "agencies": [PROVINCE]}),
    ("GET", "/v1/vdxp/systems", None),
    ("GET", f"/v1/vdxp/systems/{PROVINCE}", None),
    ("PATCH", f"/v1/vdxp/systems/{PROVINCE}", {"admin": False}),
    ("POST", f"/v1/vdxp/systems/{PROVINCE}/rotate", {"overlap_seconds": 0}),
    ("DELETE", f"/v1/vdxp/systems/{PROVINCE}", None),
]


@pytest.fixture
def faked() -> Iterator[TestClient]:
    with TestClient(create_app(gateway_settings(), clients=fake_clients())) as test_client:
        yield test_client


@pytest.mark.parametrize(("method", "path", "body"), CALLS)
def test_only_administrators_manage_vdxp_systems(
    faked: TestClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    for code in (PROVINCE, DEPARTMENT):
        refused = faked.request(method, path, json=body, headers=_headers(faked, code))
        assert _problem(refused, 403)["detail"] == "only administrators manage VDXP systems"
    _problem(faked.request(method, path, json=body), 401)
    allowed = faked.request(method, path, json=body, headers=_headers(faked, ADMIN))
    assert allowed.status_code in (200, 201), allowed.text


def test_an_agency_is_refused_before_its_body_is_even_read(faked: TestClient) -> None:
    refused = faked.post("/v1/vdxp/systems", json={"nonsense": True}, headers=_headers(faked, PROVINCE))
    _problem(refused, 403)
