"""Every role x every endpoint, allowed and refused, against create_app with fake services.

Roles: the sender of a document, a recipient, an outsider (neither), an administrator and an
anonymous caller. Refusals are 401 (no credentials), 403 (a rule, with the reason) or 404 (a
document the caller may not see: never revealed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from gateway_fakes import (
    ADMIN,
    DEPARTMENT,
    OUTSIDER,
    PROVINCE,
    fake_clients,
    gateway_settings,
    package_from,
    secret_of,
)

from lienthong_gateway.app import create_app
from lienthong_sdk.vdxp_client import VdxpClient

ROLES = {"sender": PROVINCE, "recipient": DEPARTMENT, "outsider": OUTSIDER, "admin": ADMIN, "anonymous": None}
# /metrics is not public: administrators only on the API port, or a metrics port of its own.
PUBLIC = {("POST", "/v1/oauth/token"), ("GET", "/healthz"), ("GET", "/readyz")}


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(gateway_settings(), clients=fake_clients())) as test_client:
        yield test_client


def token(client: TestClient, code: str) -> str:
    reply = client.post("/v1/oauth/token", data={"client_id": code, "client_secret": secret_of(code)})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


def headers_for(client: TestClient, role: str) -> dict[str, str]:
    code = ROLES[role]
    return {"Authorization": f"Bearer {token(client, code)}"} if code else {}


def submit(client: TestClient, sender: str = PROVINCE, to: list[str] | None = None) -> str:
    package = package_from(sender, to or [DEPARTMENT])
    reply = client.post(
        "/v1/documents",
        content=package,
        headers={**headers_for(client, "sender"), "Content-Type": "application/xml"},
    )
    assert reply.status_code == 202, reply.text
    return str(reply.json()["id"])


# (method, path template, body kind) -> expected status per role
MATRIX: list[tuple[str, str, str, dict[str, int]]] = [
    ("POST", "/v1/documents", "package", {"sender": 202, "recipient": 403, "outsider": 403, "admin": 403}),
    ("GET", "/v1/documents/{id}", "", {"sender": 200, "recipient": 200, "outsider": 404, "admin": 404}),
    (
        "GET",
        "/v1/documents/{id}/content",
        "",
        {"sender": 200, "recipient": 200, "outsider": 404, "admin": 404},
    ),
    (
        "GET",
        "/v1/documents/no-such-document",
        "",
        {"sender": 404, "recipient": 404, "outsider": 404, "admin": 404},
    ),
    ("GET", "/v1/inbox", "", {"sender": 200, "recipient": 200, "outsider": 200, "admin": 200}),
    (
        "POST",
        "/v1/documents/{id}/status",
        "03",
        {"sender": 403, "recipient": 200, "outsider": 404, "admin": 404},
    ),
    (
        "POST",
        "/v1/documents/{id}/status",
        "13",
        {"sender": 200, "recipient": 403, "outsider": 404, "admin": 404},
    ),
    ("GET", "/v1/agencies", "", {"sender": 200, "recipient": 200, "outsider": 200, "admin": 200}),
    ("GET", f"/v1/agencies/{PROVINCE}", "", {"sender": 200, "recipient": 200, "outsider": 200, "admin": 200}),
    (
        "PUT",
        f"/v1/agencies/{OUTSIDER}",
        "agency",
        {"sender": 403, "recipient": 403, "outsider": 403, "admin": 200},
    ),
    ("GET", "/v1/statistics/report", "", {"sender": 200, "recipient": 200, "outsider": 200, "admin": 200}),
]


def call(client: TestClient, method: str, path: str, kind: str, headers: dict[str, str]) -> Any:
    if kind == "package":
        return client.post(
            path,
            content=package_from(PROVINCE, [DEPARTMENT]),
            headers={**headers, "Content-Type": "application/xml"},
        )
    if kind in ("03", "13"):
        return client.post(path, json={"code": kind, "description": "thử"}, headers=headers)
    if kind == "agency":
        return client.put(path, json={"name": "Văn phòng Chính phủ", "tier": 1}, headers=headers)
    return client.request(method, path, headers=headers)


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize(("method", "template", "kind", "expected"), MATRIX)
def test_matrix(
    client: TestClient, role: str, method: str, template: str, kind: str, expected: dict[str, int]
) -> None:
    doc_id = submit(client)
    reply = call(client, method, template.replace("{id}", doc_id), kind, headers_for(client, role))
    want = 401 if role == "anonymous" else expected[role]
    assert reply.status_code == want, f"{role} {method} {template}: {reply.status_code} {reply.text}"
    if want >= 400:
        assert reply.headers["content-type"].startswith("application/problem+json")
        problem = reply.json()
        assert problem["status"] == want and problem["detail"], problem
        if want == 404:
            # Absent and not-yours read the same: nothing tells an outsider the document exists.
            assert doc_id not in problem["detail"] or "was not found" in problem["detail"]


def test_a_404_for_an_outsider_is_the_same_as_for_a_document_that_does_not_exist(client: TestClient) -> None:
    doc_id = submit(client)
    outsider = headers_for(client, "outsider")
    hidden = client.get(f"/v1/documents/{doc_id}", headers=outsider).json()
    absent = client.get("/v1/documents/00000000-0000-0000-0000-000000000000", headers=outsider).json()
    assert hidden["type"] == absent["type"] and hidden["title"] == absent["title"]
    assert hidden["detail"].replace(doc_id, "X") == absent["detail"].replace(
        absent["instance"].split("/")[-1], "X"
    )


def test_every_non_public_endpoint_refuses_anonymous_callers(client: TestClient) -> None:
    checked = 0
    paths = client.get("/openapi.json").json()["paths"]
    for template, operations in paths.items():
        if template.startswith("/vdxp"):
            continue
        for method in operations:
            if (method.upper(), template) in PUBLIC:
                continue
            path = template.replace("{document_id}", "x").replace("{code}", PROVINCE)
            path = path.replace("{", "").replace("}", "")
            reply = client.request(method.upper(), path)
            assert reply.status_code == 401, f"{method} {template}: {reply.status_code}"
            assert reply.headers["content-type"].startswith("application/problem+json")
            checked += 1
    assert checked >= 8


def vdxp_client(client: TestClient, system_id: str, secret: str | None = None) -> VdxpClient:
    return VdxpClient("http://testserver/vdxp", system_id, secret or secret_of(system_id), http=client)


def test_vdxp_operations_refuse_bad_system_credentials(client: TestClient) -> None:
    for operation in (
        "sendEdoc",
        "getReceivedEdocList",
        "getEdoc",
        "updateStatus",
        "getSentEdocList",
        "countReceiveEdoc",
        "getAgenciesList",
        "registerAgency",
    ):
        wrong = vdxp_client(client, PROVINCE, "wrong").request(operation, {"servicetype": "eDoc"})
        unsigned = client.post(
            f"/vdxp/{operation}", headers={"systemid": PROVINCE, "secret": secret_of(PROVINCE)}
        )
        for reply in (wrong, unsigned):
            assert reply.status_code == 200
            assert reply.json()["status"] == "FAIL" and reply.json()["ErrorCode"] == "401", reply.text


def vdxp(client: TestClient, operation: str, role: str, **params: str) -> dict[str, Any]:
    code = ROLES[role]
    assert code
    reply = vdxp_client(client, code).request(operation, params, body=b"{}")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


@pytest.mark.parametrize(
    ("operation", "params", "allowed"),
    [
        ("getEdoc", {}, {"sender", "recipient"}),
        ("updateStatus", {"status": "done"}, {"recipient"}),
        ("updateStatus", {"status": "13"}, {"sender"}),
        ("getSentEdocList", {}, {"sender"}),
        ("getAgenciesList", {}, {"sender", "recipient", "outsider", "admin"}),
    ],
)
@pytest.mark.parametrize("role", ["sender", "recipient", "outsider", "admin"])
def test_vdxp_matrix(
    client: TestClient, operation: str, params: dict[str, str], allowed: set[str], role: str
) -> None:
    doc_id = submit(client)
    reply = vdxp(client, operation, role, docId=doc_id, **params)
    assert (reply["status"] == "OK") == (role in allowed), reply


def test_vdxp_register_agency_is_for_administrator_systems(client: TestClient) -> None:
    body = json.dumps({"code": "000.00.30.H49", "name": "Sở Thử nghiệm", "pcode": PROVINCE}).encode()
    for code, expected in ((PROVINCE, "FAIL"), (ADMIN, "OK")):
        reply = vdxp_client(client, code).request("registerAgency", {}, body=body)
        assert reply.json()["status"] == expected, reply.text
