"""Large documents on every path (issue 24), through the real platform.

A 25 MB signed scan sent with the CLI's defaults (envelope signature on) arrives byte-identical;
a large envelope signed by an independent implementation (xmlsec1) is verified by sigverify; a
package one byte over the limit is refused on REST and /vdxp/ saying which attachment fits, and
nothing is stored. On the SQLite flavour only: moving large bytes does not depend on the database,
and the PostgreSQL flavour would double the time for nothing new.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from harness import DEPARTMENT, PROVINCE, RunningPlatform, eventually
from lienthong_common import edxml
from lienthong_common.package_limits import DEFAULT_MAX_PACKAGE_BYTES, max_attachment_bytes
from lienthong_common.pades import sign_pdf
from lienthong_common.pdfgen import make_pdf
from lienthong_common.pki import load_identity
from lienthong_common.settings import Settings
from lienthong_common.testing import xmlsec1_sign
from lienthong_sdk.client import ApiError
from lienthong_sdk.vdxp_client import VdxpClient

MB = 1024 * 1024
FITS = "the largest attachment that fits is 37.5 MiB (39272448 bytes"


@pytest.fixture(autouse=True)
def sqlite_only(platform: RunningPlatform) -> None:
    if platform.flavour != "sqlite":
        pytest.skip("large documents are checked on the SQLite platform only")


def verdict_of(platform: RunningPlatform, doc_id: str) -> dict[str, Any]:
    with platform.client(PROVINCE) as client:

        def verified() -> dict[str, Any] | None:
            view = client.document(doc_id)
            return view if (view.get("validation") or {}).get("indication") else None

        return dict(eventually(verified, timeout=240, what=f"a verdict on {doc_id}"))


def stored_files(platform: RunningPlatform) -> set[Path]:
    """Every blob docstore holds and every spool file the gateway has open."""
    settings = Settings(data_dir=platform.local.data_dir)
    return {p for p in settings.blob_dir().rglob("*") if p.is_file()} | set(
        (platform.local.data_dir / "gateway" / "spool").glob("*")
    )


def test_a_25_mb_signed_scan_sent_with_the_cli_defaults_arrives_byte_identical(
    platform: RunningPlatform, tmp_path: Path
) -> None:
    scan = tmp_path / "ban-quet.pdf"
    scan.write_bytes(make_pdf("Bản quét 25 MB", ["Trang 1"], pad_to_bytes=25 * MB))
    signed = tmp_path / "ban-quet-da-ky.pdf"
    platform.cli("sign", str(scan), "--as", PROVINCE, "-o", str(signed))
    sent = platform.cli_json(
        "send", "--as", PROVINCE, "--to", DEPARTMENT, "--subject", "Bản quét lớn", "--attach", str(signed)
    )
    view = verdict_of(platform, sent["id"])
    assert view["validation"]["indication"] == "TOTAL_PASSED", view["validation"]
    checks = {s["attachment"]: s for s in view["validation"]["signatures"]}
    assert checks["edXML envelope"]["indication"] == "TOTAL_PASSED"  # signed by the CLI's default
    assert checks[signed.name]["indication"] == "TOTAL_PASSED"
    assert view["package"]["size"] > 33 * MB

    out = tmp_path / "nhan"
    fetched = platform.cli_json("fetch", sent["id"], "--as", DEPARTMENT, "-o", str(out))
    received = out / signed.name
    assert str(received) in fetched["files"]
    assert received.read_bytes() == signed.read_bytes()


def test_a_large_envelope_signed_by_xmlsec1_is_verified_by_sigverify(
    platform: RunningPlatform, tmp_path: Path
) -> None:
    identity = load_identity(platform.local.data_dir / "pki" / "agencies", PROVINCE)
    # Base64 of this scan is one text node past libxml2's 10 MB limit.
    scan = sign_pdf(make_pdf("Bản quét ký bằng xmlsec1", ["Trang 1"], pad_to_bytes=9 * MB), identity)
    package = edxml.EdxmlPackage(
        header=edxml.MessageHeader(
            sender=edxml.Organization(organ_id=PROVINCE, organ_name="UBND tỉnh Quảng Ninh"),
            recipients=[edxml.Organization(organ_id=DEPARTMENT)],
            code_number=str(uuid.uuid4().int % 100000),
            code_notation="UBND-VP",
            promulgation_place="Hạ Long",
            promulgation_date=dt.date.today(),
            document_type=1,
            document_type_name="Công văn",
            subject="Phong bì ký bởi phần mềm khác",
        ),
        attachments=[edxml.Attachment("cid:1", "ban-quet.pdf", "application/pdf", scan)],
    )
    unsigned = tmp_path / "unsigned.edxml"
    with unsigned.open("wb") as out:
        edxml.write_package(package, out)
    signed = xmlsec1_sign(unsigned, identity, tmp_path)
    assert signed.stat().st_size > 12 * MB
    with platform.client(PROVINCE) as client:
        sent = client.send_package_file(signed)
    view = verdict_of(platform, sent["id"])
    checks = {s["attachment"]: s for s in view["validation"]["signatures"]}
    envelope = checks["edXML envelope"]
    assert envelope["indication"] == "TOTAL_PASSED", envelope
    assert envelope["signer_agency"] == PROVINCE
    assert view["validation"]["indication"] == "TOTAL_PASSED", view["validation"]


def test_one_byte_over_the_limit_is_refused_in_attachment_terms_and_nothing_is_stored(
    platform: RunningPlatform, tmp_path: Path
) -> None:
    limit = DEFAULT_MAX_PACKAGE_BYTES
    largest = max_attachment_bytes(limit)
    # A real package carrying the largest attachment that fits, then padded (whitespace after
    # the root element) to exactly one byte over the limit.
    package = edxml.build_package(
        edxml.EdxmlPackage(
            header=edxml.MessageHeader(
                sender=edxml.Organization(organ_id=PROVINCE),
                recipients=[edxml.Organization(organ_id=DEPARTMENT)],
                code_number=str(uuid.uuid4().int % 100000),
                code_notation="UBND-VP",
                promulgation_place="Hạ Long",
                promulgation_date=dt.date.today(),
                document_type=1,
                document_type_name="Công văn",
                subject="Quá giới hạn một byte",
            ),
            attachments=[
                edxml.Attachment("cid:1", "lon.pdf", "application/pdf", b"%PDF" + bytes(largest - 4))
            ],
        )
    )
    assert len(package) <= limit
    package += b"\n" * (limit + 1 - len(package))
    before = stored_files(platform)

    with platform.client(PROVINCE) as client, pytest.raises(ApiError) as refused:
        client.send_package(package)
    assert refused.value.status == 413
    problem = refused.value.problem
    assert problem["type"].endswith("package-too-large")
    assert problem["detail"].startswith(f"package is {limit + 1} bytes") and FITS in problem["detail"]
    assert problem["max_attachment_bytes"] == largest

    systems = json.loads((platform.local.data_dir / "vdxp-systems.json").read_text())
    endpoint = f"{platform.local.gateway_url}/vdxp"
    with VdxpClient(endpoint, PROVINCE, systems[PROVINCE]["secret"], timeout=120) as vdxp:
        reply = vdxp.send_edoc(
            package, {"from": PROVINCE, "to": [DEPARTMENT], "servicetype": "eDoc", "messagetype": "edoc"}
        )
    assert (reply["status"], reply["ErrorCode"]) == ("FAIL", "413"), reply
    assert reply["ErrorDesc"].startswith(f"package is {limit + 1} bytes") and FITS in reply["ErrorDesc"]

    # The CLI refuses such a file before uploading anything.
    big = tmp_path / "qua-lon.pdf"
    with big.open("wb") as out:
        out.truncate(largest + 1)
    cli = platform.cli(
        "send",
        "--as",
        PROVINCE,
        "--to",
        DEPARTMENT,
        "--subject",
        "Quá lớn",
        "--attach",
        str(big),
        check=False,
    )
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert "too large to send" in cli.stderr and FITS in cli.stderr and "nothing was sent" in cli.stderr

    assert stored_files(platform) == before
