"""PAdES signing and validation with real signatures from the dev PKI (no mocks)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfStreamError
from pyhanko.pdf_utils.reader import PdfFileReader

from lienthong_common.pades import Indication, PdfVerifier, sign_pdf, verify_pdf
from lienthong_common.pdfgen import make_pdf
from lienthong_common.pki import DevPki, IssuedIdentity

AGENCY = "000.00.00.H49"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return DevPki.init(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def signer(pki: DevPki) -> IssuedIdentity:
    return pki.issue_signer(agency_code=AGENCY, common_name="Nguyễn Văn A")


@pytest.fixture(scope="module")
def seal(pki: DevPki) -> IssuedIdentity:
    return pki.issue_signer(agency_code=AGENCY, common_name="UBND tỉnh Quảng Ninh", purpose="seal")


@pytest.fixture(scope="module")
def document() -> bytes:
    return make_pdf("Công văn số 7816/VPCP-TTĐT", ["Kính gửi: UBND tỉnh Quảng Ninh", "Body line"])


@pytest.fixture(scope="module")
def signed(document: bytes, signer: IssuedIdentity) -> bytes:
    return sign_pdf(document, signer, reason="Phê duyệt", location="Hạ Long")


@pytest.fixture(scope="module")
def verifier(pki: DevPki) -> PdfVerifier:
    return PdfVerifier([pki.root_cert_pem])


# ----------------------------------------------------------------------------- passing


@pytest.mark.parametrize("revocation", ["off", "soft-fail"])
def test_sign_and_verify_passes(signed: bytes, pki: DevPki, revocation: str) -> None:
    verdict = verify_pdf(signed, trust_roots=[pki.root_cert_pem], revocation=revocation)  # type: ignore[arg-type]
    assert verdict.indication is Indication.TOTAL_PASSED, verdict.message
    assert verdict.sub_indication is None
    [sig] = verdict.signatures
    assert sig.field_name == "Signature1"
    assert sig.indication is Indication.TOTAL_PASSED
    assert sig.agency_code == AGENCY
    assert "CN=Nguyễn Văn A" in sig.signer_subject
    assert len(sig.chain) == 3
    assert sig.chain[0] == sig.signer_subject
    assert "lienthong dev issuing CA" in sig.chain[1]
    assert "lienthong dev root CA" in sig.chain[2]
    assert sig.signing_time is not None
    assert abs(sig.signing_time - datetime.now(UTC)) < timedelta(minutes=10)
    assert sig.modified_after_signing is False
    assert sig.signer_certificate_der.startswith(b"\x30")


def test_signature_is_pades_baseline(signed: bytes) -> None:
    reader = PdfFileReader(BytesIO(signed))
    [sig] = reader.embedded_regular_signatures
    assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    assert sig.sig_object["/Reason"] == "Phê duyệt"
    signed_attrs = {a["type"].native for a in sig.signer_info["signed_attrs"]}
    assert "signing_certificate_v2" in signed_attrs  # CAdES ESS binding of the signer's cert
    assert reader.xrefs.total_revisions == 2  # incremental: original revision + signature


def test_signed_file_extends_the_original(document: bytes, signed: bytes) -> None:
    assert signed.startswith(document)


def test_signer_then_seal_both_pass(signed: bytes, seal: IssuedIdentity, verifier: PdfVerifier) -> None:
    sealed = sign_pdf(signed, seal, field_name="Seal")
    verdict = verifier.verify(sealed)
    assert verdict.indication is Indication.TOTAL_PASSED, verdict.message
    assert [s.field_name for s in verdict.signatures] == ["Signature1", "Seal"]
    assert all(s.indication is Indication.TOTAL_PASSED for s in verdict.signatures)
    assert [s.modified_after_signing for s in verdict.signatures] == [False, False]
    assert "UBND" in verdict.signatures[1].signer_subject


def test_signing_an_already_signed_field_is_refused(signed: bytes, seal: IssuedIdentity) -> None:
    with pytest.raises(ValueError, match="already signed"):
        sign_pdf(signed, seal, field_name="Signature1")


def test_signing_garbage_is_a_value_error(signer: IssuedIdentity) -> None:
    with pytest.raises(ValueError):
        sign_pdf(b"not a pdf", signer)


def test_large_document(pki: DevPki, signer: IssuedIdentity, verifier: PdfVerifier) -> None:
    pdf = make_pdf("Báo cáo", [f"dòng {i}" for i in range(100)], pages=3, pad_to_bytes=100_000)
    assert len(pdf) == 100_000
    verdict = verifier.verify(sign_pdf(pdf, signer))
    assert verdict.indication is Indication.TOTAL_PASSED, verdict.message


# ----------------------------------------------------------------------------- failing


def test_flipped_byte_in_signed_range_is_hash_failure(signed: bytes, verifier: PdfVerifier) -> None:
    at = signed.index(b"(Body line)")
    tampered = signed[:at] + b"(Body lime)" + signed[at + len(b"(Body line)") :]
    verdict = verifier.verify(tampered)
    assert verdict.indication is Indication.TOTAL_FAILED
    assert verdict.sub_indication == "HASH_FAILURE"
    assert verdict.signatures[0].sub_indication == "HASH_FAILURE"


def test_corrupted_signature_value_is_sig_crypto_failure(signed: bytes, verifier: PdfVerifier) -> None:
    reader = PdfFileReader(BytesIO(signed))
    [sig] = reader.embedded_regular_signatures
    cms_der = sig.pkcs7_content
    # the ECDSA signature value is the last DER element of the SignerInfo: flip its last byte
    value = bytes(sig.signer_info["signature"])
    assert cms_der.count(value) == 1
    broken_value = value[:-1] + bytes([value[-1] ^ 0x01])
    tampered = signed.replace(value.hex().encode(), broken_value.hex().encode())
    if tampered == signed:  # pyHanko writes lower-case hex; fall back to upper-case
        tampered = signed.replace(value.hex().upper().encode(), broken_value.hex().upper().encode())
    assert tampered != signed
    verdict = verifier.verify(tampered)
    assert verdict.indication is Indication.TOTAL_FAILED
    assert verdict.sub_indication == "SIG_CRYPTO_FAILURE"


def test_page_content_changed_by_incremental_update_fails(signed: bytes, verifier: PdfVerifier) -> None:
    writer = IncrementalPdfFileWriter(BytesIO(signed))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    forged = generic.StreamObject(stream_data=b"BT /F1 16 Tf 56 780 Td (FORGED ORDER) Tj ET")
    page["/Contents"] = writer.add_object(forged)
    writer.update_container(page)
    out = BytesIO()
    writer.write(out)
    verdict = verifier.verify(out.getvalue())
    assert verdict.indication is Indication.TOTAL_FAILED, verdict.message
    assert verdict.sub_indication == "HASH_FAILURE"
    [sig] = verdict.signatures
    assert sig.modified_after_signing is True
    assert "changed after signing" in sig.message


def test_untrusted_root_is_no_certificate_chain_found(signed: bytes, tmp_path: Path) -> None:
    other = DevPki.init(tmp_path, common_name="someone else's root")
    verdict = verify_pdf(signed, trust_roots=[other.root_cert_pem])
    assert verdict.indication is Indication.INDETERMINATE
    assert verdict.sub_indication == "NO_CERTIFICATE_CHAIN_FOUND"
    [sig] = verdict.signatures
    assert sig.agency_code == AGENCY  # still reported, for diagnostics
    assert len(sig.chain) == 3  # followed through the embedded certificates


def test_expired_certificate_is_out_of_bounds_no_poe(
    pki: DevPki, document: bytes, verifier: PdfVerifier
) -> None:
    now = datetime.now(UTC)
    old = pki.issue_signer(
        agency_code=AGENCY,
        common_name="Expired",
        not_before=now - timedelta(days=400),
        not_after=now - timedelta(days=35),
    )
    verdict = verifier.verify(sign_pdf(document, old))
    assert verdict.indication is Indication.INDETERMINATE, verdict.message
    assert verdict.sub_indication == "OUT_OF_BOUNDS_NO_POE"


def test_validation_time_after_expiry(signed: bytes, verifier: PdfVerifier) -> None:
    verdict = verifier.verify(signed, at=datetime.now(UTC) + timedelta(days=3 * 365))
    assert verdict.indication is Indication.INDETERMINATE
    assert verdict.sub_indication == "OUT_OF_BOUNDS_NO_POE"


def test_not_yet_valid_certificate(pki: DevPki, document: bytes, verifier: PdfVerifier) -> None:
    now = datetime.now(UTC)
    future = pki.issue_signer(
        agency_code=AGENCY,
        common_name="Future",
        not_before=now + timedelta(days=10),
        not_after=now + timedelta(days=400),
    )
    verdict = verifier.verify(sign_pdf(document, future))
    assert verdict.indication is Indication.INDETERMINATE, verdict.message
    assert verdict.sub_indication == "NOT_YET_VALID"


def test_hard_fail_without_revocation_info_is_try_later(signed: bytes, pki: DevPki) -> None:
    verdict = verify_pdf(signed, trust_roots=[pki.root_cert_pem], revocation="hard-fail")
    assert verdict.indication is Indication.INDETERMINATE
    assert verdict.sub_indication == "TRY_LATER"


@pytest.mark.parametrize(
    "garbage",
    [b"", b"garbage", b"%PDF-1.7\n" + b"\x00" * 200, b"%PDF-1.7\n1 0 obj << /Type /Catalog"],
)
def test_garbage_is_format_failure(garbage: bytes, verifier: PdfVerifier) -> None:
    verdict = verifier.verify(garbage)
    assert verdict.indication is Indication.TOTAL_FAILED
    assert verdict.sub_indication == "FORMAT_FAILURE"
    assert verdict.signatures == []


def test_truncated_signed_pdf_is_format_failure(signed: bytes, verifier: PdfVerifier) -> None:
    verdict = verifier.verify(signed[: len(signed) // 2])
    assert verdict.indication is Indication.TOTAL_FAILED
    assert verdict.sub_indication == "FORMAT_FAILURE"


def test_garbled_cms_is_format_failure(signed: bytes, verifier: PdfVerifier) -> None:
    reader = PdfFileReader(BytesIO(signed))
    [sig] = reader.embedded_regular_signatures
    contents_hex = sig.pkcs7_content.hex().encode()
    start = signed.lower().index(contents_hex[:64])
    tampered = signed[:start] + b"ff" * 32 + signed[start + 64 :]
    verdict = verifier.verify(tampered)
    assert verdict.indication is Indication.TOTAL_FAILED
    assert verdict.sub_indication == "FORMAT_FAILURE"


def test_unsigned_pdf_is_indeterminate_no_signature(document: bytes, verifier: PdfVerifier) -> None:
    verdict = verifier.verify(document)
    assert verdict.indication is Indication.INDETERMINATE
    assert verdict.sub_indication == "NO_SIGNATURE"
    assert verdict.signatures == []


def test_worst_signature_wins(pki: DevPki, signed: bytes, tmp_path: Path) -> None:
    stranger = DevPki.init(tmp_path).issue_signer(agency_code="G22", common_name="Stranger")
    verdict = verify_pdf(sign_pdf(signed, stranger, field_name="Seal"), trust_roots=[pki.root_cert_pem])
    assert [s.indication for s in verdict.signatures] == [
        Indication.TOTAL_PASSED,
        Indication.INDETERMINATE,
    ]
    assert verdict.indication is Indication.INDETERMINATE
    assert verdict.sub_indication == "NO_CERTIFICATE_CHAIN_FOUND"


# ----------------------------------------------------------------------------- plumbing


def test_verify_inside_a_running_event_loop(signed: bytes, verifier: PdfVerifier) -> None:
    async def main() -> Indication:
        return verifier.verify(signed).indication

    assert asyncio.run(main()) is Indication.TOTAL_PASSED


def test_trust_roots_accept_der_and_bundles(pki: DevPki, signed: bytes, tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = x509.load_pem_x509_certificate(pki.root_cert_pem).public_bytes(serialization.Encoding.DER)
    bundle = DevPki.init(tmp_path).root_cert_pem + pki.root_cert_pem
    for roots in ([der], [bundle]):
        assert verify_pdf(signed, trust_roots=roots).indication is Indication.TOTAL_PASSED


def test_fast_hex_reader_matches_pyhanko(verifier: PdfVerifier) -> None:
    # PdfVerifier installed the accelerated reader; check it against pyHanko's grammar
    cases = {
        b"<48656c6c6f>": b"Hello",
        b"<48 65\n6C\t6c 6f>": b"Hello",
        b"<4>": b"\x40",
        b"<>": b"",
    }
    for source, expected in cases.items():
        stream = BytesIO(source + b" rest")
        value = generic.read_hex_string_from_stream(stream)
        assert value == generic.pdf_string(expected)
        assert stream.read() == b" rest"
    with pytest.raises(PdfStreamError):
        generic.read_hex_string_from_stream(BytesIO(b"<48zz>"))
    with pytest.raises(PdfStreamError):
        generic.read_hex_string_from_stream(BytesIO(b"<4865"))


# ------------------------------------------------------------ SHA-1 refused unless allowed


def _sign_sha1(pdf: bytes, identity: IssuedIdentity) -> bytes:
    from pyhanko.sign import signers

    from lienthong_common.pades import signing

    original = signers.PdfSignatureMetadata

    def sha1_metadata(**kwargs: object) -> object:
        kwargs["md_algorithm"] = "sha1"
        return original(**kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(signing.signers, "PdfSignatureMetadata", sha1_metadata)
        return sign_pdf(pdf, identity)


def test_sha1_signature_is_refused_by_default_and_says_why(tmp_path: Path) -> None:
    pki = DevPki.init(tmp_path / "pki")
    signed = _sign_sha1(make_pdf("Công văn"), pki.issue_signer(agency_code="000.00.00.H49", common_name="A"))
    verdict = PdfVerifier([pki.root_cert_pem], revocation="off").verify(signed)
    assert (verdict.indication, verdict.sub_indication) == (
        Indication.INDETERMINATE,
        "CRYPTO_CONSTRAINTS_FAILURE",
    )
    assert "SHA-1" in verdict.message and "refused by policy" in verdict.message
    allowed = PdfVerifier([pki.root_cert_pem], revocation="off", allow_sha1=True).verify(signed)
    assert allowed.passed, allowed.message
