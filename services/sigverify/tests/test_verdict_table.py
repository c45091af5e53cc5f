"""The verdict table (DESIGN §4), end to end through the service's verification path.

A PKI generated at test time whose certificates point at a CRL served on loopback; every case
is a real edXML package verified by the VerificationEngine (worker processes for hard-fail,
in-process for soft-fail), bindings checked against a fake directory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from sigverify_factories import OTHER_AGENCY, SENDER, FakeBindings, FixedTrust, make_package, pdf_attachment

from lienthong_common.pades import sign_pdf
from lienthong_common.pdfgen import make_pdf
from lienthong_common.pki import DevCrlServer, DevPki, IssuedIdentity, certificate_serial
from lienthong_sigverify.domain import Report, verify_package
from lienthong_sigverify.trust import TrustSnapshot
from lienthong_sigverify.verification import VerificationEngine, VerifierConfig


@pytest.fixture(scope="module")
def crl_server() -> Iterator[DevCrlServer]:
    with DevCrlServer() as server:
        yield server


@pytest.fixture(scope="module")
def ca(crl_server: DevCrlServer, tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return crl_server.attach(DevPki.init(tmp_path_factory.mktemp("ca"), crl_base_url=crl_server.base_url))


@pytest.fixture(scope="module")
def revoking_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevPki]:
    """A CA whose signers are revoked before any verifier has fetched its CRL."""
    with DevCrlServer() as server:
        yield server.attach(DevPki.init(tmp_path_factory.mktemp("revoking"), crl_base_url=server.base_url))


@pytest.fixture(scope="module")
def dead_ca(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """A CA whose CRL URL nobody answers (its server is gone before anything is fetched)."""
    with DevCrlServer() as dead:
        return DevPki.init(tmp_path_factory.mktemp("dead"), crl_base_url=dead.base_url)


@pytest.fixture(autouse=True)
def crl_available(crl_server: DevCrlServer) -> Iterator[None]:
    crl_server.available = True
    yield
    crl_server.available = True


def _engine(roots: tuple[bytes, ...], cache: Path, mode: str, workers: int) -> VerificationEngine:
    return VerificationEngine(
        trust=FixedTrust(TrustSnapshot(1, roots)),
        config=VerifierConfig(
            revocation=mode,  # type: ignore[arg-type]
            revocation_cache_dir=str(cache),
            allow_fetching=True,
            fetch_timeout=2.0,
            revocation_allowed_cidrs=("127.0.0.0/8",),  # the CRL server is on loopback
        ),
        workers=workers,
        cache_seconds=0,  # every case verified afresh
    )


@pytest.fixture(scope="module")
def engines(
    ca: DevPki, revoking_ca: DevPki, dead_ca: DevPki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, VerificationEngine]]:
    roots = (ca.root_cert_pem, revoking_ca.root_cert_pem, dead_ca.root_cert_pem)
    hard = _engine(roots, tmp_path_factory.mktemp("hard-cache"), "hard-fail", workers=2)
    soft = _engine(roots, tmp_path_factory.mktemp("soft-cache"), "soft-fail", workers=0)
    yield {"hard-fail": hard, "soft-fail": soft}
    hard.close()


def _identity(ca: DevPki, **validity: datetime) -> IssuedIdentity:
    return ca.issue_signer(agency_code=SENDER, common_name="Nguyễn Văn A", **validity)  # type: ignore[arg-type]


def _doc() -> bytes:
    return make_pdf("Công văn 15/UBND-VP", ["Kính gửi: Văn phòng Chính phủ"])


def _modified_after_signing(signed: bytes) -> bytes:
    writer = IncrementalPdfFileWriter(BytesIO(signed))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    page["/Contents"] = writer.add_object(generic.StreamObject(stream_data=b"BT (FORGED) Tj ET"))
    writer.update_container(page)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def _tampered(signed: bytes) -> bytes:
    at = signed.index(b"Tj")  # page text, inside the signed byte range
    return signed[:at] + b"TJ" + signed[at + 2 :]


@dataclass
class Cas:
    main: DevPki
    revoking: DevPki
    dead: DevPki


Case = Callable[[Cas, Path], tuple[bytes, FakeBindings]]
now = datetime.now(UTC)


def _bound(identity: IssuedIdentity, code: str = SENDER) -> FakeBindings:
    bindings = FakeBindings()
    bindings.register(identity, code)
    return bindings


def _signed_package(identity: IssuedIdentity, mutate: Callable[[bytes], bytes] = lambda b: b) -> bytes:
    return make_package([pdf_attachment(mutate(sign_pdf(_doc(), identity)))])


def case_valid(cas: Cas, _t: Path) -> tuple[bytes, FakeBindings]:
    who = _identity(cas.main)
    return _signed_package(who), _bound(who)


def case_tampered(cas: Cas, _t: Path) -> tuple[bytes, FakeBindings]:
    who = _identity(cas.main)
    return _signed_package(who, _tampered), _bound(who)


def case_modified(cas: Cas, _t: Path) -> tuple[bytes, FakeBindings]:
    who = _identity(cas.main)
    return _signed_package(who, _modified_after_signing), _bound(who)


def case_revoked(cas: Cas, _t: Path) -> tuple[bytes, FakeBindings]:
    who = _identity(cas.revoking)
    package = _signed_package(who)
    cas.revoking.revoke(certificate_serial(who.cert_pem))
    return package, _bound(who)


def case_expired(cas: Cas, _t: Path) -> tuple[bytes, FakeBindings]:
    who = _identity(cas.main, not_before=now - timedelta(days=400), not_after=now - timedelta(days=30))
    return _signed_package(who), _bound(who)


def case_not_yet_valid(cas: Cas, _t: Path) -> tuple[bytes, FakeBindings]:
    who = _identity(cas.main, not_before=now + timedelta(days=10), not_after=now + timedelta(days=400))
    return _signed_package(who), _bound(who)


def case_untrusted_root(cas: Cas, tmp: Path) -> tuple[bytes, FakeBindings]:
    stranger = DevPki.init(tmp / "stranger", common_name="someone else's root")
    who = stranger.issue_signer(agency_code=SENDER, common_name="Mallory")
    return _signed_package(who), _bound(who)


def case_not_bound(cas: Cas, _t: Path) -> tuple[bytes, FakeBindings]:
    who = _identity(cas.main)
    return _signed_package(who), _bound(who, OTHER_AGENCY)


def case_unsigned(cas: Cas, _t: Path) -> tuple[bytes, FakeBindings]:
    return make_package([pdf_attachment(_doc())]), FakeBindings()


def case_not_a_pdf(cas: Cas, _t: Path) -> tuple[bytes, FakeBindings]:
    return make_package([pdf_attachment(b"PK\x03\x04 this is a zip, not a PDF")]), FakeBindings()


def case_truncated(cas: Cas, _t: Path) -> tuple[bytes, FakeBindings]:
    who = _identity(cas.main)
    signed = sign_pdf(_doc(), who)
    return make_package([pdf_attachment(signed[: len(signed) * 2 // 3])]), _bound(who)


def case_unreachable(cas: Cas, _t: Path) -> tuple[bytes, FakeBindings]:
    who = cas.dead.issue_signer(agency_code=SENDER, common_name="Lê Văn C")
    return _signed_package(who), _bound(who)


CASES: list[tuple[str, Case, dict[str, tuple[str, str]]]] = [
    ("valid", case_valid, {"*": ("TOTAL_PASSED", "")}),
    ("content tampered", case_tampered, {"*": ("TOTAL_FAILED", "HASH_FAILURE")}),
    ("modified after signing", case_modified, {"*": ("TOTAL_FAILED", "HASH_FAILURE")}),
    ("signer revoked", case_revoked, {"*": ("TOTAL_FAILED", "REVOKED")}),
    ("signer expired", case_expired, {"*": ("INDETERMINATE", "OUT_OF_BOUNDS_NO_POE")}),
    ("signer not yet valid", case_not_yet_valid, {"*": ("INDETERMINATE", "NOT_YET_VALID")}),
    ("untrusted root", case_untrusted_root, {"*": ("INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND")}),
    ("not bound to the sender", case_not_bound, {"*": ("TOTAL_FAILED", "SIGNER_NOT_BOUND")}),
    ("unsigned PDF", case_unsigned, {"*": ("INDETERMINATE", "NO_SIGNATURE")}),
    ("not a PDF", case_not_a_pdf, {"*": ("TOTAL_FAILED", "FORMAT_FAILURE")}),
    ("truncated", case_truncated, {"*": ("TOTAL_FAILED", "FORMAT_FAILURE")}),
    (
        "revocation source unreachable",
        case_unreachable,
        {"hard-fail": ("INDETERMINATE", "TRY_LATER"), "soft-fail": ("TOTAL_PASSED", "")},
    ),
]


def _verify(engine: VerificationEngine, package: bytes, bindings: FakeBindings) -> Report:
    snapshot = engine.snapshot()
    engine.prefetch([p for p in _pdfs(package)], snapshot)  # the consumer's batch hook
    return verify_package(package, verifier=engine.bound(snapshot), binding_check=bindings)


def _pdfs(package: bytes) -> list[bytes]:
    from lienthong_sigverify.domain import pdfs_in_package

    return pdfs_in_package(package)


@pytest.mark.parametrize("mode", ["hard-fail", "soft-fail"])
@pytest.mark.parametrize(("name", "case", "expected"), CASES, ids=[c[0] for c in CASES])
def test_verdict(
    name: str,
    case: Case,
    expected: dict[str, tuple[str, str]],
    mode: str,
    ca: DevPki,
    revoking_ca: DevPki,
    dead_ca: DevPki,
    engines: dict[str, VerificationEngine],
    tmp_path: Path,
) -> None:
    package, bindings = case(Cas(ca, revoking_ca, dead_ca), tmp_path)
    report = _verify(engines[mode], package, bindings)
    indication, sub = expected.get(mode, expected.get("*", ("", "")))
    assert (report.indication.value, report.sub_indication) == (indication, sub), report.reason
    assert report.reason  # every verdict says why


def test_not_bound_names_both_agencies(
    ca: DevPki, engines: dict[str, VerificationEngine], tmp_path: Path
) -> None:
    package, bindings = case_not_bound(Cas(ca, ca, ca), tmp_path)
    report = _verify(engines["soft-fail"], package, bindings)
    assert SENDER in report.reason and OTHER_AGENCY in report.reason


def test_passed_report_carries_revocation_evidence(
    ca: DevPki, engines: dict[str, VerificationEngine], tmp_path: Path
) -> None:
    package, bindings = case_valid(Cas(ca, ca, ca), tmp_path)
    report = _verify(engines["hard-fail"], package, bindings)
    [check] = report.signatures
    assert any("issuing.crl" in line for line in check.revocation), check.revocation
    assert "CN=lienthong dev root CA" in check.chain[-1]
