"""verify_package: real PAdES signatures from the dev PKI inside real edXML packages."""

from __future__ import annotations

import io
import zipfile

from sigverify_factories import OTHER_AGENCY, SENDER, FakeBindings, make_package, pdf_attachment

from lienthong_common.edxml import Attachment
from lienthong_common.pades import Indication, PdfVerifier, sign_pdf
from lienthong_common.pdfgen import make_pdf
from lienthong_common.pki import DevPki, IssuedIdentity
from lienthong_sigverify.domain import verify_package


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_signed_pdf_from_bound_signer_passes(
    signed_pdf: bytes, verifier: PdfVerifier, bindings: FakeBindings, signer: IssuedIdentity
) -> None:
    report = verify_package(
        make_package([pdf_attachment(signed_pdf)]), verifier=verifier, binding_check=bindings
    )

    assert report.indication is Indication.TOTAL_PASSED, report.reason
    assert report.sub_indication == ""
    assert report.reason == "1 signature(s) valid in 1 PDF(s)"
    [check] = report.signatures
    assert check.attachment_name == "cong-van.pdf"
    assert check.field_name == "Signature1"
    assert check.signer_agency_code == SENDER
    assert check.signer_subject.startswith("CN=Nguyễn Văn A")
    assert check.signing_time is not None
    assert len(check.chain) == 3
    assert bindings.calls == [(SENDER, check.signer_fingerprint)]


def test_signer_and_seal_both_checked(
    signed_pdf: bytes, seal: IssuedIdentity, verifier: PdfVerifier, bindings: FakeBindings
) -> None:
    sealed = sign_pdf(signed_pdf, seal, field_name="Seal")
    report = verify_package(make_package([pdf_attachment(sealed)]), verifier=verifier, binding_check=bindings)
    assert report.indication is Indication.TOTAL_PASSED, report.reason
    assert [c.field_name for c in report.signatures] == ["Signature1", "Seal"]
    assert len(bindings.calls) == 2


def test_signer_registered_to_another_agency_fails_naming_both(
    signed_pdf: bytes, verifier: PdfVerifier, signer: IssuedIdentity
) -> None:
    bindings = FakeBindings()
    bindings.register(signer, OTHER_AGENCY)

    report = verify_package(
        make_package([pdf_attachment(signed_pdf)]), verifier=verifier, binding_check=bindings
    )

    assert report.indication is Indication.TOTAL_FAILED
    assert report.sub_indication == "SIGNER_NOT_BOUND"
    assert "signer 'CN=Nguyễn Văn A" in report.reason
    assert f"is not registered to sending agency {SENDER} (registered to: {OTHER_AGENCY})" in (report.reason)
    assert report.signatures[0].indication is Indication.TOTAL_FAILED


def test_unregistered_signer_fails_registered_to_no_agency(signed_pdf: bytes, verifier: PdfVerifier) -> None:
    report = verify_package(
        make_package([pdf_attachment(signed_pdf)]), verifier=verifier, binding_check=FakeBindings()
    )
    assert report.indication is Indication.TOTAL_FAILED
    assert report.reason.endswith(f"is not registered to sending agency {SENDER} (registered to no agency)")


def test_binding_not_checked_when_not_required(signed_pdf: bytes, verifier: PdfVerifier) -> None:
    report = verify_package(make_package([pdf_attachment(signed_pdf)]), verifier=verifier, binding_check=None)
    assert report.indication is Indication.TOTAL_PASSED


def test_tampered_pdf_fails_hash_failure(
    signed_pdf: bytes, verifier: PdfVerifier, bindings: FakeBindings
) -> None:
    assert b"Van phong" in signed_pdf
    tampered = signed_pdf.replace(b"Van phong", b"Van phonG", 1)

    report = verify_package(
        make_package([pdf_attachment(tampered)]), verifier=verifier, binding_check=bindings
    )

    assert report.indication is Indication.TOTAL_FAILED
    assert report.sub_indication == "HASH_FAILURE"
    assert report.reason.startswith("attachment 'cong-van.pdf', signature 'Signature1': ")


def test_untrusted_root_is_indeterminate(
    untrusted_pki: DevPki, verifier: PdfVerifier, bindings: FakeBindings
) -> None:
    stranger = untrusted_pki.issue_signer(agency_code=SENDER, common_name="Kẻ lạ")
    bindings.register(stranger, SENDER)
    pdf = sign_pdf(make_pdf("Công văn", ["nội dung"]), stranger)

    report = verify_package(make_package([pdf_attachment(pdf)]), verifier=verifier, binding_check=bindings)

    assert report.indication is Indication.INDETERMINATE
    assert report.sub_indication == "NO_CERTIFICATE_CHAIN_FOUND"


def test_unbound_signer_with_untrusted_root_fails(untrusted_pki: DevPki, verifier: PdfVerifier) -> None:
    stranger = untrusted_pki.issue_signer(agency_code=SENDER, common_name="Kẻ lạ")
    pdf = sign_pdf(make_pdf("Công văn", ["nội dung"]), stranger)
    report = verify_package(
        make_package([pdf_attachment(pdf)]), verifier=verifier, binding_check=FakeBindings()
    )
    assert report.indication is Indication.TOTAL_FAILED
    assert report.sub_indication == "SIGNER_NOT_BOUND"


def test_unsigned_pdf_is_indeterminate(verifier: PdfVerifier, bindings: FakeBindings) -> None:
    report = verify_package(
        make_package([pdf_attachment(make_pdf("Công văn", ["chưa ký"]))]),
        verifier=verifier,
        binding_check=bindings,
    )
    assert report.indication is Indication.INDETERMINATE
    assert report.sub_indication == "NO_SIGNATURE"
    assert "no PDF signature" in report.reason
    assert "'cong-van.pdf' is unsigned" in report.reason
    assert report.signatures == ()


def test_package_without_pdf_is_indeterminate(verifier: PdfVerifier, bindings: FakeBindings) -> None:
    report = verify_package(
        make_package([Attachment("cid:1", "ghi-chu.txt", "text/plain", b"hello")]),
        verifier=verifier,
        binding_check=bindings,
    )
    assert report.indication is Indication.INDETERMINATE
    assert report.reason == (
        "the document carries no PDF signature: it has no PDF attachment; at least one signed PDF is required"
    )


def test_unsigned_appendix_beside_a_signed_pdf_is_noted(
    signed_pdf: bytes, verifier: PdfVerifier, bindings: FakeBindings
) -> None:
    report = verify_package(
        make_package(
            [
                pdf_attachment(signed_pdf),
                pdf_attachment(make_pdf("Phụ lục"), name="phu-luc.pdf", cid="cid:2"),
            ]
        ),
        verifier=verifier,
        binding_check=bindings,
    )
    assert report.indication is Indication.TOTAL_PASSED
    assert report.reason == "1 signature(s) valid in 1 PDF(s); unsigned: 'phu-luc.pdf'"


def test_zipped_signed_pdf_passes(signed_pdf: bytes, verifier: PdfVerifier, bindings: FakeBindings) -> None:
    archive = _zip({"van-ban/cong-van.pdf": signed_pdf, "readme.txt": b"not a pdf"})
    report = verify_package(
        make_package([Attachment("cid:1", "cong-van.zip", "application/zip", archive)]),
        verifier=verifier,
        binding_check=bindings,
    )
    assert report.indication is Indication.TOTAL_PASSED, report.reason
    assert [c.attachment_name for c in report.signatures] == ["cong-van.zip/van-ban/cong-van.pdf"]


def test_zip_bomb_is_refused(verifier: PdfVerifier, bindings: FakeBindings) -> None:
    archive = _zip({"bomb.pdf": b"\0" * (4 * 1024 * 1024)})
    assert len(archive) < 64 * 1024
    report = verify_package(
        make_package([Attachment("cid:1", "bomb.zip", "application/zip", archive)]),
        verifier=verifier,
        binding_check=bindings,
        max_unzipped_bytes=1024 * 1024,
    )
    assert report.indication is Indication.TOTAL_FAILED
    assert report.sub_indication == "FORMAT_FAILURE"
    assert "possible zip bomb" in report.reason


def test_zip_lying_about_its_size_is_refused(verifier: PdfVerifier, bindings: FakeBindings) -> None:
    archive = bytearray(_zip({"bomb.pdf": b"\0" * (2 * 1024 * 1024)}))
    # Forge the declared uncompressed size (local header and central directory) to 10 bytes.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = archive.find(signature) + offset
        archive[at : at + 4] = (10).to_bytes(4, "little")
    report = verify_package(
        make_package([Attachment("cid:1", "bomb.zip", "application/zip", bytes(archive))]),
        verifier=verifier,
        binding_check=bindings,
        max_unzipped_bytes=1024 * 1024,
    )
    assert report.indication is Indication.TOTAL_FAILED
    assert report.sub_indication == "FORMAT_FAILURE"


def test_broken_zip_fails_format(verifier: PdfVerifier, bindings: FakeBindings) -> None:
    report = verify_package(
        make_package([Attachment("cid:1", "x.zip", "application/zip", b"PK not really")]),
        verifier=verifier,
        binding_check=bindings,
    )
    assert report.indication is Indication.TOTAL_FAILED
    assert report.sub_indication == "FORMAT_FAILURE"
    assert "not a readable zip archive" in report.reason


def test_unreadable_pdf_fails_format(verifier: PdfVerifier, bindings: FakeBindings) -> None:
    report = verify_package(
        make_package([pdf_attachment(b"%PDF-1.7 garbage")]),
        verifier=verifier,
        binding_check=bindings,
    )
    assert report.indication is Indication.TOTAL_FAILED
    assert report.sub_indication == "FORMAT_FAILURE"


def test_invalid_edxml_fails_format(verifier: PdfVerifier, bindings: FakeBindings) -> None:
    report = verify_package(b"<not-edxml/>", verifier=verifier, binding_check=bindings)
    assert report.indication is Indication.TOTAL_FAILED
    assert report.sub_indication == "FORMAT_FAILURE"
    assert report.reason.startswith("the package is not valid edXML")
