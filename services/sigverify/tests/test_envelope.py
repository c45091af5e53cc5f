"""The edXML envelope's XML-DSig folded into the document's verdict, by policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from sigverify_factories import OTHER_AGENCY, SENDER, FakeBindings, FixedTrust, make_package, pdf_attachment

from lienthong_common.pki import DevPki, IssuedIdentity
from lienthong_sigverify.domain import PreparedPackage, Report
from lienthong_sigverify.events import SubmittedDocuments
from lienthong_sigverify.trust import TrustSnapshot
from lienthong_sigverify.verification import VerificationEngine, VerifierConfig

signature = pytest.importorskip("lienthong_common.edxml.signature")


def _documents(pki: DevPki, bindings: FakeBindings, tmp_path: Path, policy: str) -> SubmittedDocuments:
    engine = VerificationEngine(
        trust=FixedTrust(TrustSnapshot(1, (pki.root_cert_pem,))),
        config=VerifierConfig("off", str(tmp_path / "rc"), allow_fetching=False, fetch_timeout=1.0),
        workers=0,
    )
    return SubmittedDocuments(
        fetch_package=lambda _id: b"", verifier=engine, binding_check=bindings, envelope_policy=policy
    )


def _verified(documents: SubmittedDocuments, package: bytes, sender: str) -> Report:
    with PreparedPackage(package) as prepared:
        return documents._verify(prepared, sender)


def test_valid_envelope_is_reported_beside_the_pdf(
    pki: DevPki, signer: IssuedIdentity, signed_pdf: bytes, bindings: FakeBindings, tmp_path: Path
) -> None:
    package = signature.sign_envelope(make_package([pdf_attachment(signed_pdf)]), signer)
    report = _verified(_documents(pki, bindings, tmp_path, "if-present"), package, SENDER)
    assert report.passed, report.reason
    assert [c.attachment_name for c in report.signatures] == ["cong-van.pdf", "edXML envelope"]
    assert report.policy == "revocation=off,offline,envelope=if-present"


def test_envelope_changed_after_signing_fails_the_document(
    pki: DevPki, signer: IssuedIdentity, signed_pdf: bytes, bindings: FakeBindings, tmp_path: Path
) -> None:
    package = signature.sign_envelope(make_package([pdf_attachment(signed_pdf)]), signer)
    tampered = package.replace("Báo cáo".encode(), b"Bao cao", 1)
    assert tampered != package
    report = _verified(_documents(pki, bindings, tmp_path, "if-present"), tampered, SENDER)
    assert (report.indication.value, report.sub_indication) == ("TOTAL_FAILED", "HASH_FAILURE"), report.reason
    assert report.reason.startswith("edXML envelope signature")


def test_envelope_signer_must_be_bound_too(
    pki: DevPki, signed_pdf: bytes, bindings: FakeBindings, tmp_path: Path
) -> None:
    stranger = pki.issue_signer(agency_code=OTHER_AGENCY, common_name="Someone else")
    bindings.register(stranger, OTHER_AGENCY)
    package = signature.sign_envelope(make_package([pdf_attachment(signed_pdf)]), stranger)
    report = _verified(_documents(pki, bindings, tmp_path, "if-present"), package, SENDER)
    assert report.sub_indication == "SIGNER_NOT_BOUND"
    assert OTHER_AGENCY in report.reason


@pytest.mark.parametrize(
    ("policy", "expected"), [("if-present", "TOTAL_PASSED"), ("required", "INDETERMINATE")]
)
def test_absent_envelope_by_policy(
    policy: str, expected: str, pki: DevPki, signed_pdf: bytes, bindings: FakeBindings, tmp_path: Path
) -> None:
    report = _verified(
        _documents(pki, bindings, tmp_path, policy), make_package([pdf_attachment(signed_pdf)]), SENDER
    )
    assert report.indication.value == expected, report.reason
