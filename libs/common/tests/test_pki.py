"""Development PKI: hierarchy, files, identities, agency binding."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lienthong_common.pki import (
    CERT_POLICY_SEAL,
    CERT_POLICY_SIGNER,
    DevPki,
    agency_code_from_certificate,
    certificate_fingerprint,
    load_identity,
    write_identity,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return DevPki.init(tmp_path_factory.mktemp("pki"))


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def test_init_creates_files_with_private_keys_0600(tmp_path: Path) -> None:
    DevPki.init(tmp_path)
    for name in ("root.pem", "root.key", "issuing.pem", "issuing.key"):
        assert (tmp_path / name).is_file(), name
    for name in ("root.key", "issuing.key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_init_is_idempotent(tmp_path: Path) -> None:
    first = DevPki.init(tmp_path)
    issuing_before = (tmp_path / "issuing.pem").read_bytes()
    second = DevPki.init(tmp_path)
    assert second.root_cert_pem == first.root_cert_pem
    assert (tmp_path / "issuing.pem").read_bytes() == issuing_before
    assert DevPki.load(tmp_path).root_cert_pem == first.root_cert_pem
    assert first.root_path == tmp_path / "root.pem"
    assert first.root_path.read_bytes() == first.root_cert_pem


def test_load_missing_directory_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"root\.pem"):
        DevPki.load(tmp_path)


def test_hierarchy_and_signer_certificate(pki: DevPki) -> None:
    identity = pki.issue_signer(agency_code="000.00.00.H49", common_name="Nguyễn Văn A")
    leaf = x509.load_pem_x509_certificate(identity.cert_pem)
    issuing = x509.load_pem_x509_certificate(identity.chain_pem[0])
    root = x509.load_pem_x509_certificate(identity.chain_pem[1])
    assert len(identity.chain_pem) == 2
    assert root.subject == root.issuer
    assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "lienthong dev root CA"
    assert issuing.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "lienthong dev issuing CA"
    )
    leaf.verify_directly_issued_by(issuing)
    issuing.verify_directly_issued_by(root)
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment and not usage.key_cert_sign
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Nguyễn Văn A"
    policies = leaf.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier for p in policies] == [CERT_POLICY_SIGNER]
    # the key matches the certificate
    key = serialization.load_pem_private_key(identity.key_pem, password=None)
    assert key.public_key() == leaf.public_key()


def test_seal_purpose_is_marked_by_policy(pki: DevPki) -> None:
    seal = pki.issue_signer(agency_code="000.00.00.H49", common_name="UBND tỉnh", purpose="seal")
    cert = x509.load_pem_x509_certificate(seal.cert_pem)
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier for p in policies] == [CERT_POLICY_SEAL]


def test_custom_validity(pki: DevPki) -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    identity = pki.issue_signer(
        agency_code="G09", common_name="old", not_before=start, not_after=start + timedelta(days=30)
    )
    cert = x509.load_pem_x509_certificate(identity.cert_pem)
    assert cert.not_valid_before_utc == start
    assert cert.not_valid_after_utc == start + timedelta(days=30)
    with pytest.raises(ValueError, match="before it starts"):
        pki.issue_signer(agency_code="G09", common_name="x", not_before=start, not_after=start)


def test_agency_code_round_trip(pki: DevPki) -> None:
    for code in ("000.00.00.H49", "000.46.24.H44", "vxp.saas.03"):
        identity = pki.issue_signer(agency_code=code, common_name="Cán bộ")
        assert agency_code_from_certificate(_der(identity.cert_pem)) == code
        assert agency_code_from_certificate(identity.cert_pem) == code  # PEM accepted too


def test_agency_code_absent_or_garbage(pki: DevPki) -> None:
    assert agency_code_from_certificate(_der(pki.root_cert_pem)) is None
    assert agency_code_from_certificate(b"not a certificate") is None


def test_certificate_fingerprint_pem_and_der_agree(pki: DevPki) -> None:
    der = _der(pki.root_cert_pem)
    expected = x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()).hex()
    assert certificate_fingerprint(der) == expected
    assert certificate_fingerprint(pki.root_cert_pem) == expected
    assert len(expected) == 64


def test_write_and_load_identity(pki: DevPki, tmp_path: Path) -> None:
    identity = pki.issue_signer(agency_code="000.00.24.H44", common_name="Văn thư")
    folder = write_identity(identity, tmp_path, "000.00.24.H44")
    assert {p.name for p in folder.iterdir()} == {"key.pem", "cert.pem", "chain.pem"}
    assert stat.S_IMODE((folder / "key.pem").stat().st_mode) == 0o600
    assert load_identity(tmp_path, "000.00.24.H44") == identity


def test_rejects_bad_arguments(pki: DevPki) -> None:
    with pytest.raises(ValueError):
        pki.issue_signer(agency_code=" ", common_name="x")
    with pytest.raises(ValueError):
        pki.issue_signer(agency_code="G09", common_name="x", purpose="other")  # type: ignore[arg-type]
