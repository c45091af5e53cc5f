"""Large packages through the gateway (issue 24): spooled to disk and streamed on to docstore,
getEdoc and downloadEdoc streamed back byte for byte, the limit stated as the largest
attachment that fits (413, VDXP FAIL, GET /v1/limits)."""

from __future__ import annotations

import base64
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from gateway_fakes import DEPARTMENT, PROVINCE, fake_clients, gateway_settings, secret_of

from lienthong_common import edxml
from lienthong_gateway.app import create_app
from lienthong_gateway.uploads import SPOOL_ABOVE, spool_dir
from lienthong_gateway.vdxp import base64_chunks, sdk_file
from lienthong_gateway.vdxp_wire import reply_ok
from lienthong_sdk.vdxp_client import VdxpClient, hash_file

MIB = 1024 * 1024
LIMIT = 4 * MIB
LARGEST = 3_096_576  # package_limits.max_attachment_bytes(4 MiB)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = gateway_settings(max_request_bytes=LIMIT)
    settings.data_dir = tmp_path
    with TestClient(create_app(settings, clients=fake_clients())) as test_client:
        yield test_client


def headers(client: TestClient, code: str = PROVINCE) -> dict[str, str]:
    reply = client.post("/v1/oauth/token", data={"client_id": code, "client_secret": secret_of(code)})
    return {"Authorization": f"Bearer {reply.json()['access_token']}", "Content-Type": "application/xml"}


def package_of(size: int, number: str = "1") -> bytes:
    header = edxml.MessageHeader(
        sender=edxml.Organization(organ_id=PROVINCE),
        recipients=[edxml.Organization(organ_id=DEPARTMENT)],
        code_number=number,
        code_notation="UBND-VP",
        promulgation_place="Hạ Long",
        promulgation_date=dt.date(2026, 1, 5),
        document_type=1,
        document_type_name="Công văn",
        subject="Bản quét",
    )
    data = b"%PDF-1.7\n" + os.urandom(size - 9)
    attachment = edxml.Attachment(
        content_id="cid:1", name="scan.pdf", content_type="application/pdf", data=data
    )
    return edxml.build_package(edxml.EdxmlPackage(header=header, attachments=[attachment]))


def vdxp(client: TestClient, code: str) -> VdxpClient:
    return VdxpClient("http://testserver/vdxp", code, secret_of(code), http=client)


def test_a_large_package_is_spooled_streamed_to_docstore_and_its_spool_file_removed(
    client: TestClient, tmp_path: Path
) -> None:
    package = package_of(LARGEST, "7")
    assert SPOOL_ABOVE < len(package) <= LIMIT
    reply = client.post("/v1/documents", content=package, headers=headers(client))
    assert reply.status_code == 202, reply.text
    stored = client.app.state.gateway.clients.docstore.documents[reply.json()["id"]]  # type: ignore[attr-defined]
    assert stored.package == package and stored.meta.package_size == len(package)
    spool = spool_dir(tmp_path)
    assert spool.is_dir() and not list(spool.iterdir())


def test_the_limit_is_refused_in_attachment_terms_on_rest_and_vdxp(
    client: TestClient, tmp_path: Path
) -> None:
    over = package_of(LARGEST + 3, "8")  # one base64 quad more than fits
    over += b" " * (LIMIT + 1 - len(over))  # exactly one byte over the limit
    assert len(over) == LIMIT + 1
    refused = client.post("/v1/documents", content=over, headers=headers(client))
    assert refused.status_code == 413
    problem = refused.json()
    assert problem["type"].endswith("package-too-large")
    assert problem["max_package_bytes"] == LIMIT and problem["max_attachment_bytes"] == LARGEST
    assert f"the largest attachment that fits is 3.0 MiB ({LARGEST} bytes" in problem["detail"]
    assert problem["detail"].startswith(f"package is {LIMIT + 1} bytes")

    fail = vdxp(client, PROVINCE).send_edoc(
        over, {"from": PROVINCE, "servicetype": "eDoc", "messagetype": "edoc"}
    )
    assert (fail["status"], fail["ErrorCode"]) == ("FAIL", "413"), fail
    assert f"package is {LIMIT + 1} bytes" in fail["ErrorDesc"]  # the SDK's CRLF is not counted
    assert f"the largest attachment that fits is 3.0 MiB ({LARGEST} bytes" in fail["ErrorDesc"]
    assert not client.app.state.gateway.clients.docstore.documents  # type: ignore[attr-defined]
    assert not list(tmp_path.rglob("upload-*"))  # refused before a spool file was made

    limits = client.get("/v1/limits", headers=headers(client)).json()
    assert limits["max_package_bytes"] == LIMIT and limits["max_attachment_bytes"] == LARGEST
    assert limits["detail"].startswith("the largest attachment that fits is 3.0 MiB")


def test_get_edoc_and_download_edoc_stream_the_package_as_before(client: TestClient) -> None:
    package = package_of(2 * MIB + 1, "9")
    sent = vdxp(client, PROVINCE).send_edoc(
        package, {"from": PROVINCE, "to": [DEPARTMENT], "servicetype": "eDoc", "messagetype": "edoc"}
    )
    assert sent["status"] == "OK", sent
    department = vdxp(client, DEPARTMENT)
    got = department.request("getEdoc", {"docId": sent["DocId"]}, body=b"{}")
    # What reply_ok(data=...) rendered whole, byte for byte, with its length declared.
    expected = bytes(reply_ok(data=base64.b64encode(package).decode("ascii")).body)
    assert got.content == expected
    assert got.headers["content-length"] == str(len(expected))
    assert got.headers["content-type"] == "application/json"
    downloaded = department.download_edoc(sent["DocId"])
    assert downloaded == package


@pytest.mark.parametrize("sizes", [[1], [2, 2, 2], [256 * 1024 + 1, 7, 0, 5], [3, 3, 4]])
def test_base64_of_chunks_is_base64_of_the_whole(sizes: list[int]) -> None:
    chunks = [os.urandom(n) for n in sizes]
    assert b"".join(base64_chunks(chunks)) == base64.b64encode(b"".join(chunks))


def test_a_spooled_send_edoc_body_is_read_without_the_sdks_crlf_only_when_hash_file_names_that(
    tmp_path: Path,
) -> None:
    package = package_of(2 * MIB, "10")
    body = tmp_path / "body"
    body.write_bytes(package + b"\r\n")
    assert sdk_file(body, hash_file(package)) == package  # what match_hash_file keeps as is
    assert sdk_file(body, hash_file(package + b"\r\n")) == package + b"\r\n"  # the hash names the body
    assert sdk_file(body, "") == package + b"\r\n"  # no hash-file: send_edoc_sync decides
    body.write_bytes(package)
    assert sdk_file(body, hash_file(package)) == package  # no CRLF appended
