"""Envelope XML-DSig: sign with the dev PKI, verify with ETSI verdicts, tampering and rsa-sha1."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from lienthong_common.edxml import (
    DSIG_NS,
    NS,
    STRICT,
    Attachment,
    EdxmlError,
    EdxmlPackage,
    MessageHeader,
    Organization,
    build_package,
    parse_package,
)
from lienthong_common.edxml.signature import Indication, sign_envelope, verify_envelope
from lienthong_common.pades import Indication as PadesIndication
from lienthong_common.pki import DevPki, IssuedIdentity

SENDER = "000.00.00.H49"
UTC = datetime.UTC


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return DevPki.init(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def signer(pki: DevPki) -> IssuedIdentity:
    return pki.issue_signer(agency_code=SENDER, common_name="Nguyễn Văn A")


@pytest.fixture(scope="module")
def rsa_signer(pki: DevPki) -> IssuedIdentity:
    return pki.issue_signer(agency_code=SENDER, common_name="Legacy SDK", key_type="rsa")


def _package() -> bytes:
    return build_package(
        EdxmlPackage(
            header=MessageHeader(
                sender=Organization(organ_id=SENDER, organ_name="UBND tỉnh Quảng Ninh"),
                recipients=[Organization(organ_id="000.00.02.H49")],
                code_number="7816",
                code_notation="UBND-VP",
                promulgation_place="Quảng Ninh",
                promulgation_date=datetime.date(2025, 7, 1),
                document_type=1,
                document_type_name="Công văn",
                subject="Về việc thử nghiệm chữ ký",
            ),
            attachments=[
                Attachment(
                    content_id="cid:1", name="cv.pdf", content_type="application/pdf", data=b"%PDF-1.7 x"
                )
            ],
        )
    )


def _verify(data: bytes, pki: DevPki, **kwargs: object) -> object:
    return verify_envelope(data, trust_roots=[pki.root_cert_pem], **kwargs)  # type: ignore[arg-type]


def test_a_signed_package_verifies_and_the_signature_follows_the_trace_list(
    pki: DevPki, signer: IssuedIdentity
) -> None:
    signed = sign_envelope(_package(), signer)
    verdict = verify_envelope(signed, trust_roots=[pki.root_cert_pem])
    assert (verdict.indication, verdict.sub_indication) == (Indication.TOTAL_PASSED, None)
    assert verdict.passed and verdict.indication == PadesIndication.TOTAL_PASSED == "TOTAL_PASSED"
    assert verdict.signature_method == "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
    assert verdict.digest_method == "http://www.w3.org/2001/04/xmlenc#sha256"
    assert verdict.agency_code == SENDER
    assert "Nguyễn Văn A" in verdict.signer_subject
    assert len(verdict.chain) == 3 and "root CA" in verdict.chain[-1]
    assert verdict.warnings == []

    header = etree.fromstring(signed.split(b"\n", 1)[1]).find(f"{{{NS}}}edXMLEnvelope/{{{NS}}}edXMLHeader")
    names = [etree.QName(child).localname for child in header]
    assert names == ["MessageHeader", "TraceHeaderList", "Signature"]
    assert etree.QName(header[2]).namespace == DSIG_NS
    # The strict reader accepts the signed package as it is, with no deviation.
    pkg = parse_package(signed, policy=STRICT)
    assert pkg.signature_present and pkg.warnings == []


def test_rsa_keys_sign_with_rsa_sha256(pki: DevPki, rsa_signer: IssuedIdentity) -> None:
    verdict = verify_envelope(sign_envelope(_package(), rsa_signer), trust_roots=[pki.root_cert_pem])
    assert verdict.passed
    assert verdict.signature_method == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Về việc thử nghiệm chữ ký".encode(), "Về việc thử nghiệm chữ kí".encode()),  # the subject
        (base64.b64encode(b"%PDF-1.7 x"), base64.b64encode(b"%PDF-1.7 y")),  # the attachment
        (b"<edXML:CodeNumber>7816", b"<edXML:CodeNumber>7817"),  # the header
    ],
)
def test_any_change_after_signing_is_a_hash_failure(
    pki: DevPki, signer: IssuedIdentity, old: bytes, new: bytes
) -> None:
    signed = sign_envelope(_package(), signer)
    assert old in signed
    verdict = verify_envelope(signed.replace(old, new, 1), trust_roots=[pki.root_cert_pem])
    assert (verdict.indication, verdict.sub_indication) == (Indication.TOTAL_FAILED, "HASH_FAILURE")
    assert "changed after it was signed" in verdict.message


def test_a_forged_signature_value_is_a_crypto_failure(pki: DevPki, signer: IssuedIdentity) -> None:
    signed = sign_envelope(_package(), signer)
    root = etree.fromstring(signed.split(b"\n", 1)[1])
    value = root.find(f".//{{{DSIG_NS}}}SignatureValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[5] ^= 0xFF
    value.text = base64.b64encode(bytes(raw)).decode()
    verdict = verify_envelope(etree.tostring(root), trust_roots=[pki.root_cert_pem])
    assert (verdict.indication, verdict.sub_indication) == (Indication.TOTAL_FAILED, "SIG_CRYPTO_FAILURE")


def test_another_signers_certificate_swapped_in_is_a_crypto_failure(
    pki: DevPki, signer: IssuedIdentity
) -> None:
    other = pki.issue_signer(agency_code=SENDER, common_name="Kẻ giả mạo")
    root = etree.fromstring(sign_envelope(_package(), signer).split(b"\n", 1)[1])
    certificate = root.find(f".//{{{DSIG_NS}}}X509Certificate")
    certificate.text = b"".join(other.cert_pem.splitlines()[1:-1]).decode()
    verdict = verify_envelope(etree.tostring(root), trust_roots=[pki.root_cert_pem])
    assert (verdict.indication, verdict.sub_indication) == (Indication.TOTAL_FAILED, "SIG_CRYPTO_FAILURE")


def test_rsa_sha1_is_refused_by_default_and_accepted_where_the_policy_allows(
    pki: DevPki, rsa_signer: IssuedIdentity
) -> None:
    legacy = sign_envelope(_package(), rsa_signer, legacy_rsa_sha1=True)
    assert b"xmldsig#rsa-sha1" in legacy and b"xmldsig#sha1" in legacy

    refused = verify_envelope(legacy, trust_roots=[pki.root_cert_pem])
    assert (refused.indication, refused.sub_indication) == (
        Indication.INDETERMINATE,
        "CRYPTO_CONSTRAINTS_FAILURE_NO_POE",
    )
    assert "rsa-sha1 is refused by policy" in refused.message

    allowed = verify_envelope(legacy, trust_roots=[pki.root_cert_pem], allow_rsa_sha1=True)
    assert allowed.passed
    assert allowed.warnings == [
        "edXML/edXMLEnvelope/edXMLHeader/Signature: legacy http://www.w3.org/2000/09/xmldsig#rsa-sha1"
        " / http://www.w3.org/2000/09/xmldsig#sha1 accepted by policy"
    ]
    # Allowing SHA-1 does not weaken tamper detection.
    tampered = legacy.replace("chữ ký".encode(), "chữ kí".encode())
    verdict = verify_envelope(tampered, trust_roots=[pki.root_cert_pem], allow_rsa_sha1=True)
    assert verdict.sub_indication == "HASH_FAILURE"


def test_sha1_signing_needs_an_rsa_key(signer: IssuedIdentity) -> None:
    with pytest.raises(ValueError, match="rsa-sha1 needs an RSA key"):
        sign_envelope(_package(), signer, legacy_rsa_sha1=True)


def _qcvn_namespace_signature(package: bytes, identity: IssuedIdentity) -> bytes:
    """What some SDKs send: a default-namespace XML-DSig whose xmlns was lost on writing."""
    signed = sign_envelope(package, identity)
    root = etree.fromstring(signed.split(b"\n", 1)[1])
    old = root.find(f".//{{{DSIG_NS}}}Signature")
    # Rebuild it as `<Signature xmlns="…xmldsig#">` and sign SignedInfo in that form.
    new = etree.Element(f"{{{DSIG_NS}}}Signature", nsmap={None: DSIG_NS})
    new.tail = old.tail
    for child in old:
        new.append(child)
    old.getparent().replace(old, new)
    new = etree.fromstring(etree.tostring(root)).find(f".//{{{DSIG_NS}}}Signature")
    root = new.getroottree().getroot()
    signed_info = new.find(f"{{{DSIG_NS}}}SignedInfo")
    key = serialization.load_pem_private_key(identity.key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    c14n = etree.tostring(signed_info, method="c14n")
    value = key.sign(c14n, padding.PKCS1v15(), hashes.SHA256())
    new.find(f"{{{DSIG_NS}}}SignatureValue").text = base64.b64encode(value).decode()
    text = etree.tostring(root)
    # …and then the SDK wrote it without its namespace declaration.
    return text.replace(b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">', b"<Signature>")


def test_a_signature_in_the_qcvn_namespace_is_verified_with_a_warning(
    pki: DevPki, rsa_signer: IssuedIdentity
) -> None:
    legacy = _qcvn_namespace_signature(_package(), rsa_signer)
    header = etree.fromstring(legacy).find(f"{{{NS}}}edXMLEnvelope/{{{NS}}}edXMLHeader")
    assert header[2].tag == f"{{{NS}}}Signature"

    verdict = verify_envelope(legacy, trust_roots=[pki.root_cert_pem])
    # SignedInfo is canonicalized where it stands in the document (its namespace context as
    # signed), so the re-declared signature verifies.
    assert verdict.passed, verdict.message
    assert verdict.signature_method.endswith("#rsa-sha256")
    assert verdict.warnings == [
        "edXML/edXMLEnvelope/edXMLHeader/Signature: Signature is in namespace"
        f" '{NS}', not XML-DSig; read as XML-DSig"
    ]
    # The lenient reader accepts it and records the deviation; the strict one refuses it.
    assert parse_package(legacy).warnings == [
        f"edXML/edXMLEnvelope/edXMLHeader/Signature: Signature is in namespace '{NS}', not XML-DSig"
    ]
    with pytest.raises(EdxmlError, match="not XML-DSig"):
        parse_package(legacy, policy=STRICT)


def test_stray_bytes_before_the_declaration_do_not_break_verification(
    pki: DevPki, signer: IssuedIdentity
) -> None:
    assert verify_envelope(
        b"\r\n\r\n" + sign_envelope(_package(), signer), trust_roots=[pki.root_cert_pem]
    ).passed


def test_an_unknown_root_gives_no_certificate_chain_found(signer: IssuedIdentity, tmp_path: Path) -> None:
    other = DevPki.init(tmp_path / "other")
    verdict = verify_envelope(sign_envelope(_package(), signer), trust_roots=[other.root_cert_pem])
    assert (verdict.indication, verdict.sub_indication) == (
        Indication.INDETERMINATE,
        "NO_CERTIFICATE_CHAIN_FOUND",
    )
    assert verdict.agency_code == SENDER  # who signed is still reported


def test_certificate_validity_is_checked_at_the_validation_time(pki: DevPki) -> None:
    now = datetime.datetime.now(UTC)
    expired = pki.issue_signer(
        agency_code=SENDER,
        common_name="Hết hạn",
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )
    future = pki.issue_signer(
        agency_code=SENDER,
        common_name="Chưa hiệu lực",
        not_before=now + datetime.timedelta(days=1),
    )
    roots = [pki.root_cert_pem]
    verdict = verify_envelope(sign_envelope(_package(), expired), trust_roots=roots)
    assert (verdict.indication, verdict.sub_indication) == (Indication.INDETERMINATE, "OUT_OF_BOUNDS_NO_POE")
    verdict = verify_envelope(sign_envelope(_package(), future), trust_roots=roots)
    assert (verdict.indication, verdict.sub_indication) == (Indication.INDETERMINATE, "NOT_YET_VALID")


def test_hard_fail_revocation_without_revocation_info_is_try_later(
    pki: DevPki, signer: IssuedIdentity
) -> None:
    verdict = verify_envelope(
        sign_envelope(_package(), signer), trust_roots=[pki.root_cert_pem], revocation="hard-fail"
    )
    assert (verdict.indication, verdict.sub_indication) == (Indication.INDETERMINATE, "TRY_LATER")


def test_an_unsigned_package_is_indeterminate_no_signature(pki: DevPki) -> None:
    verdict = verify_envelope(_package(), trust_roots=[pki.root_cert_pem])
    assert (verdict.indication, verdict.sub_indication) == (Indication.INDETERMINATE, "NO_SIGNATURE")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"<edXML", "not well-formed XML"),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><edXML/>', "DTD/DOCTYPE"),
        (b"<other/>", "root element is 'other'"),
        (f'<edXML xmlns="{NS}"/>'.encode(), "edXMLHeader: required element is missing"),
    ],
)
def test_unreadable_input_is_a_format_failure(pki: DevPki, data: bytes, reason: str) -> None:
    verdict = verify_envelope(data, trust_roots=[pki.root_cert_pem])
    assert (verdict.indication, verdict.sub_indication) == (Indication.TOTAL_FAILED, "FORMAT_FAILURE")
    assert reason in verdict.message


def test_a_signature_without_a_certificate_is_a_format_failure(pki: DevPki, signer: IssuedIdentity) -> None:
    root = etree.fromstring(sign_envelope(_package(), signer).split(b"\n", 1)[1])
    key_info = root.find(f".//{{{DSIG_NS}}}KeyInfo")
    key_info.getparent().remove(key_info)
    verdict = verify_envelope(etree.tostring(root), trust_roots=[pki.root_cert_pem])
    assert (verdict.indication, verdict.sub_indication) == (Indication.TOTAL_FAILED, "FORMAT_FAILURE")
    assert "KeyInfo carries no X509Certificate" in verdict.message


def test_a_package_is_signed_once(signer: IssuedIdentity) -> None:
    signed = sign_envelope(_package(), signer)
    with pytest.raises(EdxmlError, match="already signed"):
        sign_envelope(signed, signer)
