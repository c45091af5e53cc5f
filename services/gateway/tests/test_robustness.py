"""Rate limits, status idempotency, the body limit, mTLS binding and the OpenAPI document."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi.testclient import TestClient
from gateway_fakes import DEPARTMENT, PROVINCE, fake_clients, gateway_settings, package_from, secret_of

from lienthong_common.pki import DevPki
from lienthong_gateway.app import create_app
from lienthong_gateway.ratelimit import RateLimiter


def make_client(**settings: object) -> TestClient:
    return TestClient(create_app(gateway_settings(**settings), clients=fake_clients()))


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make_client() as c:
        yield c


def auth(client: TestClient, code: str) -> dict[str, str]:
    reply = client.post("/v1/oauth/token", data={"client_id": code, "client_secret": secret_of(code)})
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def test_token_bucket_refills_at_the_configured_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)
    assert limiter.acquire("b") == 0.0, "buckets are per agency"
    now[0] += 0.5
    assert limiter.acquire("a") == 0.0


def test_over_the_limit_is_429_with_retry_after() -> None:
    with make_client(rate_limit_per_second=1, rate_limit_burst=2) as client:
        headers = auth(client, PROVINCE)
        statuses = [client.get("/v1/inbox", headers=headers).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        limited = client.get("/v1/inbox", headers=headers)
        assert limited.headers["retry-after"] == "1"
        assert limited.json()["type"].endswith("rate-limited")
        assert client.get("/v1/inbox", headers=auth(client, DEPARTMENT)).status_code == 200


def submit(client: TestClient) -> str:
    reply = client.post(
        "/v1/documents",
        content=package_from(PROVINCE, [DEPARTMENT]),
        headers={**auth(client, PROVINCE), "Content-Type": "application/xml", "Idempotency-Key": "k1"},
    )
    assert reply.status_code == 202
    return str(reply.json()["id"])


def test_idempotency_of_packages_and_statuses(client: TestClient) -> None:
    doc_id = submit(client)
    assert submit(client) == doc_id, "same key and body: the first document"
    other = client.post(
        "/v1/documents",
        content=package_from(PROVINCE, [DEPARTMENT], number="2"),
        headers={**auth(client, PROVINCE), "Content-Type": "application/xml", "Idempotency-Key": "k1"},
    )
    assert other.status_code == 422 and other.json()["type"].endswith("idempotency-key-reused")

    headers = {**auth(client, DEPARTMENT), "Idempotency-Key": "s1"}
    url = f"/v1/documents/{doc_id}/status"
    first = client.post(url, json={"code": "03"}, headers=headers)
    retry = client.post(url, json={"code": "03"}, headers=headers)
    assert first.status_code == retry.status_code == 200 and first.json() == retry.json()
    reused = client.post(url, json={"code": "05"}, headers=headers)
    assert reused.status_code == 422
    # Without a key a repeat is a repeated transition: refused by routing.
    assert client.post(url, json={"code": "03"}, headers=auth(client, DEPARTMENT)).status_code == 409


def test_a_retry_on_another_replica_gets_the_current_state() -> None:
    clients = fake_clients()
    with TestClient(create_app(gateway_settings(), clients=clients)) as one:
        doc_id = submit(one)
        first = one.post(
            f"/v1/documents/{doc_id}/status",
            json={"code": "03"},
            headers={**auth(one, DEPARTMENT), "Idempotency-Key": "s9"},
        )
    with TestClient(create_app(gateway_settings(), clients=clients)) as two:
        retry = two.post(
            f"/v1/documents/{doc_id}/status",
            json={"code": "03"},
            headers={**auth(two, DEPARTMENT), "Idempotency-Key": "s9"},
        )
    assert retry.status_code == 200 and retry.json() == first.json()


def test_body_over_the_limit_is_413() -> None:
    with make_client(max_request_bytes=1000) as client:
        reply = client.post(
            "/v1/documents",
            content=package_from(PROVINCE, [DEPARTMENT]) + b" " * 1000,
            headers={**auth(client, PROVINCE), "Content-Type": "application/xml"},
        )
        assert reply.status_code == 413 and reply.headers["content-type"].startswith(
            "application/problem+json"
        )


def test_every_response_has_a_request_id(client: TestClient) -> None:
    assert client.get("/healthz").headers["x-request-id"]
    assert client.get("/v1/inbox", headers={"X-Request-Id": "abc"}).headers["x-request-id"] == "abc"


def test_every_operation_has_examples_tags_and_a_description(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            assert op.get("tags") and op.get("summary"), where
            if path not in OWN_PATHS and not path.startswith("/vdxp/"):
                continue  # directory, statistics, trust and webhooks document their own
            ok = op["responses"].get("200") or op["responses"].get("202")
            assert ok, where
            content = ok.get("content", {})
            has_example = any("example" in m or "examples" in m for m in content.values()) or any(
                "$ref" in m.get("schema", {}) for m in content.values()
            )
            assert has_example, f"{where} has no response example"
            body = op.get("requestBody", {}).get("content", {})
            for media in body.values():
                schema = media.get("schema", {})
                assert "example" in media or "examples" in media or "$ref" in schema, f"{where} request"


OWN_PATHS = {
    "/v1/oauth/token",
    "/v1/documents",
    "/v1/documents/{document_id}",
    "/v1/documents/{document_id}/content",
    "/v1/documents/{document_id}/status",
    "/v1/inbox",
    "/healthz",
    "/readyz",
    "/metrics",
}


class FakeRequest:
    def __init__(self, pem: str | None) -> None:
        self.scope = {"extensions": {"tls": {"client_cert_chain": [pem] if pem else []}}}


def test_mtls_certificate_must_be_bound_to_the_caller(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from lienthong_gateway.mtls import client_certificate_fingerprint, require_bound_certificate
    from lienthong_gateway.problems import Problem

    identity = DevPki.init(tmp_path / "pki").issue_signer(agency_code=PROVINCE, common_name="UBND")
    der = x509.load_pem_x509_certificate(identity.cert_pem).public_bytes(Encoding.DER)
    pem = ssl.DER_cert_to_PEM_cert(der)
    request = FakeRequest(pem)
    fingerprint = hashlib.sha256(der).hexdigest()
    assert client_certificate_fingerprint(request) == fingerprint  # type: ignore[arg-type]

    directory = fake_clients().directory
    check = dict(directory=directory, deadline=1.0, request=request)
    with pytest.raises(Problem) as refused:
        require_bound_certificate(**check, agency_code=PROVINCE, required=False)  # type: ignore[arg-type]
    assert refused.value.status == 403
    directory.client_certs[fingerprint] = PROVINCE  # type: ignore[attr-defined]
    require_bound_certificate(**check, agency_code=PROVINCE, required=False)  # type: ignore[arg-type]
    with pytest.raises(Problem):
        require_bound_certificate(**check, agency_code=DEPARTMENT, required=False)  # type: ignore[arg-type]
    with pytest.raises(Problem) as missing:
        require_bound_certificate(
            directory=directory, deadline=1.0, request=FakeRequest(None), agency_code=PROVINCE, required=True
        )  # type: ignore[arg-type]
    assert missing.value.status == 401


def test_credentials_with_control_characters_are_refused_without_asking_the_directory(
    client: TestClient,
) -> None:
    reply = client.post("/v1/oauth/token", data={"client_id": "000.00.00.H49\x00", "client_secret": "x"})
    assert reply.status_code == 401 and reply.json()["type"].endswith("invalid-client")
    vdxp = client.post("/vdxp/getAgenciesList", headers={"systemid": PROVINCE, "secret": "a\x7fb"})
    assert vdxp.json()["ErrorCode"] == "401"


def test_nul_characters_are_refused_at_the_edge(client: TestClient) -> None:
    headers = auth(client, PROVINCE)
    assert client.get("/v1/inbox?cursor=a%00b", headers=headers).status_code == 400
    doc = client.post("/v1/documents/x/status", json={"code": "03", "description": "a\x00"}, headers=headers)
    assert doc.status_code == 400 and doc.headers["x-request-id"]
    assert doc.headers["content-type"].startswith("application/problem+json")
