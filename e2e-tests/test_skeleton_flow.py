"""The skeleton flow through the CLI: sign, send, verify, deliver, fetch, status, track, count."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx

from harness import COMMUNE, DEPARTMENT, OUTSIDER, PROVINCE, RunningPlatform, eventually
from lienthong_common import edxml


def inbox_ids(platform: RunningPlatform, code: str) -> list[str]:
    # The platform is shared by the whole session: the inbox may hold more than one page.
    return [item["id"] for item in platform.cli_json("inbox", "--as", code, "--all")["items"]]


def test_signed_document_reaches_both_recipients_and_status_returns(
    platform: RunningPlatform, signed_pdf, tmp_path: Path
) -> None:
    pdf = signed_pdf(PROVINCE, "Công văn thử nghiệm")
    sent = platform.cli_json(
        "send",
        "--as",
        PROVINCE,
        "--to",
        f"{DEPARTMENT},{COMMUNE}",
        "--subject",
        "Về việc thử nghiệm trục liên thông",
        "--attach",
        str(pdf),
    )
    doc_id = sent["id"]
    assert sent["document_id"].startswith(f"{PROVINCE},")
    assert sorted(r["code"] for r in sent["recipients"]) == sorted([DEPARTMENT, COMMUNE])

    for code in (DEPARTMENT, COMMUNE):
        eventually(lambda code=code: doc_id in inbox_ids(platform, code), what=f"{doc_id} in {code}'s inbox")

    tracked = platform.cli_json("track", doc_id, "--as", PROVINCE)
    assert tracked["validation"]["indication"] == "TOTAL_PASSED"
    assert tracked["state"] == "routed"

    out = tmp_path / "fetched"
    fetched = platform.cli_json("fetch", doc_id, "--as", DEPARTMENT, "-o", str(out))
    pdf_copy = out / pdf.name
    assert str(pdf_copy) in fetched["files"]
    assert hashlib.sha256(pdf_copy.read_bytes()).digest() == hashlib.sha256(pdf.read_bytes()).digest()

    platform.cli("status", doc_id, "--as", DEPARTMENT, "--code", "03", "--description", "Đã tiếp nhận")
    tracked = platform.cli_json("track", doc_id, "--as", PROVINCE)
    states = {r["code"]: r["state"] for r in tracked["recipients"]}
    assert states == {DEPARTMENT: "accepted", COMMUNE: "delivered"}
    assert [t["code"] for t in tracked["timeline"] if t["recipient"] == DEPARTMENT and t["code"]] == [
        "01",
        "03",
    ]

    # Statistics: one sent by the province, one received by each recipient.
    def counts() -> dict[str, dict[str, int]] | None:
        report = platform.cli_json("stats", "report", "--as", PROVINCE)
        per_agency = {a["agency_code"]: a for a in report.get("agencies", [])}
        wanted = (
            PROVINCE in per_agency
            and int(per_agency[PROVINCE].get("documents_sent", 0)) >= 1
            and all(
                int(per_agency.get(c, {}).get("documents_received", 0)) >= 1 for c in (DEPARTMENT, COMMUNE)
            )
        )
        return per_agency if wanted else None

    per_agency = eventually(counts, what="statistics to count the document")
    assert int(per_agency[PROVINCE]["documents_sent"]) >= 1

    # Someone who is neither sender nor recipient sees nothing, not even that it exists.
    denied = platform.cli("fetch", doc_id, "--as", OUTSIDER, "-o", str(tmp_path / "x"), check=False)
    assert denied.returncode == 1
    assert "404" in denied.stderr and "not found" in denied.stderr
    assert doc_id not in inbox_ids(platform, OUTSIDER)


def test_unsigned_pdf_is_refused_before_any_recipient(platform: RunningPlatform, tmp_path: Path) -> None:
    from lienthong_common.pdfgen import make_pdf

    unsigned = tmp_path / "unsigned.pdf"
    unsigned.write_bytes(make_pdf("Không ký số"))
    sent = platform.cli_json(
        "send", "--as", PROVINCE, "--to", DEPARTMENT, "--subject", "Chưa ký", "--attach", str(unsigned)
    )
    doc_id = sent["id"]
    tracked = eventually(
        lambda: (d := platform.cli_json("track", doc_id, "--as", PROVINCE))["state"] == "refused" and d,
        what="the unsigned document to be refused",
    )
    assert tracked["validation"]["indication"] in {"INDETERMINATE", "TOTAL_FAILED"}
    assert tracked["recipients"] == [{"code": DEPARTMENT, "state": "refused"}]
    assert doc_id not in inbox_ids(platform, DEPARTMENT)


def test_signature_of_another_agency_is_refused(platform: RunningPlatform, signed_pdf) -> None:
    pdf = signed_pdf(DEPARTMENT, "Ký bởi đơn vị khác")
    sent = platform.cli_json(
        "send", "--as", PROVINCE, "--to", COMMUNE, "--subject", "Chữ ký sai đơn vị", "--attach", str(pdf)
    )
    tracked = eventually(
        lambda: (d := platform.cli_json("track", sent["id"], "--as", PROVINCE))["state"] == "refused" and d,
        what="the document signed by another agency to be refused",
    )
    reason = tracked["validation"]["reason"] or ""
    assert PROVINCE in reason and tracked["validation"]["indication"] == "TOTAL_FAILED"


def test_bad_input_gets_specific_problems(platform: RunningPlatform, signed_pdf, tmp_path: Path) -> None:
    pdf = signed_pdf(PROVINCE, "Lỗi đầu vào")
    unknown = platform.cli(
        "send", "--as", PROVINCE, "--to", "000.00.00.H99", "--subject", "x", "--attach", str(pdf), check=False
    )
    assert unknown.returncode == 1
    assert "000.00.00.H99" in unknown.stderr and "not in the directory" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    url = platform.local.gateway_url
    anonymous = httpx.post(
        f"{url}/v1/documents", content=b"<x/>", headers={"Content-Type": "application/xml"}
    )
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    assert "bearer token" in anonymous.json()["detail"]

    with platform.client(PROVINCE) as client:
        token = client.token()
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}
    malformed = httpx.post(f"{url}/v1/documents", content=b"<edXML><unclosed>", headers=auth)
    assert malformed.status_code == 422
    assert malformed.headers["content-type"].startswith("application/problem+json")
    assert "not valid" in malformed.json()["detail"] or "refused" in malformed.json()["detail"]

    xxe = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><edXML>&e;</edXML>'
    refused = httpx.post(f"{url}/v1/documents", content=xxe, headers=auth)
    assert refused.status_code == 422
    assert refused.json()["type"].endswith("unsafe-xml")

    forged = edxml.build_package(
        edxml.EdxmlPackage(
            header=edxml.MessageHeader(
                sender=edxml.Organization(organ_id=DEPARTMENT),
                recipients=[edxml.Organization(organ_id=COMMUNE)],
                code_number="1",
                code_notation="GIA",
                promulgation_place="Hạ Long",
                promulgation_date=__import__("datetime").date.today(),
                document_type=1,
                document_type_name="Công văn",
                subject="Giả danh",
            ),
            attachments=[
                edxml.Attachment(
                    content_id="cid:1", name="a.pdf", content_type="application/pdf", data=pdf.read_bytes()
                )
            ],
        )
    )
    spoofed = httpx.post(f"{url}/v1/documents", content=forged, headers=auth)
    assert spoofed.status_code == 403
    assert DEPARTMENT in spoofed.json()["detail"] and PROVINCE in spoofed.json()["detail"]

    bad_secret = httpx.post(
        f"{url}/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": PROVINCE, "client_secret": "nope"},
    )
    assert bad_secret.status_code == 401

    missing = platform.cli(
        "status", "00000000-0000-0000-0000-000000000000", "--as", DEPARTMENT, "--code", "03", check=False
    )
    assert missing.returncode == 1 and "not found" in missing.stderr
