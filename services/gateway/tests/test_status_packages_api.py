"""A business status posted as an edXML status package, in VNPT's shape or edXML:Status."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from gateway_fakes import (
    DEPARTMENT,
    OUTSIDER,
    PROVINCE,
    fake_clients,
    gateway_settings,
    package_from,
    secret_of,
)

from lienthong_common import edxml
from lienthong_gateway.app import create_app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(gateway_settings(), clients=fake_clients())) as test_client:
        yield test_client


def auth(client: TestClient, code: str) -> dict[str, str]:
    reply = client.post("/v1/oauth/token", data={"client_id": code, "client_secret": secret_of(code)})
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def sent_document(client: TestClient, number: str) -> tuple[str, str]:
    package = package_from(PROVINCE, [DEPARTMENT], number=number)
    reply = client.post(
        "/v1/documents",
        content=package,
        headers={**auth(client, PROVINCE), "Content-Type": "application/xml"},
    )
    assert reply.status_code == 202, reply.text
    return reply.json()["id"], edxml.parse_package(package).header.document_id


def status(author: str, addressee: str, document_id: str, code: str = "03") -> edxml.StatusPackage:
    return edxml.StatusPackage(
        response_for_organ_id=addressee,
        response_for_document_id=document_id,
        response_for_code=document_id.split(",")[-1],
        response_for_promulgation_date=dt.date(2026, 1, 5),
        sender=edxml.Organization(organ_id=author),
        status_code=code,
        description="Đã tiếp nhận",
        timestamp=dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC),
    )


def post(client: TestClient, code: str, body: bytes) -> dict[str, object]:
    reply = client.post(
        "/v1/status-packages", content=body, headers={**auth(client, code), "Content-Type": "application/xml"}
    )
    return {"status": reply.status_code, **reply.json()}


@pytest.mark.parametrize("build", [edxml.build_vnpt_status_package, edxml.build_status_package])
def test_a_recipients_status_package_records_its_status_on_the_document_it_names(
    client: TestClient, build: object
) -> None:
    doc_id, document_id = sent_document(client, "71")
    reply = post(client, DEPARTMENT, build(status(DEPARTMENT, PROVINCE, document_id)))  # type: ignore[operator]
    assert reply["status"] == 200 and reply["id"] == doc_id, reply
    assert reply["recipients"] == [{"code": DEPARTMENT, "state": "accepted", "last_status_code": "03"}]


def test_a_status_package_is_posted_only_by_its_author_and_only_for_a_document_it_exchanged(
    client: TestClient,
) -> None:
    _, document_id = sent_document(client, "72")
    forged = post(
        client, PROVINCE, edxml.build_vnpt_status_package(status(DEPARTMENT, PROVINCE, document_id))
    )
    assert forged["status"] == 403 and "From/OrganId is 000.00.02.H49" in str(forged["detail"])
    outsider = post(
        client, OUTSIDER, edxml.build_vnpt_status_package(status(OUTSIDER, PROVINCE, document_id))
    )
    assert outsider["status"] == 404 and document_id in str(outsider["detail"])


def test_a_document_package_sent_as_a_status_is_refused_with_the_reason(client: TestClient) -> None:
    reply = post(client, PROVINCE, package_from(PROVINCE, [DEPARTMENT]))
    assert reply["status"] == 422 and "status package is not valid" in str(reply["detail"])
