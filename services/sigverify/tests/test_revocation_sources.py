"""CRL URLs go through the outbound-address checks in the service's verification path.

A real CA whose certificates point at a CRL served over HTTP on loopback; PDFs verified by the
VerificationEngine in a worker process, as sigverify runs them. Without the operator's
allow-list the loopback source is refused (an unusable source, named in the verdict); with
127.0.0.0/8 allowed the CRL is fetched and a revoked signer is found revoked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sigverify_factories import FixedTrust

from lienthong_common.pades import Indication, sign_pdf
from lienthong_common.pdfgen import make_pdf
from lienthong_common.pki import DevCrlServer, DevPki, certificate_serial
from lienthong_common.settings import Settings
from lienthong_sigverify.trust import TrustSnapshot
from lienthong_sigverify.verification import VerificationEngine, VerifierConfig

AGENCY = "000.00.00.H49"


@pytest.fixture(scope="module")
def crl_server() -> Iterator[DevCrlServer]:
    with DevCrlServer() as server:
        yield server


@pytest.fixture(scope="module")
def ca(crl_server: DevCrlServer, tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return crl_server.attach(DevPki.init(tmp_path_factory.mktemp("ca"), crl_base_url=crl_server.base_url))


def _engine(ca: DevPki, cache: Path, allowed: tuple[str, ...]) -> VerificationEngine:
    return VerificationEngine(
        trust=FixedTrust(TrustSnapshot(1, (ca.root_cert_pem,))),
        config=VerifierConfig(
            revocation="if-declared",
            revocation_cache_dir=str(cache),
            allow_fetching=True,
            fetch_timeout=5.0,
            revocation_allowed_cidrs=allowed,
        ),
        workers=1,  # a real worker process, built as sigverify builds it
        cache_seconds=0,
    )


def test_a_crl_on_loopback_is_refused_without_the_allow_list_and_fetched_with_it(
    ca: DevPki, crl_server: DevCrlServer, tmp_path: Path
) -> None:
    signer = ca.issue_signer(agency_code=AGENCY, common_name="Nguyễn Văn A")
    pdf = sign_pdf(make_pdf("Quyết định 80/QĐ-UBND", ["x"]), signer)
    ca.revoke(certificate_serial(signer.cert_pem))
    fetched_before = len(crl_server.requests)

    refusing = _engine(ca, tmp_path / "refusing", allowed=())
    try:
        verdict = refusing.verify(pdf)
    finally:
        refusing.close()
    assert (verdict.indication, verdict.sub_indication) == (Indication.INDETERMINATE, "TRY_LATER"), (
        verdict.message
    )
    assert f"{crl_server.base_url}/issuing.crl" in verdict.message
    assert "refused by the outbound-address checks" in verdict.message
    assert "loopback" in verdict.message
    assert len(crl_server.requests) == fetched_before, "a refused source is never connected to"

    allowing = _engine(ca, tmp_path / "allowing", allowed=("127.0.0.0/8",))
    try:
        revoked = allowing.verify(pdf)
    finally:
        allowing.close()
    assert (revoked.indication, revoked.sub_indication) == (Indication.TOTAL_FAILED, "REVOKED"), (
        revoked.message
    )
    assert len(crl_server.requests) > fetched_before


def test_the_allow_list_setting_reaches_the_verifier_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIENTHONG_SIGVERIFY__REVOCATION_ALLOWED_CIDRS", '["10.30.0.0/16", "127.0.0.0/8"]')
    config = VerifierConfig.from_settings(Settings())
    assert config.revocation_allowed_cidrs == ("10.30.0.0/16", "127.0.0.0/8")
    monkeypatch.delenv("LIENTHONG_SIGVERIFY__REVOCATION_ALLOWED_CIDRS")
    assert VerifierConfig.from_settings(Settings()).revocation_allowed_cidrs == ()  # public only


def test_a_malformed_allow_list_is_refused_at_start_naming_the_variable() -> None:
    with pytest.raises(ValueError, match=r"LIENTHONG_SIGVERIFY__REVOCATION_ALLOWED_CIDRS: '10\.0\.0\.0/33'"):
        Settings.model_validate({"sigverify": {"revocation_allowed_cidrs": ["10.0.0.0/33"]}})
