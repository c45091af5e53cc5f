"""The credential-version check is remembered for a few seconds, never for a refusal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from gateway_fakes import DEPARTMENT, FakeDirectory, fake_clients, gateway_settings, secret_of

from lienthong_gateway.app import create_app
from lienthong_gateway.auth import CredentialVersions


class CountingDirectory(FakeDirectory):
    def __init__(self) -> None:
        super().__init__()
        self.version_checks = 0
        self.revoked: set[str] = set()

    def GetCredentialVersion(self, request: Any, timeout: float = 0) -> Any:
        self.version_checks += 1
        reply = super().GetCredentialVersion(request, timeout)
        if request.client_id in self.revoked:
            reply.active = False
        return reply


def platform(ttl: float) -> tuple[TestClient, CountingDirectory]:
    clients = fake_clients()
    directory = CountingDirectory()
    clients.directory = directory  # type: ignore[assignment]
    app = create_app(gateway_settings(credential_cache_seconds=ttl), clients=clients)
    return TestClient(app), directory


@pytest.fixture
def cached() -> Iterator[tuple[TestClient, CountingDirectory]]:
    client, directory = platform(ttl=60)
    with client:
        yield client, directory


def bearer(client: TestClient, code: str = DEPARTMENT) -> dict[str, str]:
    reply = client.post("/v1/oauth/token", data={"client_id": code, "client_secret": secret_of(code)})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def test_a_confirmed_version_is_not_asked_again_within_the_ttl(
    cached: tuple[TestClient, CountingDirectory],
) -> None:
    client, directory = cached
    headers = bearer(client)  # the token endpoint's VerifyCredential confirms the version
    for _ in range(5):
        assert client.get("/v1/inbox", headers=headers).status_code == 200
    assert directory.version_checks == 0


def test_a_rotated_version_is_checked_live_so_new_tokens_work_at_once(
    cached: tuple[TestClient, CountingDirectory],
) -> None:
    client, directory = cached
    old = bearer(client)
    assert client.get("/v1/inbox", headers=old).status_code == 200
    directory.versions[DEPARTMENT] = 2  # rotated in the directory, not through this gateway
    new = bearer(client)
    assert client.get("/v1/inbox", headers=new).status_code == 200
    # The old token's version no longer matches what is remembered: asked live, refused.
    refused = client.get("/v1/inbox", headers=old)
    assert refused.status_code == 401
    assert "revoked or rotated" in refused.json()["detail"]


def test_a_revocation_takes_effect_once_the_ttl_has_passed() -> None:
    client, directory = platform(ttl=0.3)
    with client:
        headers = bearer(client)
        assert client.get("/v1/inbox", headers=headers).status_code == 200
        directory.revoked.add(DEPARTMENT)
        time.sleep(0.35)
        refused = client.get("/v1/inbox", headers=headers)
        assert refused.status_code == 401
        # A refusal is not remembered: asked again on the next request too.
        checks = directory.version_checks
        assert client.get("/v1/inbox", headers=headers).status_code == 401
        assert directory.version_checks == checks + 1


def test_ttl_zero_asks_the_directory_on_every_request() -> None:
    client, directory = platform(ttl=0)
    with client:
        headers = bearer(client)
        for _ in range(3):
            assert client.get("/v1/inbox", headers=headers).status_code == 200
        assert directory.version_checks == 3


def test_cache_bounds_and_forget() -> None:
    versions = CredentialVersions(ttl=60, max_entries=2)
    versions.remember("a", 1)
    versions.remember("b", 1)
    versions.remember("c", 1)  # over the bound: starts afresh
    assert not versions.is_current("a", 1)
    assert versions.is_current("c", 1)
    assert not versions.is_current("c", 2)
    versions.forget("c")
    assert not versions.is_current("c", 1)
