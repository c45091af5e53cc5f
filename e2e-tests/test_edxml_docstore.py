"""edXML packages through the real gateway and docstore: size limit, envelope signatures kept
intact by storage, and refusals that name the element."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from harness import DEPARTMENT, PROVINCE, RunningPlatform, eventually
from lienthong_common.edxml.signature import Indication, verify_envelope
from lienthong_common.package_limits import describe_limit
from lienthong_common.settings import GatewaySettings
from lienthong_sdk.builder import PackageBuilder

PRIORITY = "edXML/edXMLEnvelope/edXMLHeader/MessageHeader/OtherInfo/Priority"


def bearer(platform: RunningPlatform, code: str) -> str:
    with platform.client(code) as client:
        return f"Bearer {client.token()}"


def post_declaring(url: str, token: str, declared: int) -> tuple[int, dict[str, str], bytes]:
    """POST /v1/documents announcing `declared` bytes but sending a few: the gateway must refuse
    on the header alone, without waiting for (or buffering) the body."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.sendall(
            (
                f"POST /v1/documents HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: {token}\r\n"
                f"Content-Type: application/xml\r\nContent-Length: {declared}\r\n\r\n<edXML"
            ).encode()
        )
        reply = b""
        while b"\r\n\r\n" not in reply or len(reply.split(b"\r\n\r\n", 1)[1]) < _length(reply):
            data = conn.recv(65536)
            if not data:
                break
            reply += data
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


def _length(reply: bytes) -> int:
    for line in reply.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def test_oversized_and_invalid_packages_are_refused_specifically(platform: RunningPlatform) -> None:
    url = platform.local.gateway_url
    token = bearer(platform, PROVINCE)
    limit = GatewaySettings().max_request_bytes

    status, headers, body = post_declaring(url, token, limit + 1)
    assert status == 413
    assert headers["content-type"].startswith("application/problem+json")
    problem = json.loads(body)
    assert problem["status"] == 413 and problem["type"].endswith("package-too-large")
    said = f"package is {limit + 1} bytes; the limit is {limit} bytes"
    assert problem["detail"] == f"{said}: {describe_limit(limit)}"

    valid = (
        PackageBuilder(sender=PROVINCE)
        .to(DEPARTMENT)
        .subject("Độ khẩn sai")
        .code("9001", "UBND-VP")
        .promulgated("Quảng Ninh")
        .build()
    )
    invalid = valid.replace(b"<edXML:Priority>0<", b"<edXML:Priority>9<")
    assert invalid != valid
    refused = httpx.post(
        f"{url}/v1/documents",
        content=invalid,
        headers={"Authorization": token, "Content-Type": "application/xml"},
        timeout=60,
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["path"] == PRIORITY
    assert refused.json()["detail"].endswith(f"{PRIORITY}: 9 is outside 0..4")


def test_a_signed_envelope_is_stored_as_sent_and_still_verifies(
    platform: RunningPlatform, signed_pdf, tmp_path: Path
) -> None:
    pdf: Path = signed_pdf(PROVINCE, "Chữ ký gói tin")
    sent = platform.cli_json(
        "send", "--as", PROVINCE, "--to", DEPARTMENT, "--subject", "Chữ ký gói tin", "--attach", str(pdf)
    )
    doc_id = sent["id"]
    eventually(
        lambda: doc_id in [i["id"] for i in platform.cli_json("inbox", "--as", DEPARTMENT, "--all")["items"]],
        what="delivery to the department",
    )

    platform.cli("fetch", doc_id, "--as", DEPARTMENT, "-o", str(tmp_path / "out"))
    package = (tmp_path / "out" / f"{doc_id}.edxml").read_bytes()
    root = (platform.local.data_dir / "pki" / "root.pem").read_bytes()
    verdict = verify_envelope(package, trust_roots=[root])
    assert verdict.indication == Indication.TOTAL_PASSED, verdict.message
    assert verdict.agency_code == PROVINCE
    assert (tmp_path / "out" / pdf.name).read_bytes() == pdf.read_bytes()
