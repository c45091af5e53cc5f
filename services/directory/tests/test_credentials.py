"""Credentials: salted hashes, verification, revocation and versions."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from lienthong_common.db import transaction
from lienthong_common.errors import DomainError, ErrorKind
from lienthong_directory import credentials, domain
from lienthong_directory.models import Credential

SECRET = "s3cret-for-quang-ninh"


def _set(sessions: sessionmaker[Session], client_id: str, secret: str, roles: list[str]) -> int:
    with transaction(sessions) as session:
        return domain.set_credential(session=session, client_id=client_id, secret=secret, roles=roles)


def _verify(sessions: sessionmaker[Session], client_id: str, secret: str) -> domain.CredentialCheck:
    with transaction(sessions) as session:
        return domain.verify_credential(session=session, client_id=client_id, secret=secret)


def _version(sessions: sessionmaker[Session], client_id: str) -> tuple[bool, int]:
    with transaction(sessions) as session:
        return domain.credential_version(session=session, client_id=client_id)


def test_secret_is_stored_only_as_salted_hash(
    sessions: sessionmaker[Session], quang_ninh: None
) -> None:
    assert _set(sessions, "000.00.00.H49", SECRET, []) == 1
    assert _set(sessions, "000.00.03.H49", SECRET, ["agency"]) == 1
    with transaction(sessions) as session:
        stored = [c.secret_hash for c in session.query(Credential).all()]
    assert all(SECRET not in h and h.startswith("scrypt$") for h in stored)
    assert stored[0] != stored[1]  # same secret, different salts


def test_valid_and_invalid_secrets(sessions: sessionmaker[Session], quang_ninh: None) -> None:
    _set(sessions, "000.00.00.H49", SECRET, [])
    check = _verify(sessions, "000.00.00.H49", SECRET)
    assert check == domain.CredentialCheck(True, "000.00.00.H49", ("agency",), 1)
    assert not _verify(sessions, "000.00.00.H49", SECRET + "x").valid
    assert not _verify(sessions, "000.00.00.H49", "").valid
    assert _verify(sessions, "000.00.00.H98", SECRET) == domain.CredentialCheck(False)


def test_admin_credential_has_no_agency(sessions: sessionmaker[Session]) -> None:
    _set(sessions, "platform-admin", SECRET, ["admin"])
    check = _verify(sessions, "platform-admin", SECRET)
    assert (check.valid, check.agency_code, check.roles) == (True, "", ("admin",))


def test_revocation_and_versions(sessions: sessionmaker[Session], quang_ninh: None) -> None:
    assert _set(sessions, "000.00.00.H49", SECRET, ["agency"]) == 1
    assert _set(sessions, "000.00.00.H49", SECRET + "-rotated", ["agency"]) == 2
    assert not _verify(sessions, "000.00.00.H49", SECRET).valid
    assert _version(sessions, "000.00.00.H49") == (True, 2)
    assert _set(sessions, "000.00.00.H49", "", []) == 3  # empty secret revokes
    assert _version(sessions, "000.00.00.H49") == (False, 3)
    check = _verify(sessions, "000.00.00.H49", SECRET + "-rotated")
    assert (check.valid, check.version) == (False, 3)
    assert _set(sessions, "000.00.00.H49", SECRET, ["agency"]) == 4
    assert _verify(sessions, "000.00.00.H49", SECRET).valid
    assert _version(sessions, "000.00.00.H98") == (False, 0)


@pytest.mark.parametrize(
    ("client_id", "secret", "roles", "code", "message"),
    [
        ("000.00.00.H98", SECRET, ["agency"], ErrorKind.NOT_FOUND, "not in the directory"),
        ("000.00.00.H49", "short", [], ErrorKind.INVALID, "at least 12"),
        ("000.00.00.H49", SECRET, ["root"], ErrorKind.INVALID, "unknown roles root"),
        ("ops", SECRET, [], ErrorKind.INVALID, "roles are required"),
        ("ops", SECRET, ["agency"], ErrorKind.INVALID, "segment"),
        ("bad id!", SECRET, ["admin"], ErrorKind.INVALID, "client_id"),
        ("000.00.03.H49", "", [], ErrorKind.NOT_FOUND, "no credential to revoke"),
    ],
)
def test_rejected_credentials(
    sessions: sessionmaker[Session],
    quang_ninh: None,
    client_id: str,
    secret: str,
    roles: list[str],
    code: ErrorKind,
    message: str,
) -> None:
    with pytest.raises(DomainError) as caught:
        _set(sessions, client_id, secret, roles)
    assert caught.value.kind is code
    assert message in caught.value.message


def test_hash_format_is_checked() -> None:
    hashed = credentials.hash_secret(SECRET)
    assert credentials.secret_matches(SECRET, hashed)
    assert not credentials.secret_matches(SECRET, "plain")
    assert not credentials.secret_matches(SECRET, "bcrypt$1$2$3$AAAA$AAAA")
