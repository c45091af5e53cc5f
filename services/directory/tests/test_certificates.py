"""Signing certificates bound to agencies."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session, sessionmaker

from lienthong_common.db import transaction
from lienthong_common.errors import DomainError, ErrorKind
from lienthong_directory import domain


def make_certificate(common_name: str = "Văn thư UBND tỉnh Quảng Ninh") -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


def _register(sessions: sessionmaker[Session], code: str, data: bytes) -> str:
    with transaction(sessions) as session:
        return domain.register_certificate(session=session, agency_code=code, certificate=data)


def _check(sessions: sessionmaker[Session], code: str, fingerprint: str) -> tuple[bool, list[str]]:
    with transaction(sessions) as session:
        check = domain.check_certificate(session=session, agency_code=code, fingerprint=fingerprint)
        return check.bound, check.owners


def test_binding(sessions: sessionmaker[Session], quang_ninh: None) -> None:
    der = make_certificate().public_bytes(serialization.Encoding.DER)
    fingerprint = _register(sessions, "000.00.00.H49", der)
    assert fingerprint == hashlib.sha256(der).hexdigest()
    assert _register(sessions, "000.00.00.H49", der) == fingerprint  # idempotent
    assert _check(sessions, "000.00.00.H49", fingerprint) == (True, ["000.00.00.H49"])
    assert _check(sessions, "000.00.03.H49", fingerprint) == (False, ["000.00.00.H49"])
    _register(sessions, "000.00.03.H49", der)
    colon_upper = ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    assert _check(sessions, "000.00.03.H49", colon_upper) == (
        True,
        ["000.00.00.H49", "000.00.03.H49"],
    )
    other = hashlib.sha256(b"other").hexdigest()
    assert _check(sessions, "000.00.00.H49", other) == (False, [])


def test_pem_is_accepted_as_well(sessions: sessionmaker[Session], quang_ninh: None) -> None:
    certificate = make_certificate()
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    der = certificate.public_bytes(serialization.Encoding.DER)
    assert _register(sessions, "000.00.00.H49", pem) == hashlib.sha256(der).hexdigest()


def test_unknown_agency_and_malformed_der(sessions: sessionmaker[Session], quang_ninh: None) -> None:
    der = make_certificate().public_bytes(serialization.Encoding.DER)
    with pytest.raises(DomainError) as caught:
        _register(sessions, "000.00.00.H98", der)
    assert caught.value.kind is ErrorKind.NOT_FOUND
    with pytest.raises(DomainError) as caught:
        _register(sessions, "000.00.00.H49", b"\x30\x03not a certificate")
    assert caught.value.kind is ErrorKind.INVALID
    assert "not a well-formed X.509 certificate" in caught.value.message
    with pytest.raises(DomainError, match="not a SHA-256 hex digest"):
        _check(sessions, "000.00.00.H49", "abc")


def test_binding_period_is_honoured_as_of_a_date(
    sessions: sessionmaker[Session], quang_ninh: None
) -> None:
    der = make_certificate().public_bytes(serialization.Encoding.DER)
    today = domain.today()
    with transaction(sessions) as session:
        fingerprint = domain.register_certificate(
            session=session,
            agency_code="000.00.00.H49",
            certificate=der,
            valid_from=today - timedelta(days=10),
            valid_to=today + timedelta(days=5),
        )
    def at(day: date) -> domain.BindingCheck:
        with transaction(sessions) as session:
            return domain.check_certificate(
                session=session,
                agency_code="000.00.00.H49",
                fingerprint=fingerprint,
                at=domain.parse_moment(day.isoformat()),
            )

    assert at(today).bound
    late = at(today + timedelta(days=6))
    assert not late.bound and "only from" in late.reason
    assert not at(today - timedelta(days=11)).bound
    # Re-registering with a new end date ends the binding earlier.
    with transaction(sessions) as session:
        domain.register_certificate(
            session=session, agency_code="000.00.00.H49", certificate=der, valid_to=today
        )
    assert not at(today).bound
    assert at(today - timedelta(days=1)).bound
