"""The sign-in throttle on every secret check (issue 20, item 4): the probe's 210 guesses, the
owner amid them, Unicode padding, the negative cache, the scrypt pool, /reports/login and /vdxp."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from gateway_fakes import (
    DEPARTMENT,
    PROVINCE,
    FakeDirectory,
    fake_clients,
    gateway_settings,
    secret_of,
)

from lienthong_gateway.app import create_app
from lienthong_gateway.signin_guard import (
    REALM_CREDENTIAL,
    SignInGuard,
    SignInPolicy,
    normalised_client_id,
)
from lienthong_sdk.vdxp_client import VdxpClient

ATTACKER = ("203.0.113.66", 40000)
OWNER = ("198.51.100.7", 40001)


class CountingDirectory(FakeDirectory):
    """The fake directory, counting secret checks (each one a scrypt hash in the real one)."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.checks = 0
        self.delay = delay
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def VerifyCredential(self, request: Any, timeout: float = 0) -> Any:
        with self._lock:
            self.checks += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(self.delay)
            return super().VerifyCredential(request, timeout)
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def app() -> Iterator[FastAPI]:
    clients = fake_clients()
    clients.directory = CountingDirectory()  # type: ignore[assignment]
    application = create_app(gateway_settings(), clients=clients)
    with TestClient(application):  # runs the lifespan once; the clients below share its state
        yield application


def from_address(app: FastAPI, address: tuple[str, int]) -> TestClient:
    return TestClient(app, client=address)


def token_request(client: TestClient, client_id: str, secret: str) -> httpx.Response:
    return client.post("/v1/oauth/token", data={"client_id": client_id, "client_secret": secret})


def directory_of(app: FastAPI) -> CountingDirectory:
    directory: CountingDirectory = app.state.gateway.clients.directory
    return directory


def test_the_probes_210_guesses_are_throttled_and_the_owner_still_signs_in(app: FastAPI) -> None:
    attacker, owner = from_address(app, ATTACKER), from_address(app, OWNER)
    statuses = []
    for guess in range(210):
        statuses.append(token_request(attacker, PROVINCE, f"guess-{guess}").status_code)
        if guess % 30 == 29:  # the owner, from its own address, amid the guessing
            assert token_request(owner, PROVINCE, secret_of(PROVINCE)).status_code == 200
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429] * 200
    assert directory_of(app).checks == 10 + 7, "a throttled guess costs no hash"
    limited = token_request(attacker, PROVINCE, "guess-x")
    assert limited.headers["content-type"].startswith("application/problem+json")
    assert limited.json()["type"].endswith("sign-in-throttled")
    assert 1 <= int(limited.headers["retry-after"]) <= 300
    # The attacker's address is locked for the right secret too (it guessed from there).
    assert token_request(attacker, PROVINCE, secret_of(PROVINCE)).status_code == 429


def test_unicode_padding_or_case_does_not_buy_a_fresh_bucket(app: FastAPI) -> None:
    attacker = from_address(app, ATTACKER)
    for guess in range(10):
        assert token_request(attacker, PROVINCE, f"guess-{guess}").status_code == 401
    for padded in (
        f"\u3000{PROVINCE}\u00a0",
        f"{PROVINCE}\u200b",
        f" {PROVINCE.lower()}\u2009",  # (control characters are refused before any check)
        f"\u2003{PROVINCE}\u2028",
        PROVINCE.replace("H", "\uff28"),  # fullwidth H, NFKC folds it
    ):
        assert token_request(attacker, padded, "guess-y").status_code == 429, repr(padded)
    assert normalised_client_id(f"\u3000{PROVINCE}\u200b\u00a0") == PROVINCE.casefold()


def test_one_address_guessing_many_ids_is_locked_but_not_its_known_good_clients(app: FastAPI) -> None:
    shared = from_address(app, ("192.0.2.10", 1))  # e.g. a provincial NAT
    assert token_request(shared, DEPARTMENT, secret_of(DEPARTMENT)).status_code == 200
    statuses = [token_request(shared, f"000.00.{n:02d}.H77", "guess").status_code for n in range(60)]
    assert statuses[:50] == [401] * 50 and set(statuses[50:]) == {429}
    assert token_request(shared, PROVINCE, secret_of(PROVINCE)).status_code == 429
    # DEPARTMENT signed in from there before: the address's lock does not stop it.
    assert token_request(shared, DEPARTMENT, secret_of(DEPARTMENT)).status_code == 200


def test_a_repeated_wrong_secret_costs_no_hash(app: FastAPI) -> None:
    client = from_address(app, ATTACKER)
    for _ in range(5):
        assert token_request(client, PROVINCE, "the-same-wrong-secret").status_code == 401
    assert directory_of(app).checks == 1


def test_reports_login_is_throttled_too(app: FastAPI) -> None:
    attacker = from_address(app, ATTACKER)
    page = attacker.get("/reports", headers={"Accept": "text/html"})
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    statuses = [
        attacker.post(
            "/reports/login", data={"client_id": PROVINCE, "client_secret": f"g{n}", "csrf": csrf}
        ).status_code
        for n in range(12)
    ]
    assert statuses == [401] * 10 + [429] * 2
    # One bucket for both ways in: the token endpoint is locked for the same pair.
    assert token_request(attacker, PROVINCE, "another").status_code == 429


def test_vdxp_signatures_are_throttled_with_the_fail_body(app: FastAPI) -> None:
    http = from_address(app, ATTACKER)
    wrong = VdxpClient("http://testserver/vdxp", PROVINCE, "wrong-secret", http=http)
    replies = [wrong.request("getAgenciesList", {}, body=b"{}") for _ in range(11)]
    assert [r.json()["ErrorCode"] for r in replies[:10]] == ["401"] * 10
    limited = replies[10]
    assert limited.status_code == 429 and "retry-after" in limited.headers
    assert limited.json()["status"] == "FAIL" and limited.json()["ErrorCode"] == "429"
    right = VdxpClient("http://testserver/vdxp", PROVINCE, secret_of(PROVINCE), http=from_address(app, OWNER))
    assert right.call("getAgenciesList")["status"] == "OK"


def test_secret_checks_run_a_few_at_a_time_off_the_event_loop() -> None:
    clients = fake_clients()
    directory = CountingDirectory(delay=0.05)
    clients.directory = directory  # type: ignore[assignment]
    app = create_app(gateway_settings(signin_concurrency=2), clients=clients)

    async def scenario() -> tuple[list[int], float]:
        async with app.router.lifespan_context(app):
            transports = [
                httpx.ASGITransport(app=app, client=(f"10.1.0.{n}", 1000 + n))  # type: ignore[arg-type]
                for n in range(12)
            ]
            calls = [
                httpx.AsyncClient(transport=t, base_url="http://gw").post(
                    "/v1/oauth/token", data={"client_id": PROVINCE, "client_secret": secret_of(PROVINCE)}
                )
                for t in transports
            ]
            started = time.perf_counter()
            pending = asyncio.gather(*calls)
            await asyncio.sleep(0.01)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
                health = await c.get("/healthz")  # the loop answers while hashes run
            assert health.status_code == 200
            health_after = time.perf_counter() - started
            replies = await pending
            return [r.status_code for r in replies], health_after

    statuses, health_after = asyncio.run(scenario())
    assert statuses == [200] * 12
    assert directory.most_at_once <= 2
    assert health_after < 0.3 * 12 * 0.05 + 0.05


def test_locks_expire_and_grow_on_repeat() -> None:
    now = [0.0]
    guard = SignInGuard(SignInPolicy(pair_failures=3, lockout_seconds=10), clock=lambda: now[0])
    for _ in range(3):
        guard.record(REALM_CREDENTIAL, PROVINCE, "a", valid=False)
    with pytest.raises(Exception, match="too many failed sign-ins") as first:
        guard.admit(REALM_CREDENTIAL, PROVINCE, "a")
    assert first.value.headers["Retry-After"] == "10"  # type: ignore[attr-defined]
    guard.admit(REALM_CREDENTIAL, PROVINCE, "b")  # another address: not locked
    now[0] = 10.5
    guard.admit(REALM_CREDENTIAL, PROVINCE, "a")
    for _ in range(3):
        guard.record(REALM_CREDENTIAL, PROVINCE, "a", valid=False)
    with pytest.raises(Exception, match="too many failed sign-ins") as second:
        guard.admit(REALM_CREDENTIAL, PROVINCE, "a")
    assert second.value.headers["Retry-After"] == "20"  # type: ignore[attr-defined]
    now[0] = 31.0
    guard.record(REALM_CREDENTIAL, PROVINCE, "a", valid=True)
    guard.admit(REALM_CREDENTIAL, PROVINCE, "a")


def test_an_id_guessed_at_from_many_addresses_gets_fewer_tries_per_address() -> None:
    guard = SignInGuard(SignInPolicy(pair_failures=9, address_failures=1000))
    for n in range(90):  # 9 failures from each of 10 addresses
        guard.record(REALM_CREDENTIAL, PROVINCE, f"10.0.{n % 10}.1", valid=False)
    for _ in range(3):
        guard.record(REALM_CREDENTIAL, PROVINCE, "10.9.9.9", valid=False)
    with pytest.raises(Exception, match="too many failed sign-ins"):
        guard.admit(REALM_CREDENTIAL, PROVINCE, "10.9.9.9")
    guard.admit(REALM_CREDENTIAL, PROVINCE, "10.9.9.10")  # the owner, elsewhere, is never locked out
