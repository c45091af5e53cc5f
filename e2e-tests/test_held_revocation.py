"""A signer whose revocation status cannot be confirmed: the document is held, not passed or
refused, and verified once the CRL answers (docs/adr/0075).

Real stack (Kafka, the six services, SQLite and PostgreSQL), real PAdES signatures from a PKI
whose certificates declare a CRL served on loopback by a real HTTP server the test turns off
and on. Sigverify runs with short retry intervals (settings, not sleeps in the test).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from harness import DEPARTMENT, PROVINCE, RunningPlatform, eventually, one_pdf_package
from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong_common.pades import sign_pdf
from lienthong_common.pdfgen import make_pdf
from lienthong_common.pki import DevCrlServer, DevPki, IssuedIdentity, certificate_serial
from lienthong_sdk.cli_trust import TrustClient
from lienthong_sdk.demo import ADMIN_ID

# Re-verify every second or two instead of 1, 2, 4 ... minutes.
FAST_RETRIES = {
    "LIENTHONG_SIGVERIFY__HELD_RETRY_BASE_SECONDS": "1",
    "LIENTHONG_SIGVERIFY__HELD_RETRY_MAX_SECONDS": "2",
    "LIENTHONG_SIGVERIFY__HELD_POLL_SECONDS": "0.5",
}


def restart_sigverify(platform: RunningPlatform, env: dict[str, str]) -> None:
    """SIGKILL sigverify and start it again with `env` on top of the platform's own."""
    for key in [k for k in platform.local.extra_env if k.startswith("LIENTHONG_SIGVERIFY__HELD")]:
        del platform.local.extra_env[key]
    platform.local.extra_env.pop("LIENTHONG_SIGVERIFY__REVOCATION_DEADLINE_SECONDS", None)
    platform.local.extra_env.update(env)
    platform.local.kill("sigverify")
    platform.restart("sigverify")


@pytest.fixture(scope="module")
def fast_retries(platform: RunningPlatform) -> Iterator[None]:
    restart_sigverify(platform, FAST_RETRIES)
    yield
    restart_sigverify(platform, {})


@dataclass
class CrlPki:
    """A CA whose certificates point at a CRL on `server`, trusted by sigverify."""

    server: DevCrlServer
    pki: DevPki

    def signer(self, platform: RunningPlatform, name: str) -> IssuedIdentity:
        """A signer of PROVINCE, registered to it in the directory."""
        identity = self.pki.issue_signer(agency_code=PROVINCE, common_name=name)
        der = x509.load_pem_x509_certificate(identity.cert_pem).public_bytes(Encoding.DER)
        with platform.local.grpc_channel("directory") as channel:  # an administrator's tooling
            directory_pb2_grpc.DirectoryServiceStub(channel).RegisterCertificate(
                directory_pb2.RegisterCertificateRequest(agency_code=PROVINCE, certificate_der=der),
                timeout=10,
            )
        return identity


def crl_pki(platform: RunningPlatform, folder: Path) -> Iterator[CrlPki]:
    with DevCrlServer() as server:
        server.available = False
        pki = server.attach(
            DevPki.init(
                folder, common_name=f"held e2e root {uuid.uuid4().hex[:8]}", crl_base_url=server.base_url
            )
        )
        # Trusted as an administrator does it (`lienthong trust add`): through the gateway.
        with (
            platform.client(ADMIN_ID) as admin,
            TrustClient(admin.base_url, admin.client_id, admin.client_secret) as trust,
        ):
            trust.add_anchor(pki.root_cert_pem.decode(), note="held documents test")
        yield CrlPki(server, pki)


@pytest.fixture
def crl(platform: RunningPlatform, tmp_path: Path) -> Iterator[CrlPki]:
    yield from crl_pki(platform, tmp_path / "pki-crl")


def package(identity: IssuedIdentity, subject: str) -> bytes:
    pdf = sign_pdf(make_pdf(subject, ["Kính gửi các cơ quan, đơn vị."]), identity)
    return one_pdf_package(
        sender=PROVINCE,
        recipients=[DEPARTMENT],
        pdf=pdf,
        subject=subject,
        notation=f"HELD-{uuid.uuid4().hex[:6]}",
        number=75,
        sender_name="UBND tỉnh Quảng Ninh",
    )


def document(platform: RunningPlatform, document_id: str) -> dict[str, Any]:
    with platform.client(PROVINCE) as client:
        return client.document(document_id)


def held(platform: RunningPlatform, document_id: str, *, attempts: int = 1) -> dict[str, Any] | None:
    doc = document(platform, document_id)
    hold = doc.get("hold")
    return doc if hold and hold["attempts"] >= attempts else None


def inbox_count(platform: RunningPlatform, document_id: str) -> int:
    with platform.client(DEPARTMENT) as client:
        return sum(item["id"] == document_id for item in client.inbox_all(limit=200))


def test_unconfirmed_revocation_holds_then_verifies_once_and_refuses_the_revoked(
    platform: RunningPlatform, fast_retries: None, crl: CrlPki
) -> None:
    valid = crl.signer(platform, "Nguyễn Văn Hợp Lệ")
    revoked = crl.signer(platform, "Trần Văn Thu Hồi")
    crl.pki.revoke(certificate_serial(revoked.cert_pem))  # on the CRL nobody can fetch yet

    with platform.client(PROVINCE) as client:
        valid_id = client.send_package(package(valid, "Giấy mời họp (chờ CRL)"))["id"]
        revoked_id = client.send_package(package(revoked, "Công văn của người bị thu hồi"))["id"]

    # CRL server down: both held, neither delivered nor refused, and the sender is told why.
    for document_id in (valid_id, revoked_id):
        doc = eventually(lambda d=document_id: held(platform, d), timeout=120, what=f"{document_id} held")
        assert doc["state"] == "verifying"
        assert doc["validation"] is None
        assert doc["hold"]["waiting_for"] == "revocation data"
        assert crl.server.base_url in doc["hold"]["reason"]
    tracked = platform.cli("track", valid_id, "--as", PROVINCE).stdout
    assert "held      waiting for revocation data" in tracked

    # A restart keeps the holds, and re-verifying goes on after it (attempts keep counting).
    before = document(platform, valid_id)["hold"]["attempts"]
    platform.local.kill("sigverify")
    platform.restart("sigverify")
    for document_id in (valid_id, revoked_id):
        doc = eventually(
            lambda d=document_id: held(platform, d, attempts=before + 1),
            timeout=120,
            what=f"{document_id} re-verified after the restart, still held",
        )
        assert doc["state"] == "verifying"
    assert inbox_count(platform, valid_id) == 0

    # CRL server up: the valid signer's document is delivered once, the revoked one refused.
    crl.server.available = True
    eventually(lambda: inbox_count(platform, valid_id) == 1, timeout=180, what="the held document delivered")
    refused = eventually(
        lambda: (d := document(platform, revoked_id))["state"] == "refused" and d,
        timeout=120,
        what="the revoked signer's document refused",
    )
    assert refused["validation"]["sub_indication"] == "REVOKED"
    assert "hold" not in refused

    delivered = document(platform, valid_id)
    assert delivered["validation"]["indication"] == "TOTAL_PASSED"
    assert "hold" not in delivered
    assert [t["recipient"] for t in delivered["timeline"] if t["state"] == "delivered"] == [DEPARTMENT]
    assert inbox_count(platform, valid_id) == 1


def test_revocation_unconfirmed_past_the_deadline_is_refused_with_the_reason(
    platform: RunningPlatform, fast_retries: None, crl: CrlPki
) -> None:
    signer = crl.signer(platform, "Lê Thị Chờ Lâu")
    with platform.client(PROVINCE) as client:
        document_id = client.send_package(package(signer, "Báo cáo (CRL không bao giờ trả lời)"))["id"]
    eventually(lambda: held(platform, document_id), timeout=120, what="the document held")

    # An operator's deadline of 2 s, long past once sigverify is back: the next attempt refuses.
    restart_sigverify(platform, {**FAST_RETRIES, "LIENTHONG_SIGVERIFY__REVOCATION_DEADLINE_SECONDS": "2"})
    try:
        refused = eventually(
            lambda: (d := document(platform, document_id))["state"] == "refused" and d,
            timeout=120,
            what="the document refused at the deadline",
        )
    finally:
        restart_sigverify(platform, FAST_RETRIES)
    reason = refused["validation"]["reason"]
    assert reason.startswith("revocation status could not be confirmed for 2 s: ")
    assert crl.server.base_url in reason
    assert refused["validation"]["sub_indication"] == "TRY_LATER"
    assert inbox_count(platform, document_id) == 0
