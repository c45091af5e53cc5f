"""VDXP systems: which installation may speak VDXP for which agencies, and the check of its HMACs.

A system (`systemid` in VNPT's SDK: `vxp.saas.03`, or an agency code used as one) is one
document-management installation with one secret, the agencies it sends and receives for and,
optionally, the admin right (registerAgency, deleteAgency). The SDK signs every call with
hex(HMAC-SHA256(secret, the raw sign-header bytes)) (VDXP-WIRE.md §2), which only the secret
itself can check: so the directory keeps it envelope-encrypted (envelope.py, docs/adr/0002) and
verifies signatures here. A secret leaves the directory only in the reply that created it.

Secrets: the current one has no end. A rotation ends the previous one after the overlap (default
a day; 0 = at once) and any older one at once, so at most two are valid at any time; rows of
ended secrets are deleted at that rotation (no one may use them, so nothing keeps them).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lienthong_common.clock import now_utc
from lienthong_common.errors import DomainError, ErrorKind, invalid, not_found
from lienthong_directory import domain, envelope, repository
from lienthong_directory.envelope import MasterKeyError, MasterKeyRing
from lienthong_directory.models import VdxpSystem, VdxpSystemAgency, VdxpSystemSecret

log = logging.getLogger(__name__)

SYSTEM_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
GENERATED_SECRET_BYTES = 32  # secrets.token_urlsafe(32): 43 URL-safe characters
MAX_SECRET_LENGTH = 512
DEFAULT_OVERLAP = timedelta(seconds=86400)
MAX_OVERLAP = timedelta(days=90)
# The one reason a failed check gives: it must not tell an unknown system from a wrong signature.
NOT_VALID = "system id or signature not valid"
NO_MASTER_KEY = (
    "VDXP systems are off: the directory has no master key to encrypt their secrets with; set "
    f"{envelope.MASTER_KEYS_ENV} or {envelope.MASTER_KEYS_FILE_ENV} "
    "(docs/adr/0002-vdxp-system-secrets.md)"
)
# Signs the HMAC computed when a check has no secret to try, so a miss costs what a hit does.
_NO_SECRET = secrets.token_urlsafe(GENERATED_SECRET_BYTES)


@dataclass(frozen=True)
class SystemView:
    """A VDXP system as callers see it: never its secrets."""

    system_id: str
    agency_codes: tuple[str, ...]
    admin: bool
    created_at: datetime
    active_secrets: int
    previous_valid_until: datetime | None


@dataclass(frozen=True)
class IssuedSecret:
    """A system and the secret just given to it (the only time it is shown)."""

    system: SystemView
    secret: str = field(repr=False)


@dataclass(frozen=True)
class SignatureCheck:
    valid: bool
    system: SystemView | None = None
    reason: str = ""


@dataclass(frozen=True)
class RewrapReport:
    """What `lienthong-directory vdxp-rewrap` did."""

    current_key_id: str
    secrets: int
    rewrapped: int
    already_current: int
    failures: tuple[str, ...]


def _ring(keys: MasterKeyRing | None) -> MasterKeyRing:
    if keys is None:
        raise DomainError(ErrorKind.CONFLICT, NO_MASTER_KEY)
    return keys


def _system_id(text: str) -> str:
    system_id = text.strip()
    if not SYSTEM_ID.fullmatch(system_id):
        shown = system_id if len(system_id) <= 80 else system_id[:80] + "…"
        raise invalid(f"system id '{shown}' must be 1-64 letters, digits, '.', '_' or '-'")
    return system_id


def _agency_codes(session: Session, codes: Sequence[str], system_id: str) -> list[str]:
    """The codes, canonical and distinct; each must be an agency of the directory."""
    found: list[str] = []
    for text in codes:
        if not text.strip():
            continue
        code = domain.normalize_code(text)
        if not repository.agency_exists(session=session, code=code):
            raise not_found(f"VDXP system {system_id}: agency {code} is not in the directory")
        if code not in found:
            found.append(code)
    if not found:
        raise invalid(f"VDXP system {system_id}: name at least one agency it acts for")
    return sorted(found)


def _secret(given: str, system_id: str) -> str:
    """The given secret (an existing installation's, kept as configured there), else a new one."""
    if not given:
        return secrets.token_urlsafe(GENERATED_SECRET_BYTES)
    if len(given) > MAX_SECRET_LENGTH or any(ord(c) < 32 or ord(c) == 127 for c in given):
        raise invalid(
            f"VDXP system {system_id}: a secret is 1-{MAX_SECRET_LENGTH} characters without "
            "control characters"
        )
    return given


def _active(row: VdxpSystemSecret, now: datetime) -> bool:
    return row.valid_until is None or now < domain._aware(row.valid_until)


def _seal(ring: MasterKeyRing, system_id: str, secret: str, now: datetime) -> VdxpSystemSecret:
    sealed = envelope.seal(ring, secret, context=system_id)
    return VdxpSystemSecret(
        created_at=now,
        valid_until=None,
        algorithm=sealed.algorithm,
        master_key_id=sealed.master_key_id,
        wrapped_key=sealed.wrapped_key,
        ciphertext=sealed.ciphertext,
    )


def _sealed(row: VdxpSystemSecret) -> envelope.Sealed:
    return envelope.Sealed(row.algorithm, row.master_key_id, row.wrapped_key, row.ciphertext)


def _plaintext(ring: MasterKeyRing, row: VdxpSystemSecret) -> str:
    try:
        return envelope.unseal(ring, _sealed(row), context=row.system_id)
    except MasterKeyError as error:
        # The operators' problem, not the caller's: INTERNAL reaches clients as a generic failure.
        log.error("VDXP system %s: %s", row.system_id, error)
        raise DomainError(ErrorKind.INTERNAL, f"VDXP system {row.system_id}: {error}") from None


def _view(system: VdxpSystem, now: datetime) -> SystemView:
    active = [s for s in system.secrets if _active(s, now)]
    ends = [domain._aware(s.valid_until) for s in active if s.valid_until is not None]
    return SystemView(
        system_id=system.system_id,
        agency_codes=tuple(sorted(a.agency_code for a in system.agencies)),
        admin=system.admin,
        created_at=domain._aware(system.created_at),
        active_secrets=len(active),
        previous_valid_until=max(ends) if ends else None,
    )


def _existing(session: Session, system_id: str) -> VdxpSystem:
    system_id = _system_id(system_id)
    system = repository.vdxp_system(session=session, system_id=system_id)
    if system is None:
        raise not_found(f"VDXP system {system_id} is not in the directory")
    return system


def _hmac_hex(secret: str, signed: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest().encode("ascii")


def add_system(
    *,
    session: Session,
    keys: MasterKeyRing | None,
    system_id: str,
    agency_codes: Sequence[str],
    admin: bool = False,
    secret: str = "",
) -> IssuedSecret:
    """Register a system with its agencies and a secret (generated unless given)."""
    ring = _ring(keys)
    system_id = _system_id(system_id)
    exists = DomainError(ErrorKind.ALREADY_EXISTS, f"VDXP system {system_id} already exists")
    if repository.vdxp_system(session=session, system_id=system_id) is not None:
        raise exists
    codes = _agency_codes(session, agency_codes, system_id)
    plaintext = _secret(secret, system_id)
    now = now_utc()
    system = VdxpSystem(system_id=system_id, admin=admin, created_at=now)
    system.agencies = [VdxpSystemAgency(agency_code=code) for code in codes]
    system.secrets = [_seal(ring, system_id, plaintext, now)]
    session.add(system)
    try:
        session.flush()
    except IntegrityError:  # added concurrently
        raise exists from None
    return IssuedSecret(_view(system, now), plaintext)


def list_systems(*, session: Session, agency_code: str = "") -> list[SystemView]:
    """Every system, or those acting for one agency, by system id."""
    code = domain.normalize_code(agency_code) if agency_code.strip() else ""
    now = now_utc()
    return [_view(s, now) for s in repository.vdxp_systems(session=session, agency_code=code)]


def update_system(
    *, session: Session, system_id: str, agency_codes: Sequence[str], admin: bool
) -> SystemView:
    """Replace a system's agencies and admin right; its secrets stay."""
    system = _existing(session, system_id)
    codes = _agency_codes(session, agency_codes, system.system_id)
    kept = [a for a in system.agencies if a.agency_code in codes]
    held = {a.agency_code for a in kept}
    system.agencies = kept + [VdxpSystemAgency(agency_code=c) for c in codes if c not in held]
    system.admin = admin
    session.flush()
    return _view(system, now_utc())


def rotate_secret(
    *,
    session: Session,
    keys: MasterKeyRing | None,
    system_id: str,
    new_secret: str = "",
    overlap_seconds: int | None = None,
) -> IssuedSecret:
    """Give a system a new secret; the current one stays valid for `overlap_seconds` (None: a
    day; 0: it stops now) and any older one stops now."""
    ring = _ring(keys)
    system = _existing(session, system_id)
    longest = int(MAX_OVERLAP.total_seconds())
    if overlap_seconds is not None and not 0 <= overlap_seconds <= longest:
        raise invalid(f"VDXP system {system.system_id}: overlap must be between 0 and {longest} seconds")
    overlap = DEFAULT_OVERLAP if overlap_seconds is None else timedelta(seconds=overlap_seconds)
    plaintext = _secret(new_secret, system.system_id)
    now = now_utc()
    active = [s for s in system.secrets if _active(s, now)]
    if new_secret:
        reused = False
        for row in active:
            reused |= hmac.compare_digest(_plaintext(ring, row).encode(), plaintext.encode())
        if reused:
            raise invalid(f"VDXP system {system.system_id}: the new secret is one it already has")
    current = next((s for s in reversed(active) if s.valid_until is None), None)
    kept = []
    if current is not None and overlap > timedelta(0):
        current.valid_until = now + overlap
        kept.append(current)
    system.secrets = [*kept, _seal(ring, system.system_id, plaintext, now)]  # the rest are deleted
    session.flush()
    return IssuedSecret(_view(system, now), plaintext)


def remove_system(*, session: Session, system_id: str) -> SystemView:
    """Delete a system, its agencies and its secrets; returns what it was."""
    system = _existing(session, system_id)
    view = _view(system, now_utc())
    session.delete(system)
    session.flush()
    return view


def verify_signature(
    *, session: Session, keys: MasterKeyRing | None, system_id: str, signed: bytes, signature: str
) -> SignatureCheck:
    """Whether `signature` is hex(HMAC-SHA256(secret, signed)) for one of the system's valid
    secrets (hex case-insensitive, compared in constant time). A failure says only NOT_VALID,
    whether the system is unknown or the signature wrong."""
    ring = _ring(keys)
    given = signature.strip().lower().encode("utf-8", "replace")
    system_id = system_id.strip()
    system = (
        repository.vdxp_system(session=session, system_id=system_id)
        if SYSTEM_ID.fullmatch(system_id)
        else None
    )
    now = now_utc()
    active = [s for s in system.secrets if _active(s, now)] if system is not None else []
    if system is None or not active:
        hmac.compare_digest(_hmac_hex(_NO_SECRET, signed), given)
        return SignatureCheck(valid=False, reason=NOT_VALID)
    matched = False
    for row in active:  # every one, match or not
        matched |= hmac.compare_digest(_hmac_hex(_plaintext(ring, row), signed), given)
    if not matched:
        return SignatureCheck(valid=False, reason=NOT_VALID)
    return SignatureCheck(valid=True, system=_view(system, now))


def rewrap_secrets(*, session: Session, keys: MasterKeyRing | None) -> RewrapReport:
    """Re-wrap every secret's data key under the current master key (the ciphertexts stay), so
    older master keys can be retired. A secret whose key cannot be unwrapped is reported and
    left as it is; the others are re-wrapped."""
    ring = _ring(keys)
    total = repository.vdxp_secret_count(session=session)
    rewrapped, failures = 0, []
    for row in repository.vdxp_secrets_not_under(session=session, master_key_id=ring.current.key_id):
        try:
            sealed = envelope.rewrap(ring, _sealed(row), context=row.system_id)
        except MasterKeyError as error:
            failures.append(f"secret {row.id} of VDXP system {row.system_id}: {error}")
            continue
        row.master_key_id = sealed.master_key_id
        row.wrapped_key = sealed.wrapped_key
        rewrapped += 1
    session.flush()
    return RewrapReport(
        current_key_id=ring.current.key_id,
        secrets=total,
        rewrapped=rewrapped,
        already_current=total - rewrapped - len(failures),
        failures=tuple(failures),
    )
