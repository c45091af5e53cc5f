"""Revocation: CRLs from the certificates' own distribution points, served on loopback."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lienthong_common.outbound import OutboundPolicy
from lienthong_common.pades import Indication, PdfVerifier, RevocationCache, sign_pdf
from lienthong_common.pdfgen import make_pdf
from lienthong_common.pki import DevCrlServer, DevPki, IssuedIdentity, certificate_serial

AGENCY = "000.00.00.H49"
# The CRL server is on loopback, which revocation fetches reach only when an operator allows it.
LOOPBACK = OutboundPolicy.from_cidrs(["127.0.0.0/8"])


@pytest.fixture(scope="module")
def server() -> Iterator[DevCrlServer]:
    with DevCrlServer() as crl_server:
        yield crl_server


@pytest.fixture(scope="module")
def pki(server: DevCrlServer, tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return server.attach(DevPki.init(tmp_path_factory.mktemp("pki-crl"), crl_base_url=server.base_url))


@pytest.fixture(autouse=True)
def server_up(server: DevCrlServer) -> Iterator[None]:
    server.available = True
    yield
    server.available = True


@pytest.fixture
def make_verifier(pki: DevPki, tmp_path: Path) -> Callable[..., PdfVerifier]:
    def make(mode: str, **kwargs: object) -> PdfVerifier:
        kwargs.setdefault("revocation_cache", RevocationCache(tmp_path / "revocation-cache"))
        return PdfVerifier(
            [pki.root_cert_pem], outbound=LOOPBACK, revocation=mode, fetch_timeout=2.0, **kwargs
        )  # type: ignore[arg-type]

    return make


def _signed(identity: IssuedIdentity) -> bytes:
    return sign_pdf(make_pdf("Quyết định 7/QĐ-UBND"), identity)


def _fresh_signer(pki: DevPki) -> IssuedIdentity:
    return pki.issue_signer(agency_code=AGENCY, common_name="Trần Thị B")


def test_certificates_point_to_the_crl(pki: DevPki, server: DevCrlServer) -> None:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(_fresh_signer(pki).cert_pem)
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for p in points for n in p.full_name or []] == [f"{server.base_url}/issuing.crl"]


@pytest.mark.parametrize("mode", ["soft-fail", "hard-fail"])
def test_valid_with_crl_passes_and_records_evidence(
    pki: DevPki, make_verifier: Callable[..., PdfVerifier], mode: str
) -> None:
    verdict = make_verifier(mode).verify(_signed(_fresh_signer(pki)))
    assert verdict.indication is Indication.TOTAL_PASSED, verdict.message
    evidence = verdict.signatures[0].revocation
    assert any("issuing.crl" in line and "fetched" in line for line in evidence), evidence
    assert any("root.crl" in line for line in evidence), evidence


@pytest.mark.parametrize("mode", ["soft-fail", "hard-fail"])
def test_revoked_signer_is_total_failed_revoked(
    pki: DevPki, make_verifier: Callable[..., PdfVerifier], mode: str
) -> None:
    signer = _fresh_signer(pki)
    signed = _signed(signer)
    pki.revoke(certificate_serial(signer.cert_pem))
    verdict = make_verifier(mode).verify(signed)
    assert (verdict.indication, verdict.sub_indication) == (Indication.TOTAL_FAILED, "REVOKED"), (
        verdict.message
    )


def test_crl_pem_lists_revoked_serials(pki: DevPki) -> None:
    from cryptography import x509

    signer = _fresh_signer(pki)
    serial = certificate_serial(signer.cert_pem)
    pki.revoke(serial)
    crl = x509.load_pem_x509_crl(pki.crl_pem())
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None


def test_unreachable_under_hard_fail_is_try_later(
    pki: DevPki, server: DevCrlServer, make_verifier: Callable[..., PdfVerifier]
) -> None:
    signed = _signed(_fresh_signer(pki))
    server.available = False
    verdict = make_verifier("hard-fail").verify(signed)
    assert (verdict.indication, verdict.sub_indication) == (Indication.INDETERMINATE, "TRY_LATER"), (
        verdict.message
    )
    assert "unreachable" in verdict.message


def test_unreachable_under_soft_fail_passes_and_says_so(
    pki: DevPki, server: DevCrlServer, make_verifier: Callable[..., PdfVerifier]
) -> None:
    signed = _signed(_fresh_signer(pki))
    server.available = False
    verdict = make_verifier("soft-fail").verify(signed)
    assert verdict.indication is Indication.TOTAL_PASSED, verdict.message
    assert "revocation not confirmed" in verdict.signatures[0].message
    assert any("unreachable" in line for line in verdict.signatures[0].revocation)


def test_unreachable_host_under_hard_fail_is_try_later(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    pki = DevPki.init(tmp_path / "pki", crl_base_url=f"http://127.0.0.1:{dead}/crl")
    signed = _signed(pki.issue_signer(agency_code=AGENCY, common_name="C"))
    verdict = PdfVerifier(
        [pki.root_cert_pem], outbound=LOOPBACK, revocation="hard-fail", fetch_timeout=1.0
    ).verify(signed)
    assert (verdict.indication, verdict.sub_indication) == (Indication.INDETERMINATE, "TRY_LATER")
    soft = PdfVerifier(
        [pki.root_cert_pem], outbound=LOOPBACK, revocation="soft-fail", fetch_timeout=1.0
    ).verify(signed)
    assert soft.indication is Indication.TOTAL_PASSED


def test_offline_from_the_cache_directory(pki: DevPki, server: DevCrlServer, tmp_path: Path) -> None:
    signed = _signed(_fresh_signer(pki))
    cache_dir = tmp_path / "shared-cache"
    online = PdfVerifier(
        [pki.root_cert_pem],
        outbound=LOOPBACK,
        revocation="hard-fail",
        revocation_cache=RevocationCache(cache_dir),
    )
    assert online.verify(signed).passed
    server.available = False
    fetched = len(server.requests)
    # A new process (new verifier, new memory) with fetching disabled works from the directory.
    offline = PdfVerifier(
        [pki.root_cert_pem],
        outbound=LOOPBACK,
        revocation="hard-fail",
        allow_fetching=False,
        revocation_cache=RevocationCache(cache_dir),
    )
    verdict = offline.verify(signed)
    assert verdict.passed, verdict.message
    assert any("cached" in line for line in verdict.signatures[0].revocation)
    assert len(server.requests) == fetched


def test_cached_crl_is_reused_until_next_update(
    pki: DevPki, server: DevCrlServer, make_verifier: Callable[..., PdfVerifier]
) -> None:
    verifier = make_verifier("hard-fail")
    signed = _signed(_fresh_signer(pki))
    assert verifier.verify(signed).passed
    before = len(server.requests)
    assert verifier.verify(signed).passed
    assert len(server.requests) == before


def test_stale_cached_crl_offline_under_hard_fail_is_try_later(pki: DevPki, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from lienthong_common.pades import CachedRevinfo

    signed = _signed(_fresh_signer(pki))
    cache = RevocationCache(tmp_path / "stale")
    past = datetime.now(UTC) - timedelta(days=3)
    assert pki.crl_base_url
    cache.put(
        f"crl|{pki.crl_base_url}/issuing.crl",
        CachedRevinfo(
            der=pki.crl_der(this_update=past), next_update=past + timedelta(days=1), fetched_at=past
        ),
    )
    cache.put(
        f"crl|{pki.crl_base_url}/root.crl",
        CachedRevinfo(der=pki.root_crl_der(), next_update=None, fetched_at=past),
    )
    verifier = PdfVerifier(
        [pki.root_cert_pem],
        outbound=LOOPBACK,
        revocation="hard-fail",
        allow_fetching=False,
        revocation_cache=cache,
    )
    verdict = verifier.verify(signed)
    assert (verdict.indication, verdict.sub_indication) == (Indication.INDETERMINATE, "TRY_LATER"), (
        verdict.message
    )


def test_forged_chain_urls_are_never_fetched(server: DevCrlServer, tmp_path: Path, pki: DevPki) -> None:
    other = DevPki.init(
        tmp_path / "forger", common_name="forger root", crl_base_url=server.base_url + "/forged"
    )
    signed = _signed(other.issue_signer(agency_code=AGENCY, common_name="Mallory"))
    before = list(server.requests)
    verdict = PdfVerifier([pki.root_cert_pem], outbound=LOOPBACK, revocation="hard-fail").verify(signed)
    assert verdict.sub_indication == "NO_CERTIFICATE_CHAIN_FOUND"
    assert not [r for r in server.requests[len(before) :] if "forged" in r]


# ------------------------------------------------------------ if-declared (the default policy)


def test_if_declared_unreachable_crl_is_try_later_even_for_a_revoked_signer(
    pki: DevPki, server: DevCrlServer, make_verifier: Callable[..., PdfVerifier]
) -> None:
    signer = _fresh_signer(pki)
    signed = _signed(signer)
    pki.revoke(certificate_serial(signer.cert_pem))
    server.available = False
    verdict = make_verifier("if-declared").verify(signed)
    assert (verdict.indication, verdict.sub_indication) == (Indication.INDETERMINATE, "TRY_LATER"), (
        verdict.message
    )
    assert "unreachable" in verdict.message
    server.available = True
    revoked = make_verifier("if-declared").verify(signed)
    assert (revoked.indication, revoked.sub_indication) == (Indication.TOTAL_FAILED, "REVOKED")


def test_if_declared_passes_a_certificate_that_declares_no_source(tmp_path: Path) -> None:
    pki = DevPki.init(tmp_path / "no-crl")
    signed = _signed(pki.issue_signer(agency_code=AGENCY, common_name="D"))
    verdict = PdfVerifier([pki.root_cert_pem], outbound=LOOPBACK, revocation="if-declared").verify(signed)
    assert verdict.passed, verdict.message


# ------------------------------------------------------------ a cached CRL that no longer verifies


def test_cached_crl_from_a_rekeyed_ca_is_refetched_not_trusted(
    pki: DevPki, server: DevCrlServer, tmp_path: Path
) -> None:
    """Same URL, a CRL signed by another key (the CA re-keyed): dropped, fetched again."""
    from datetime import UTC, datetime, timedelta

    from lienthong_common.pades import CachedRevinfo

    signer = _fresh_signer(pki)
    signed = _signed(signer)
    pki.revoke(certificate_serial(signer.cert_pem))
    impostor = DevPki.init(tmp_path / "old-key")  # same CA names, other keys; revokes nothing
    cache = RevocationCache(tmp_path / "rekeyed")
    now = datetime.now(UTC)
    assert pki.crl_base_url
    cache.put(
        f"crl|{pki.crl_base_url}/issuing.crl",
        CachedRevinfo(der=impostor.crl_der(), next_update=now + timedelta(days=1), fetched_at=now),
    )
    for mode in ("if-declared", "hard-fail"):
        verdict = PdfVerifier(
            [pki.root_cert_pem], outbound=LOOPBACK, revocation=mode, revocation_cache=cache
        ).verify(signed)  # type: ignore[arg-type]
        assert (verdict.indication, verdict.sub_indication) == (Indication.TOTAL_FAILED, "REVOKED"), (
            mode,
            verdict.message,
        )


def test_cached_crl_that_fails_to_verify_is_not_used_offline(pki: DevPki, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from lienthong_common.pades import CachedRevinfo

    signed = _signed(_fresh_signer(pki))
    impostor = DevPki.init(tmp_path / "old-key")
    cache = RevocationCache(tmp_path / "rekeyed-offline")
    now = datetime.now(UTC)
    assert pki.crl_base_url
    cache.put(
        f"crl|{pki.crl_base_url}/issuing.crl",
        CachedRevinfo(der=impostor.crl_der(), next_update=now + timedelta(days=1), fetched_at=now),
    )
    verifier = PdfVerifier(
        [pki.root_cert_pem],
        outbound=LOOPBACK,
        revocation="if-declared",
        allow_fetching=False,
        revocation_cache=cache,
    )
    verdict = verifier.verify(signed)
    assert (verdict.indication, verdict.sub_indication) == (Indication.INDETERMINATE, "TRY_LATER"), (
        verdict.message
    )
    assert "declares no" not in verdict.message
