"""Revocation through the whole platform, from a real CRL served over HTTP on loopback.

The CA's certificates point at a CRL on 127.0.0.1, which revocation fetches reach only when an
operator allows it: the harness allows 127.0.0.0/8 for sigverify as `lienthong run` does
(LIENTHONG_SIGVERIFY__REVOCATION_ALLOWED_CIDRS), so a revoked signer's document is refused
TOTAL_FAILED/REVOKED. `lienthong verify` refuses the loopback source until the user names the
network (`--allow-revocation-cidr`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from harness import DEPARTMENT, PROVINCE, RunningPlatform, eventually
from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong_common.pades import sign_pdf
from lienthong_common.pdfgen import make_pdf
from lienthong_common.pki import DevCrlServer, DevPki, certificate_serial


@pytest.fixture
def crl_ca(platform: RunningPlatform, tmp_path: Path) -> Iterator[tuple[DevPki, DevCrlServer]]:
    """A CA publishing its CRL on loopback, trusted by the platform for the test's duration."""
    with DevCrlServer() as server:
        pki = server.attach(
            DevPki.init(tmp_path / "crl-ca", common_name="e2e CA with a CRL", crl_base_url=server.base_url)
        )
        added = platform.cli_json("trust", "add", str(pki.root_path), "--note", "e2e revocation")
        try:
            yield pki, server
        finally:
            platform.cli_json("trust", "remove", added["anchor"]["fingerprint"])


def test_a_revoked_signer_is_refused_from_a_crl_served_on_loopback(
    platform: RunningPlatform, crl_ca: tuple[DevPki, DevCrlServer], tmp_path: Path
) -> None:
    pki, server = crl_ca
    signer = pki.issue_signer(agency_code=PROVINCE, common_name="Người ký bị thu hồi")
    with platform.local.grpc_channel("directory") as channel:  # an administrator's tooling
        directory_pb2_grpc.DirectoryServiceStub(channel).RegisterCertificate(
            directory_pb2.RegisterCertificateRequest(
                agency_code=PROVINCE,
                certificate_der=x509.load_pem_x509_certificate(signer.cert_pem).public_bytes(Encoding.DER),
            ),
            timeout=10,
        )
    signed = tmp_path / "revoked-signer.pdf"
    signed.write_bytes(sign_pdf(make_pdf("Quyết định bị thu hồi chữ ký"), signer))
    pki.revoke(certificate_serial(signer.cert_pem))

    # The agency CLI: the loopback CRL is refused unless the user names the network.
    refused = platform.cli(
        "verify", str(signed), "--trust-root", str(pki.root_path), "--revocation", "hard-fail", check=False
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "refused by the outbound-address checks" in refused.stdout, refused.stdout
    allowed = platform.cli(
        "verify",
        str(signed),
        "--trust-root",
        str(pki.root_path),
        "--allow-revocation-cidr",
        "127.0.0.0/8",
        check=False,
    )
    assert allowed.returncode == 1 and allowed.stdout.startswith("TOTAL_FAILED/REVOKED"), allowed.stdout

    # The platform: sigverify fetches the CRL (allow-listed) and refuses the document.
    fetched_before = len(server.requests)
    sent = platform.cli_json(
        "send",
        "--as",
        PROVINCE,
        "--to",
        DEPARTMENT,
        "--subject",
        "Chữ ký đã bị thu hồi",
        "--attach",
        str(signed),
    )

    def verdict() -> dict | None:
        tracked = platform.cli_json("track", sent["id"], "--as", PROVINCE)
        return tracked if (tracked.get("validation") or {}).get("indication") else None

    tracked = eventually(verdict, what=f"a verdict on {sent['id']}")
    assert tracked["validation"]["indication"] == "TOTAL_FAILED", tracked["validation"]
    assert tracked["validation"]["sub_indication"] == "REVOKED", tracked["validation"]
    assert len(server.requests) > fetched_before, "sigverify fetched the CRL over HTTP"
    inbox = platform.cli_json("inbox", "--as", DEPARTMENT, "--all")["items"]
    assert sent["id"] not in [item["id"] for item in inbox]
