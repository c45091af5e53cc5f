"""The directory's rules: effective-dated agencies, successors, credentials, certificate bindings.

Effective dates: the UpsertAgency RPC has no field for one, so a change made through it takes
effect today (the calendar day in Vietnam, UTC+7) and the previous version ends today. The
service functions take `effective_from` so imports and tests can record dated history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.orm import Session

from lienthong_common import agency_codes
from lienthong_common.agency_codes import AgencyCodeError
from lienthong_common.clock import VIETNAM, now_utc
from lienthong_common.errors import conflict, invalid, not_found
from lienthong_common.pki import certificate_fingerprint
from lienthong_directory import credentials, events, repository
from lienthong_directory.models import Agency, AgencyCertificate, AgencyVersion, Credential

ACTIVE = "active"
DISSOLVED = "dissolved"
STATUSES = (ACTIVE, DISSOLVED)
ROLE_AGENCY = "agency"
ROLE_ADMIN = "admin"
ROLES = (ROLE_AGENCY, ROLE_ADMIN)
_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


def today() -> date:
    """The current calendar day in Vietnam, the day legal changes are dated by."""
    return datetime.now(VIETNAM).date()


def parse_day(text: str, *, field: str = "as_of") -> date:
    """An ISO date (a datetime is cut to its date); empty means today."""
    text = text.strip()
    if not text:
        return today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        raise invalid(f"{field} '{text}' is not an ISO date (YYYY-MM-DD)") from None


@dataclass(frozen=True)
class AgencyRecord:
    """An agency as described by a caller or a dataset; parent and province are derived."""

    code: str
    name: str
    tier: int
    kind: str = ""
    status: str = ACTIVE
    successor_code: str = ""
    email: str = ""
    telephone: str = ""
    address: str = ""
    website: str = ""
    illustrative: bool = False
    parent_code: str = ""
    province_code: str = ""

    @classmethod
    def of_version(cls, version: AgencyVersion) -> AgencyRecord:
        return cls(**{f.name: getattr(version, f.name) for f in fields(cls)})


def _code(code: str, *, context: str = "") -> str:
    """The canonical code, or INVALID_ARGUMENT naming the wrong segment."""
    try:
        return agency_codes.validate(code)
    except AgencyCodeError as error:
        raise invalid(f"{context}: {error}" if context else str(error)) from None


def normalize_code(code: str) -> str:
    """The canonical code, or INVALID_ARGUMENT naming the wrong segment."""
    return _code(code)


def normalize(record: AgencyRecord) -> AgencyRecord:
    """Check a record's code, tier, status and successor; fill parent and province."""
    code = _code(record.code)
    if agency_codes.level1_of(code) == agency_codes.GROUP_LEVEL1:
        raise invalid(
            f"agency code {code}: segment M1M2M3 '{agency_codes.GROUP_LEVEL1}' is reserved "
            "for recipient groups"
        )
    name = record.name.strip()
    if not name:
        raise invalid(f"agency {code}: name is required")
    if record.tier not in (1, 2, 3, 4):
        raise invalid(f"agency {code}: tier {record.tier} is not one of 1, 2, 3, 4")
    plausible = agency_codes.plausible_tiers(code)
    if record.tier not in plausible:
        allowed = ", ".join(str(t) for t in sorted(plausible))
        raise invalid(
            f"agency {code}: tier {record.tier} does not fit its code (expected {allowed})"
        )
    status = record.status.strip().lower() or ACTIVE
    if status not in STATUSES:
        raise invalid(f"agency {code}: status '{record.status}' is not active or dissolved")
    successor = record.successor_code.strip()
    if successor:
        if status != DISSOLVED:
            raise invalid(f"agency {code}: only a dissolved agency has a successor")
        successor = _code(successor, context=f"agency {code}: successor")
        if successor == code:
            raise invalid(f"agency {code}: an agency cannot be its own successor")
    parent = agency_codes.parent_of(code) or ""
    if record.parent_code.strip() and record.parent_code.strip() != parent:
        raise invalid(
            f"agency {code}: parent_code {record.parent_code.strip()} does not match the parent "
            f"its code implies ({parent or 'none, it is a level-1 unit'})"
        )
    province = agency_codes.province_of(code) or ""
    if record.province_code.strip() and record.province_code.strip() != province:
        raise invalid(
            f"agency {code}: province_code {record.province_code.strip()} does not match "
            f"its code ({province or 'none, not a province'})"
        )
    return replace(
        record,
        code=code,
        name=name,
        kind=record.kind.strip(),
        status=status,
        successor_code=successor,
        email=record.email.strip(),
        telephone=record.telephone.strip(),
        address=record.address.strip(),
        website=record.website.strip(),
        parent_code=parent,
        province_code=province,
    )


@dataclass(frozen=True)
class UpsertOutcome:
    version: AgencyVersion
    changed: bool


def upsert_agency(
    *, session: Session, record: AgencyRecord, effective_from: date | None = None
) -> UpsertOutcome:
    """Record a new version from `effective_from` (default today); unchanged data is a no-op."""
    record = normalize(record)
    day = effective_from or today()
    if record.parent_code:
        parent = repository.version_as_of(session=session, code=record.parent_code, day=day)
        if parent is None:
            raise not_found(
                f"agency {record.code}: parent {record.parent_code} is not in the directory "
                f"on {day.isoformat()}"
            )
        if record.tier < parent.tier:
            raise invalid(
                f"agency {record.code}: tier {record.tier} is above its parent "
                f"{parent.code}'s tier {parent.tier}"
            )
    current = repository.open_version(session=session, code=record.code)
    if current is not None:
        if AgencyRecord.of_version(current) == record:
            return UpsertOutcome(current, changed=False)
        if current.valid_from > day:
            raise conflict(
                f"agency {record.code}: a change effective {day.isoformat()} would predate "
                f"the current version, effective {current.valid_from.isoformat()}"
            )
        current.valid_to = day
    elif not repository.agency_exists(session=session, code=record.code):
        session.add(Agency(code=record.code, created_at=now_utc()))
    version = AgencyVersion(
        valid_from=day, valid_to=None, recorded_at=now_utc(), **_columns(record)
    )
    session.add(version)
    session.flush()
    events.agency_changed(session=session, version=version)
    return UpsertOutcome(version, changed=True)


def _columns(record: AgencyRecord) -> dict[str, object]:
    return {f.name: getattr(record, f.name) for f in fields(record)}


def get_agency(*, session: Session, code: str, day: date) -> AgencyVersion:
    """The agency as it was on `day`."""
    code = _code(code)
    version = repository.version_as_of(session=session, code=code, day=day)
    if version is None:
        if repository.agency_exists(session=session, code=code):
            raise not_found(f"agency {code} is not in the directory on {day.isoformat()}")
        raise not_found(f"agency {code} is not in the directory")
    return version


def list_agencies(
    *, session: Session, day: date, province_code: str = "", tier: int = 0
) -> list[AgencyVersion]:
    """Agencies in effect on `day`, optionally of one level-1 unit (H49, G22) and one tier."""
    level1 = province_code.strip()
    if level1 and not re.fullmatch(r"[A-Z][0-9]{2}", level1):
        raise invalid(
            f"province_code '{level1}' must be a capital letter and two digits (e.g. H49)"
        )
    if tier not in (0, 1, 2, 3, 4):
        raise invalid(f"tier {tier} is not one of 1, 2, 3, 4")
    return list(repository.list_as_of(session=session, day=day, level1=level1, tier=tier))


@dataclass(frozen=True)
class Resolution:
    requested_code: str
    resolved_code: str
    found: bool
    reason: str
    group_code: str = ""


def _dissolved_on(session: Session, code: str, day: date) -> date:
    """The first day of the unbroken run of dissolved versions in effect on `day`."""
    since = day
    for status, valid_from in repository.statuses_until(session=session, code=code, day=day):
        if status != DISSOLVED:
            break
        since = valid_from
    return since


def resolve_recipient(*, session: Session, code: str, day: date) -> Resolution:
    """Who receives what is addressed to `code` on `day`, following successors (cycle-safe)."""
    try:
        requested = agency_codes.validate(code)
    except AgencyCodeError as error:
        return Resolution(code, "", False, f"recipient {error}")
    state = repository.state_as_of(session=session, code=requested, day=day)
    if state is None:
        if repository.agency_known(session=session, code=requested):
            reason = f"recipient {requested} is not in the directory on {day.isoformat()}"
        else:
            reason = f"recipient {requested} is not in the directory"
        return Resolution(requested, "", False, reason)
    status, successor = state
    if status != DISSOLVED:
        return Resolution(requested, requested, True, "")
    # One clause per hop: "A was dissolved on D; its successor B was dissolved on E; its
    # successor C receives".
    reason = f"{requested} was dissolved on {_dissolved_on(session, requested, day).isoformat()}"
    seen = [requested]
    while True:
        if not successor:
            return Resolution(requested, "", False, f"{reason} and has no successor")
        if successor in seen:
            loop = " → ".join([*seen, successor])
            reason += f"; its successor {successor} closes a loop ({loop}), so no agency receives"
            return Resolution(requested, "", False, reason)
        seen.append(successor)
        following = repository.state_as_of(session=session, code=successor, day=day)
        if following is None:
            return Resolution(
                requested, "", False, f"{reason}; its successor {successor} is not in the directory"
            )
        current, (status, next_successor) = successor, following
        if status != DISSOLVED:
            reason += f"; its successor {current} receives"
            return Resolution(requested, current, True, reason)
        dissolved = _dissolved_on(session, current, day).isoformat()
        reason += f"; its successor {current} was dissolved on {dissolved}"
        successor = next_successor


def resolve_recipients(*, session: Session, codes: list[str], day: date) -> list[Resolution]:
    return [resolve_recipient(session=session, code=code, day=day) for code in codes]


def set_credential(*, session: Session, client_id: str, secret: str, roles: list[str]) -> int:
    """Set (or, with an empty secret, revoke) a client's secret; returns the new version."""
    client_id = client_id.strip()
    if not _CLIENT_ID.fullmatch(client_id):
        raise invalid(
            f"client_id '{client_id}' must be an agency code or an id of letters and digits"
        )
    existing = repository.get_credential(session=session, client_id=client_id)
    if not secret:
        if existing is None:
            raise not_found(f"client {client_id} has no credential to revoke")
        existing.active = False
        existing.version += 1
        existing.previous_secret_hash = None
        existing.previous_valid_until = None
        existing.updated_at = now_utc()
        return existing.version
    wanted = sorted({role.strip() for role in roles if role.strip()})
    if not wanted:
        wanted = [ROLE_AGENCY] if agency_codes.is_valid(client_id) else []
    if not wanted:
        raise invalid(f"client {client_id}: roles are required (agency, admin)")
    unknown = [role for role in wanted if role not in ROLES]
    if unknown:
        raise invalid(f"client {client_id}: unknown roles {', '.join(unknown)} (agency, admin)")
    if ROLE_AGENCY in wanted:
        code = _code(client_id, context=f"client {client_id} has the agency role")
        if not repository.agency_exists(session=session, code=code):
            raise not_found(f"agency {code} is not in the directory")
    if len(secret) < credentials.MIN_SECRET_LENGTH:
        raise invalid(
            f"client {client_id}: a secret needs at least "
            f"{credentials.MIN_SECRET_LENGTH} characters"
        )
    hashed = credentials.hash_secret(secret)
    if existing is None:
        existing = Credential(client_id=client_id, version=0, client_cert_required=False)
        session.add(existing)
    existing.secret_hash = hashed
    # Setting a secret outright ends any overlap of a rotation.
    existing.previous_secret_hash = None
    existing.previous_valid_until = None
    existing.roles = " ".join(wanted)
    existing.active = True
    existing.version = (existing.version or 0) + 1
    existing.updated_at = now_utc()
    session.flush()
    return existing.version


@dataclass(frozen=True)
class CredentialCheck:
    valid: bool
    agency_code: str = ""
    roles: tuple[str, ...] = ()
    version: int = 0


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _fingerprint(text: str) -> str:
    normalized = text.strip().lower().replace(":", "")
    if not _FINGERPRINT.fullmatch(normalized):
        raise invalid(f"fingerprint '{text}' is not a SHA-256 hex digest")
    return normalized


def verify_credential(
    *, session: Session, client_id: str, secret: str, client_cert_fingerprint: str = ""
) -> CredentialCheck:
    """Whether the secret is the client's current one (or, during a rotation's overlap, the
    previous one), and the presented client certificate, if any, is the bound one."""
    stored = repository.get_credential(session=session, client_id=client_id.strip())
    if stored is None:
        credentials.secret_matches(secret, credentials.dummy_hash())
        return CredentialCheck(valid=False)
    matches = credentials.secret_matches(secret, stored.secret_hash)
    if not matches and stored.previous_secret_hash and stored.previous_valid_until:
        if now_utc() < _aware(stored.previous_valid_until):
            matches = credentials.secret_matches(secret, stored.previous_secret_hash)
    if not (matches and stored.active):
        return CredentialCheck(valid=False, version=stored.version)
    presented = client_cert_fingerprint.strip().lower().replace(":", "")
    bound = stored.client_cert_fingerprint
    if bound and (presented or stored.client_cert_required) and presented != bound:
        return CredentialCheck(valid=False, version=stored.version)
    roles = tuple(stored.roles.split())
    agency = stored.client_id if ROLE_AGENCY in roles else ""
    return CredentialCheck(valid=True, agency_code=agency, roles=roles, version=stored.version)


@dataclass(frozen=True)
class Rotation:
    version: int
    # When the previous secret stops; None when it stopped at once (an overlap of 0).
    previous_valid_until: datetime | None


DEFAULT_OVERLAP = timedelta(days=1)


def rotate_credential(
    *, session: Session, client_id: str, new_secret: str, overlap: timedelta | None = None
) -> Rotation:
    """Replace an active client's secret; the old one stays valid for `overlap` (default a day).

    With an overlap the version is kept, so tokens issued before the rotation stay valid to
    their expiry (a smooth hand-over). An overlap of 0 is the emergency rotation: the old secret
    stops now and the version is bumped, so every token issued before dies at once too (as on a
    revocation, an empty secret in SetCredential).
    """
    client_id = client_id.strip()
    stored = repository.get_credential(session=session, client_id=client_id)
    if stored is None or not stored.active:
        raise not_found(f"client {client_id} has no active credential to rotate")
    if len(new_secret) < credentials.MIN_SECRET_LENGTH:
        raise invalid(
            f"client {client_id}: a secret needs at least "
            f"{credentials.MIN_SECRET_LENGTH} characters"
        )
    overlap = DEFAULT_OVERLAP if overlap is None else overlap
    if overlap < timedelta(0) or overlap > timedelta(days=90):
        raise invalid(f"client {client_id}: overlap must be between 0 and 90 days")
    if credentials.secret_matches(new_secret, stored.secret_hash):
        raise invalid(f"client {client_id}: the new secret is the current one")
    if not overlap:
        stored.previous_secret_hash = None
        stored.previous_valid_until = None
        stored.secret_hash = credentials.hash_secret(new_secret)
        stored.version += 1
        stored.updated_at = now_utc()
        session.flush()
        return Rotation(version=stored.version, previous_valid_until=None)
    until = now_utc() + overlap
    stored.previous_secret_hash = stored.secret_hash
    stored.previous_valid_until = until
    stored.secret_hash = credentials.hash_secret(new_secret)
    stored.updated_at = now_utc()
    session.flush()
    return Rotation(version=stored.version, previous_valid_until=until)


def bind_client_certificate(
    *, session: Session, client_id: str, fingerprint: str, required: bool
) -> tuple[str, bool]:
    """Bind (or, with an empty fingerprint, unbind) the mTLS client certificate of a client."""
    client_id = client_id.strip()
    stored = repository.get_credential(session=session, client_id=client_id)
    if stored is None:
        raise not_found(f"client {client_id} has no credential")
    if not fingerprint.strip():
        stored.client_cert_fingerprint = None
        stored.client_cert_required = False
    else:
        normalized = _fingerprint(fingerprint)
        other = repository.client_by_certificate(session=session, fingerprint=normalized)
        if other is not None and other.client_id != client_id:
            raise conflict(
                f"certificate {normalized[:16]}… is already bound to client {other.client_id}"
            )
        stored.client_cert_fingerprint = normalized
        stored.client_cert_required = required
    stored.updated_at = now_utc()
    session.flush()
    return stored.client_cert_fingerprint or "", stored.client_cert_required


def verify_client_certificate(*, session: Session, fingerprint: str) -> CredentialCheck:
    """The active client a TLS client certificate is bound to, if any."""
    normalized = fingerprint.strip().lower().replace(":", "")
    if not _FINGERPRINT.fullmatch(normalized):
        return CredentialCheck(valid=False)
    stored = repository.client_by_certificate(session=session, fingerprint=normalized)
    if stored is None or not stored.active:
        return CredentialCheck(valid=False)
    roles = tuple(stored.roles.split())
    agency = stored.client_id if ROLE_AGENCY in roles else ""
    return CredentialCheck(valid=True, agency_code=agency, roles=roles, version=stored.version)


def credential_version(*, session: repository.Reader, client_id: str) -> tuple[bool, int]:
    """(active, version): tokens carrying an older version, or any for an inactive client, fail."""
    state = repository.credential_state(session=session, client_id=client_id.strip())
    return (False, 0) if state is None else state


def register_certificate(
    *,
    session: Session,
    agency_code: str,
    certificate: bytes,
    valid_from: date | None = None,
    valid_to: date | None = None,
) -> str:
    """Bind a signing certificate (DER; PEM accepted) to an agency for a period (default: the
    certificate's own validity); registering it again changes the period. Returns its fingerprint."""
    code = _code(agency_code)
    if not repository.agency_exists(session=session, code=code):
        raise not_found(f"agency {code} is not in the directory")
    try:
        if certificate.lstrip().startswith(b"-----BEGIN"):
            parsed = x509.load_pem_x509_certificate(certificate)
        else:
            parsed = x509.load_der_x509_certificate(certificate)
        subject = parsed.subject.rfc4514_string()
    except ValueError as error:
        raise invalid(
            f"certificate for agency {code} is not a well-formed X.509 certificate: {error}"
        ) from None
    if valid_from and valid_to and valid_to <= valid_from:
        raise invalid(
            f"certificate for agency {code}: valid_to {valid_to.isoformat()} is not after "
            f"valid_from {valid_from.isoformat()}"
        )
    der = parsed.public_bytes(Encoding.DER)
    fingerprint = certificate_fingerprint(der)
    existing = repository.find_certificate(session=session, agency_code=code, fingerprint=fingerprint)
    if existing is not None:
        if valid_from is not None:
            existing.valid_from = valid_from
        if valid_to is not None:
            existing.valid_to = valid_to
        session.flush()
        return fingerprint
    session.add(
        AgencyCertificate(
            agency_code=code,
            fingerprint=fingerprint,
            certificate_der=der,
            subject=subject,
            not_before=parsed.not_valid_before_utc.astimezone(UTC),
            not_after=parsed.not_valid_after_utc.astimezone(UTC),
            registered_at=now_utc(),
            valid_from=valid_from,
            valid_to=valid_to,
        )
    )
    session.flush()
    return fingerprint


class _Binding(Protocol):
    """What binding_period reads: an AgencyCertificate, or a row of repository.binding_periods."""

    @property
    def not_before(self) -> datetime: ...
    @property
    def not_after(self) -> datetime: ...
    @property
    def valid_from(self) -> date | None: ...
    @property
    def valid_to(self) -> date | None: ...


def binding_period(binding: _Binding) -> tuple[datetime, datetime]:
    """[start, end) of a binding: its own dates (Vietnam days) else the certificate's validity."""
    start = _aware(binding.not_before)
    end = _aware(binding.not_after)
    if binding.valid_from is not None:
        start = datetime.combine(binding.valid_from, datetime.min.time(), VIETNAM)
    if binding.valid_to is not None:
        end = datetime.combine(binding.valid_to, datetime.min.time(), VIETNAM)
    return start, end


def parse_moment(text: str) -> datetime:
    """An ISO date-time (naive = Vietnam time) or date (its start in Vietnam); empty = now."""
    text = text.strip()
    if not text:
        return now_utc()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"as_of '{text}' is not an ISO date or date-time") from None
    if len(text) == 10:  # a bare date: the whole day counts, so take its end
        moment = datetime.combine(moment.date(), datetime.max.time(), VIETNAM)
    return moment if moment.tzinfo else moment.replace(tzinfo=VIETNAM)


@dataclass(frozen=True)
class BindingCheck:
    bound: bool
    owners: list[str]
    reason: str = ""


def check_certificate(
    *, session: repository.Reader, agency_code: str, fingerprint: str, at: datetime | None = None
) -> BindingCheck:
    """Whether the certificate is registered to agency_code at `at` (default now), with every
    agency whose binding is in force then."""
    normalized = _fingerprint(fingerprint)
    moment = at or now_utc()
    bindings = repository.binding_periods(session=session, fingerprint=normalized)
    owners = sorted(
        {b.agency_code for b in bindings if binding_period(b)[0] <= moment < binding_period(b)[1]}
    )
    code = agency_code.strip()
    if code in owners:
        return BindingCheck(True, owners)
    own = [b for b in bindings if b.agency_code == code]
    if not own:
        reason = f"certificate {normalized[:16]}… is not registered to agency {code}"
    else:
        start, end = binding_period(own[0])
        reason = (
            f"certificate {normalized[:16]}… is registered to agency {code} only from "
            f"{start.isoformat()} to {end.isoformat()}, not at {moment.isoformat()}"
        )
    return BindingCheck(False, owners, reason)
