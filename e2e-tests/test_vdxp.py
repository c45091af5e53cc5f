"""The VDXP-compatible facade, replaying what existing document-management software does:
send, list received, get, update status, list sent."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx

from harness import DEPARTMENT, OUTSIDER, PROVINCE, RunningPlatform, eventually
from lienthong_common import edxml
from lienthong_sdk.demo import load_credentials


def vdxp(
    platform: RunningPlatform, operation: str, code: str, body: bytes = b"", **headers: str
) -> dict[str, Any]:
    secret = load_credentials(platform.local.data_dir)[code]
    reply = httpx.post(
        f"{platform.local.gateway_url}/vdxp/{operation}",
        content=body,
        headers={"systemid": code, "secret": secret, **headers},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()
    assert set(data) >= {"status", "ErrorCode", "ErrorDesc"}, data
    return data


def test_existing_software_sequence(platform: RunningPlatform, signed_pdf, tmp_path: Path) -> None:
    pdf: Path = signed_pdf(PROVINCE, "Công văn qua VDXP")
    header = edxml.MessageHeader(
        sender=edxml.Organization(organ_id=PROVINCE, organ_name="UBND tỉnh Quảng Ninh"),
        recipients=[edxml.Organization(organ_id=DEPARTMENT)],
        code_number=str(int(dt.datetime.now().timestamp()) % 100000),
        code_notation="UBND-VP",
        promulgation_place="Hạ Long",
        promulgation_date=dt.date.today(),
        document_type=1,
        document_type_name="Công văn",
        subject="Về việc chuyển đổi sang trục mới (VDXP)",
    )
    attachment = edxml.Attachment(
        content_id="cid:1", name=pdf.name, content_type="application/pdf", data=pdf.read_bytes()
    )
    package = edxml.build_package(edxml.EdxmlPackage(header=header, attachments=[attachment]))

    # 1. sendEdoc, headers as the VDXP SDK sets them.
    sent = vdxp(
        platform,
        "sendEdoc",
        PROVINCE,
        package,
        **{
            "from": PROVINCE,
            "to": json.dumps([DEPARTMENT]),
            "servicetype": "eDoc",
            "messagetype": "edoc",
            "hash-file": hashlib.sha256(package).hexdigest(),
            "Content-Type": "application/xml",
        },
    )
    assert sent["status"] == "OK", sent
    doc_id = sent["DocId"]
    # A retry of the same bytes (lost reply) gives the same DocId, not a second document.
    again = vdxp(platform, "sendEdoc", PROVINCE, package, servicetype="eDoc", messagetype="edoc")
    assert again["DocId"] == doc_id

    # 2. getReceivedEdocList until the document is verified and delivered.
    def pending() -> list[dict[str, Any]]:
        listed = vdxp(platform, "getReceivedEdocList", DEPARTMENT, servicetype="eDoc", messagetype="edoc")
        assert listed["status"] == "OK", listed
        return [item for item in listed["data"] if item["id"] == doc_id]

    item = eventually(pending, what=f"{doc_id} in the VDXP received list")[0]
    assert item["from"] == PROVINCE and item["subject"] == header.subject

    # 3. getEdoc: the package, base64.
    got = vdxp(platform, "getEdoc", DEPARTMENT, docId=doc_id)
    assert got["status"] == "OK", got
    fetched = edxml.parse_package(base64.b64decode(got["data"]))
    assert fetched.header.subject == header.subject
    assert fetched.attachments[0].data == pdf.read_bytes()
    # An agency that is neither sender nor recipient learns nothing.
    hidden = vdxp(platform, "getEdoc", OUTSIDER, docId=doc_id)
    assert hidden["status"] == "FAIL" and hidden["ErrorCode"] == "404"

    # 4. updateStatus: done (taken by the receiving system), then a business status.
    done = vdxp(platform, "updateStatus", DEPARTMENT, docId=doc_id, status="done")
    assert done["status"] == "OK", done
    assert not pending(), "an acknowledged document leaves the received list"
    accepted = vdxp(platform, "updateStatus", DEPARTMENT, docId=doc_id, status="03")
    assert accepted["status"] == "OK", accepted

    # 5. getSentEdocList: the sender sees the recipient's state.
    # The sender has sent many documents in this session: page through, as real software does.
    mine: list[dict[str, Any]] = []
    cursor: dict[str, str] = {}
    while not mine:
        listed = vdxp(platform, "getSentEdocList", PROVINCE, servicetype="eDoc", messagetype="edoc",
                      limit="500", **cursor)
        assert listed["status"] == "OK", listed
        mine = [d for d in listed["data"] if d["id"] == doc_id]
        if not listed.get("nextCursor") or not listed["data"]:
            break
        cursor = {"cursor": listed["nextCursor"]}
    assert mine and mine[0]["statuses"] == [
        {
            "toCode": DEPARTMENT,
            "status": "accepted",
            "statusCode": "03",
            "updatedTime": mine[0]["statuses"][0]["updatedTime"],
        }
    ]
    one = vdxp(platform, "getSentEdocList", PROVINCE, docId=doc_id)
    assert one["data"][0]["statusCode"] == "03"
    # The sender's software reads the recipient's statuses (messagetype=status).
    statuses = vdxp(platform, "getReceivedEdocList", PROVINCE, servicetype="eDoc", messagetype="status")
    assert [s["statusCode"] for s in statuses["data"] if s["docId"] == doc_id] == ["01", "03"]

    agencies = vdxp(platform, "getAgenciesList", OUTSIDER)
    assert PROVINCE in {a["code"] for a in agencies["data"]}
    refused = vdxp(
        platform, "registerAgency", PROVINCE, json.dumps({"code": "000.00.31.H49", "name": "x"}).encode()
    )
    assert refused["status"] == "FAIL" and refused["ErrorCode"] == "403"
