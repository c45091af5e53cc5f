"""Credentials (issue 20, item 3): emergency rotation and revocation kill old tokens at once, the
placeholder secret is refused on a reachable gateway, and `kid` says nothing about the secret."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from fastapi.testclient import TestClient
from gateway_fakes import (
    ADMIN,
    COMMUNE,
    DEPARTMENT,
    FakeDirectory,
    FakeRpcError,
    fake_clients,
    gateway_settings,
    secret_of,
)
from pydantic import SecretStr

from lienthong.directory.v1 import directory_pb2
from lienthong_common.settings import PLACEHOLDER_SECRET, GatewaySettings
from lienthong_gateway.app import create_app
from lienthong_gateway.auth import (
    PlaceholderSecretError,
    listens_only_on_loopback,
    refuse_placeholder_secret,
)


class CredentialDirectory(FakeDirectory):
    """The directory's credential rules the gateway relies on: secrets, versions, revocation."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets = {c: secret_of(c) for c in self.versions}
        self.active = dict.fromkeys(self.versions, True)
        self.rotations: list[Any] = []

    def VerifyCredential(self, request: Any, timeout: float = 0) -> Any:
        reply = super().VerifyCredential(request, timeout)
        reply.valid = self.active.get(request.client_id, False) and self.secrets.get(request.client_id) == (
            request.secret
        )
        return reply

    def GetCredentialVersion(self, request: Any, timeout: float = 0) -> Any:
        reply = super().GetCredentialVersion(request, timeout)
        reply.active = self.active[request.client_id]
        return reply

    def SetCredential(self, request: Any, timeout: float = 0) -> Any:
        if request.client_id not in self.versions:
            raise FakeRpcError(grpc.StatusCode.NOT_FOUND, f"client {request.client_id} has no credential")
        assert request.secret == ""  # the gateway only ever revokes
        self.active[request.client_id] = False
        self.versions[request.client_id] += 1
        return directory_pb2.SetCredentialResponse(version=self.versions[request.client_id])

    def RotateCredential(self, request: Any, timeout: float = 0) -> Any:
        self.rotations.append(request)
        self.secrets[request.client_id] = request.new_secret
        at_once = request.HasField("overlap_seconds") and request.overlap_seconds == 0
        if at_once:
            self.versions[request.client_id] += 1
        return directory_pb2.RotateCredentialResponse(
            version=self.versions[request.client_id], previous_valid_until="" if at_once else "later"
        )


@pytest.fixture
def platform() -> Iterator[tuple[TestClient, CredentialDirectory]]:
    clients = fake_clients()
    directory = CredentialDirectory()
    clients.directory = directory  # type: ignore[assignment]
    # A long cache: what is proven is that this gateway forgets at once, not that the cache expired.
    with TestClient(create_app(gateway_settings(credential_cache_seconds=600), clients=clients)) as client:
        yield client, directory


def bearer(client: TestClient, code: str, secret: str | None = None) -> dict[str, str]:
    reply = client.post(
        "/v1/oauth/token", data={"client_id": code, "client_secret": secret or secret_of(code)}
    )
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def token_status(client: TestClient, code: str, secret: str) -> int:
    return client.post("/v1/oauth/token", data={"client_id": code, "client_secret": secret}).status_code


def test_an_agency_revokes_its_own_credential_and_every_token_dies_at_once(
    platform: tuple[TestClient, CredentialDirectory],
) -> None:
    client, _ = platform
    first, second = bearer(client, DEPARTMENT), bearer(client, DEPARTMENT)
    assert client.get("/v1/inbox", headers=first).status_code == 200  # its version now remembered
    reply = client.post(f"/v1/credentials/{DEPARTMENT}/revoke", headers=second)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"client_id": DEPARTMENT, "active": False, "version": 2}
    for headers in (first, second):
        refused = client.get("/v1/inbox", headers=headers)
        assert refused.status_code == 401 and "revoked or rotated" in refused.json()["detail"]
    assert token_status(client, DEPARTMENT, secret_of(DEPARTMENT)) == 401


def test_only_the_agency_itself_or_an_administrator_revokes(
    platform: tuple[TestClient, CredentialDirectory],
) -> None:
    client, directory = platform
    other = client.post(f"/v1/credentials/{DEPARTMENT}/revoke", headers=bearer(client, COMMUNE))
    assert other.status_code == 403 and other.json()["type"].endswith("/admin-only")
    assert directory.active[DEPARTMENT]
    assert client.post(f"/v1/credentials/{DEPARTMENT}/revoke").status_code == 401
    by_admin = client.post(f"/v1/credentials/{DEPARTMENT}/revoke", headers=bearer(client, ADMIN))
    assert by_admin.status_code == 200 and not directory.active[DEPARTMENT]
    missing = client.post("/v1/credentials/000.00.99.H49/revoke", headers=bearer(client, ADMIN))
    assert missing.status_code == 404


def test_rotation_with_overlap_zero_kills_old_tokens_without_one_the_overlap_stays(
    platform: tuple[TestClient, CredentialDirectory],
) -> None:
    client, directory = platform
    admin = bearer(client, ADMIN)
    old = bearer(client, DEPARTMENT)
    assert client.get("/v1/inbox", headers=old).status_code == 200
    # No overlap given: the directory's default (a day); tokens already issued keep working.
    smooth = client.post(
        f"/v1/credentials/{DEPARTMENT}/rotate", json={"new_secret": "rotated-secret-1"}, headers=admin
    )
    assert smooth.status_code == 200, smooth.text
    assert not directory.rotations[-1].HasField("overlap_seconds")
    assert client.get("/v1/inbox", headers=old).status_code == 200
    # Overlap 0: sent as 0 (not dropped as "unset"), the version bumps, the old token dies now.
    emergency = client.post(
        f"/v1/credentials/{DEPARTMENT}/rotate",
        json={"new_secret": "rotated-secret-2", "overlap_seconds": 0},
        headers=admin,
    )
    assert emergency.status_code == 200, emergency.text
    assert (
        directory.rotations[-1].HasField("overlap_seconds") and directory.rotations[-1].overlap_seconds == 0
    )
    assert emergency.json()["previous_valid_until"] == ""
    assert client.get("/v1/inbox", headers=old).status_code == 401
    assert client.get("/v1/inbox", headers=bearer(client, DEPARTMENT, "rotated-secret-2")).status_code == 200
    for bad in ("soon", 1.5, True):
        refused = client.post(
            f"/v1/credentials/{DEPARTMENT}/rotate",
            json={"new_secret": "rotated-secret-3", "overlap_seconds": bad},
            headers=admin,
        )
        assert refused.status_code == 422, bad


def test_kid_is_not_derived_from_the_secret_and_any_replica_reads_any_token() -> None:
    secret = "a-real-secret-" + "z" * 32

    def app(**gateway: Any) -> TestClient:
        settings = gateway_settings(**{"jwt_secret": secret, **gateway})
        return TestClient(create_app(settings, clients=fake_clients()))

    with app() as one, app() as two, app(jwt_key_id="2027-01") as named:
        token = bearer(one, DEPARTMENT)["Authorization"][7:]
        kid = jwt.get_unverified_header(token)["kid"]
        assert kid not in {hashlib.sha256(secret.encode()).hexdigest()[:n] for n in (8, 12, 16, 64)}
        assert kid != jwt.get_unverified_header(bearer(two, DEPARTMENT)["Authorization"][7:])["kid"]
        # Another replica (another random id for the same key) still accepts it.
        assert two.get("/v1/inbox", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert jwt.get_unverified_header(bearer(named, DEPARTMENT)["Authorization"][7:])["kid"] == "2027-01"
    # After a key rotation, tokens of the previous key still verify; a token of no key does not.
    with app(jwt_secret="the-next-secret-" + "y" * 32, previous_jwt_secrets=[secret]) as rotated:
        assert rotated.get("/v1/inbox", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        forged = jwt.encode(
            {**jwt.decode(token, options={"verify_signature": False})}, "g" * 40, headers={"kid": kid}
        )
        assert rotated.get("/v1/inbox", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("gateway.lienthong.svc", False),
    ],
)
def test_loopback_listen_addresses(host: str, loopback: bool) -> None:
    assert listens_only_on_loopback(host) is loopback


def test_the_placeholder_secret_is_refused_unless_the_gateway_listens_on_loopback_only() -> None:
    placeholder = GatewaySettings()
    assert placeholder.jwt_secret.get_secret_value() == PLACEHOLDER_SECRET
    refuse_placeholder_secret(placeholder, "127.0.0.1")  # a developer's own machine
    with pytest.raises(PlaceholderSecretError, match="placeholder"):
        refuse_placeholder_secret(placeholder, "0.0.0.0")
    real = GatewaySettings(jwt_secret=SecretStr("r" * 40))
    refuse_placeholder_secret(real, "0.0.0.0")
    # Still verifying tokens with the placeholder is as bad as signing with it.
    lingering = GatewaySettings(
        jwt_secret=SecretStr("r" * 40), previous_jwt_secrets=[SecretStr(PLACEHOLDER_SECRET)]
    )
    with pytest.raises(PlaceholderSecretError):
        refuse_placeholder_secret(lingering, "0.0.0.0")


def test_the_gateway_process_refuses_to_start_with_the_placeholder_on_a_reachable_address(
    tmp_path: Path,
) -> None:
    gateway = Path(sys.executable).parent / "lienthong-gateway"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LIENTHONG_GATEWAY__", "LIENTHONG_HTTP__"))
    }
    env.update(
        {"LIENTHONG_HTTP__HOST": "0.0.0.0", "LIENTHONG_HTTP__PORT": "1", "LIENTHONG_DATA_DIR": str(tmp_path)}
    )
    env["OTEL_SDK_DISABLED"] = "true"
    result = subprocess.run([str(gateway), "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "development placeholder" in result.stderr and "Traceback" not in result.stderr
