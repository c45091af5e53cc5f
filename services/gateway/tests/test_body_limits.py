"""Body limits on every endpoint (issue 20, item 5): refused on Content-Length before a byte is
read, or on the stream the moment it goes over; uploads keep the package limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from gateway_fakes import PROVINCE, fake_clients, gateway_settings, secret_of

from lienthong_gateway.app import create_app
from lienthong_gateway.body_limits import IMPORT_BYTES, JSON_BYTES, TOKEN_BYTES, body_limit

MIB = 1024 * 1024


@pytest.fixture
def app() -> Iterator[FastAPI]:
    application = create_app(gateway_settings(max_request_bytes=4 * MIB), clients=fake_clients())
    with TestClient(application):
        yield application


def call(
    app: FastAPI, method: str, path: str, *, declared: int | None, chunks: int, chunk_size: int = MIB
) -> tuple[int, dict[str, str], bytes, int]:
    """Drive the ASGI app with a body of `chunks` chunks; (status, headers, body, chunks read)."""
    headers = [(b"host", b"testserver"), (b"content-type", b"application/x-www-form-urlencoded")]
    if declared is not None:
        headers.append((b"content-length", str(declared).encode()))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("198.51.100.1", 5000),
        "server": ("testserver", 80),
        "state": {},
    }
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read >= chunks:
            await asyncio.sleep(3600)  # a client that never finishes
        read += 1
        return {"type": "http.request", "body": b"a" * chunk_size, "more_body": read < chunks}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        await asyncio.wait_for(app(scope, receive, send), timeout=10)

    asyncio.run(run())
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    response_headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], response_headers, body, read


def test_a_60_mib_token_request_is_refused_before_it_is_read(app: FastAPI) -> None:
    status, headers, body, read = call(app, "POST", "/v1/oauth/token", declared=60 * MIB, chunks=60)
    assert (status, read) == (413, 0)
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["type"].endswith("body-too-large")


def test_a_streamed_body_without_length_is_cut_at_the_limit(app: FastAPI) -> None:
    status, _, body, read = call(
        app, "POST", "/v1/oauth/token", declared=None, chunks=60, chunk_size=16 * 1024
    )
    assert status == 413 and read == TOKEN_BYTES // (16 * 1024) + 1
    assert "at most 65536 bytes" in json.loads(body)["detail"]


def test_a_small_json_endpoint_refuses_a_large_body(app: FastAPI) -> None:
    status, _, _, read = call(app, "PUT", "/v1/webhook", declared=JSON_BYTES + 1, chunks=1)
    assert (status, read) == (413, 0)


def test_uploads_keep_the_package_limit(app: FastAPI) -> None:
    client = TestClient(app)
    token = client.post("/v1/oauth/token", data={"client_id": PROVINCE, "client_secret": secret_of(PROVINCE)})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}", "Content-Type": "application/xml"}
    big = b"<x>" + b"a" * (3 * MIB) + b"</x>"  # far over every JSON limit, under the package limit
    reply = client.post("/v1/documents", content=big, headers=headers)
    assert reply.status_code == 422, reply.text  # read and parsed (not an edXML package), not 413
    too_big = client.post("/v1/documents", content=b"a" * (4 * MIB + 1), headers=headers)
    assert too_big.status_code == 413


def test_vdxp_refusals_are_fail_bodies(app: FastAPI) -> None:
    status, _, body, read = call(app, "POST", "/vdxp/getEdoc", declared=1 * MIB, chunks=1)
    assert (status, read) == (200, 0)
    assert json.loads(body)["status"] == "FAIL" and json.loads(body)["ErrorCode"] == "413"
    status, _, body, _ = call(app, "GET", "/vdxp/downloadEdoc", declared=1 * MIB, chunks=1)
    assert status == 413 and body == b""
    # sendEdoc reads up to the package limit (+ the SDK's CRLF): the signature check answers.
    status, _, body, read = call(app, "POST", "/vdxp/sendEdoc", declared=3 * MIB, chunks=3)
    assert json.loads(body)["ErrorCode"] == "401"


def test_every_endpoint_has_a_limit_fitting_its_purpose() -> None:
    settings = gateway_settings(max_request_bytes=50 * MIB)
    assert body_limit("POST", "/v1/oauth/token", settings) == 64 * 1024
    assert body_limit("POST", "/reports/login", settings) == 64 * 1024
    assert body_limit("POST", "/v1/documents", settings) == 50 * MIB
    assert body_limit("POST", "/vdxp/sendEdoc", settings) == 50 * MIB + 2
    assert body_limit("POST", "/vdxp//sendEdoc", settings) == 50 * MIB + 2
    assert body_limit("POST", "/vdxp/getReceivedEdocList", settings) == 64 * 1024
    assert body_limit("POST", "/v1/documents/x/status", settings) == JSON_BYTES
    assert body_limit("POST", "/v1/agencies/import", settings) == IMPORT_BYTES
    assert body_limit("GET", "/v1/inbox", settings) == JSON_BYTES
