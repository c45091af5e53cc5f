"""Database reads and writes of the directory (keyword-only, each taking the caller's session)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import TypeAlias

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from lienthong_directory.models import (
    REVISION_ROW,
    Agency,
    AgencyCertificate,
    AgencyGroup,
    AgencyVersion,
    Credential,
    DirectoryRevision,
    Exchange,
    VdxpSystem,
    VdxpSystemAgency,
    VdxpSystemSecret,
)

# An agency's last-exchange time is rewritten only when it would move by at least this much:
# connection status looks at a window of days, and a busy agency would otherwise cost one UPDATE
# per delivery event.
EXCHANGE_GRANULARITY = timedelta(minutes=1)

Reader: TypeAlias = Session | Connection
"""The hot lookups below take either: a Session, or a plain Connection for a read-only call
that does not need the ORM (GetCredentialVersion, CheckCertificate, a cached resolution).
Their statements are built once (bound parameters), which is most of their cost otherwise."""

_CREDENTIAL_STATE = select(Credential.active, Credential.version).where(
    Credential.client_id == bindparam("client_id")
)
_REVISION = select(DirectoryRevision.revision).where(DirectoryRevision.id == REVISION_ROW)
_BINDING_PERIODS = (
    select(
        AgencyCertificate.agency_code,
        AgencyCertificate.not_before,
        AgencyCertificate.not_after,
        AgencyCertificate.valid_from,
        AgencyCertificate.valid_to,
    )
    .where(AgencyCertificate.fingerprint == bindparam("fingerprint"))
    .order_by(AgencyCertificate.agency_code)
)
_LAST_EXCHANGE = select(Exchange.last_exchange_at).where(Exchange.agency_code == bindparam("code"))
_INSERT_EXCHANGE = insert(Exchange)
_UPDATE_EXCHANGE = (
    update(Exchange)
    .where(Exchange.agency_code == bindparam("code"))
    .values(last_exchange_at=bindparam("at"))
)


def _connection(reader: Reader) -> Connection:
    return reader.connection() if isinstance(reader, Session) else reader


def _in_effect(day: date) -> ColumnElement[bool]:
    return and_(
        AgencyVersion.valid_from <= day,
        or_(AgencyVersion.valid_to.is_(None), AgencyVersion.valid_to > day),
    )


def agency_exists(*, session: Session, code: str) -> bool:
    return session.get(Agency, code) is not None


def version_as_of(*, session: Session, code: str, day: date) -> AgencyVersion | None:
    """The version of `code` in effect on `day`, if any."""
    return session.scalars(
        select(AgencyVersion).where(AgencyVersion.code == code, _in_effect(day))
    ).first()


def open_version(*, session: Session, code: str) -> AgencyVersion | None:
    """The latest version, the one with no end date."""
    return session.scalars(
        select(AgencyVersion).where(AgencyVersion.code == code, AgencyVersion.valid_to.is_(None))
    ).first()


def versions_until(*, session: Session, code: str, day: date) -> Sequence[AgencyVersion]:
    """Versions that started on or before `day`, latest first (empty intervals left out)."""
    return session.scalars(
        select(AgencyVersion)
        .where(
            AgencyVersion.code == code,
            AgencyVersion.valid_from <= day,
            or_(
                AgencyVersion.valid_to.is_(None),
                AgencyVersion.valid_to > AgencyVersion.valid_from,
            ),
        )
        .order_by(AgencyVersion.valid_from.desc(), AgencyVersion.id.desc())
    ).all()


def list_as_of(
    *, session: Session, day: date, level1: str = "", tier: int = 0
) -> Sequence[AgencyVersion]:
    """Versions in effect on `day`, optionally of one level-1 unit and one tier, by code."""
    query = select(AgencyVersion).where(_in_effect(day))
    if level1:
        query = query.where(AgencyVersion.code.endswith(f".{level1}"))
    if tier:
        query = query.where(AgencyVersion.tier == tier)
    return session.scalars(query.order_by(AgencyVersion.code)).all()


def get_credential(*, session: Session, client_id: str) -> Credential | None:
    return session.get(Credential, client_id)


def credential_state(*, session: Reader, client_id: str) -> tuple[bool, int] | None:
    """(active, version) of a client, one primary-key lookup without loading the row."""
    row = _connection(session).execute(_CREDENTIAL_STATE, {"client_id": client_id}).first()
    return None if row is None else (bool(row.active), int(row.version))


def directory_revision(*, session: Reader) -> int:
    """The revision counter (0 before the first write of a database made without migrations)."""
    value = _connection(session).execute(_REVISION).scalar()
    return int(value or 0)


def agency_known(*, session: Session, code: str) -> bool:
    """Whether `code` was ever an agency (no row loaded into the session)."""
    return session.execute(select(Agency.code).where(Agency.code == code)).first() is not None


def state_as_of(*, session: Session, code: str, day: date) -> Row[str, str] | None:
    """(status, successor_code) of `code` on `day`, if it is in effect then."""
    return session.execute(
        select(AgencyVersion.status, AgencyVersion.successor_code).where(
            AgencyVersion.code == code, _in_effect(day)
        )
    ).first()


def statuses_until(*, session: Session, code: str, day: date) -> Sequence[Row[str, date]]:
    """(status, valid_from) of the versions `versions_until` returns, in the same order."""
    return session.execute(
        select(AgencyVersion.status, AgencyVersion.valid_from)
        .where(
            AgencyVersion.code == code,
            AgencyVersion.valid_from <= day,
            or_(
                AgencyVersion.valid_to.is_(None),
                AgencyVersion.valid_to > AgencyVersion.valid_from,
            ),
        )
        .order_by(AgencyVersion.valid_from.desc(), AgencyVersion.id.desc())
    ).all()


def members_as_of(
    *, session: Session, day: date, level1: str, tier: int
) -> Sequence[Row[str, str, str]]:
    """(code, status, kind) of what `list_as_of` returns, without loading ORM objects."""
    return session.execute(
        select(AgencyVersion.code, AgencyVersion.status, AgencyVersion.kind)
        .where(_in_effect(day), AgencyVersion.code.endswith(f".{level1}"), AgencyVersion.tier == tier)
        .order_by(AgencyVersion.code)
    ).all()


def versions_as_of(*, session: Session, codes: Sequence[str], day: date) -> list[AgencyVersion]:
    """The versions of `codes` in effect on `day`, by code (chunked IN lists)."""
    found: list[AgencyVersion] = []
    for start in range(0, len(codes), 500):
        chunk = list(codes[start : start + 500])
        found.extend(
            session.scalars(
                select(AgencyVersion).where(AgencyVersion.code.in_(chunk), _in_effect(day))
            ).all()
        )
    return sorted(found, key=lambda v: v.code)


def certificate_owners(*, session: Session, fingerprint: str) -> list[str]:
    return list(
        session.scalars(
            select(AgencyCertificate.agency_code)
            .where(AgencyCertificate.fingerprint == fingerprint)
            .order_by(AgencyCertificate.agency_code)
        ).all()
    )


def find_certificate(
    *, session: Session, agency_code: str, fingerprint: str
) -> AgencyCertificate | None:
    return session.scalars(
        select(AgencyCertificate).where(
            AgencyCertificate.agency_code == agency_code,
            AgencyCertificate.fingerprint == fingerprint,
        )
    ).first()


def binding_periods(
    *, session: Reader, fingerprint: str
) -> Sequence[Row[str, datetime, datetime, date | None, date | None]]:
    """(agency_code, not_before, not_after, valid_from, valid_to) of a certificate's bindings,
    by agency code: one lookup on the fingerprint index, without the DER."""
    return _connection(session).execute(_BINDING_PERIODS, {"fingerprint": fingerprint}).all()


def certificate_bindings(*, session: Session, fingerprint: str) -> Sequence[AgencyCertificate]:
    return session.scalars(
        select(AgencyCertificate)
        .where(AgencyCertificate.fingerprint == fingerprint)
        .order_by(AgencyCertificate.agency_code)
    ).all()


def certificates_of(*, session: Session, agency_code: str) -> Sequence[AgencyCertificate]:
    return session.scalars(
        select(AgencyCertificate)
        .where(AgencyCertificate.agency_code == agency_code)
        .order_by(AgencyCertificate.registered_at, AgencyCertificate.id)
    ).all()


def client_by_certificate(*, session: Session, fingerprint: str) -> Credential | None:
    return session.scalars(
        select(Credential).where(Credential.client_cert_fingerprint == fingerprint)
    ).first()


def history(*, session: Session, code: str) -> Sequence[AgencyVersion]:
    """Every version of `code`, oldest first (empty intervals left out)."""
    return session.scalars(
        select(AgencyVersion)
        .where(
            AgencyVersion.code == code,
            or_(
                AgencyVersion.valid_to.is_(None),
                AgencyVersion.valid_to > AgencyVersion.valid_from,
            ),
        )
        .order_by(AgencyVersion.valid_from, AgencyVersion.id)
    ).all()


def all_versions(*, session: Session, level1: str = "") -> Sequence[AgencyVersion]:
    query = select(AgencyVersion).where(
        or_(AgencyVersion.valid_to.is_(None), AgencyVersion.valid_to > AgencyVersion.valid_from)
    )
    if level1:
        query = query.where(AgencyVersion.code.endswith(f".{level1}"))
    return session.scalars(query.order_by(AgencyVersion.valid_from, AgencyVersion.id)).all()


def get_group(*, session: Session, code: str) -> AgencyGroup | None:
    return session.get(AgencyGroup, code)


def list_groups(*, session: Session) -> Sequence[AgencyGroup]:
    return session.scalars(select(AgencyGroup).order_by(AgencyGroup.code)).all()


def active_credentials(*, session: Session) -> set[str]:
    return set(session.scalars(select(Credential.client_id).where(Credential.active)).all())


def exchanges(*, session: Session) -> dict[str, datetime]:
    rows = session.execute(select(Exchange.agency_code, Exchange.last_exchange_at)).all()
    return {code: at for code, at in rows}


def record_exchange(*, session: Session, agency_code: str, at: datetime) -> None:
    """Keep the latest exchange time (replays and out-of-order events change nothing), to within
    EXCHANGE_GRANULARITY: a time less than that after the stored one is not written, so a busy
    agency costs one primary-key read per delivery event and one write a minute."""
    connection = session.connection()
    current = connection.execute(_LAST_EXCHANGE, {"code": agency_code}).scalar()
    if current is None:
        connection.execute(_INSERT_EXCHANGE, {"agency_code": agency_code, "last_exchange_at": at})
        return
    if current.tzinfo is None:
        current = current.replace(tzinfo=at.tzinfo)
    if at - current >= EXCHANGE_GRANULARITY:
        connection.execute(_UPDATE_EXCHANGE, {"code": agency_code, "at": at})


def active_children(*, session: Session, code: str, day: date) -> list[str]:
    """Codes of active agencies directly under `code` on `day`."""
    return list(
        session.scalars(
            select(AgencyVersion.code)
            .where(
                AgencyVersion.parent_code == code,
                AgencyVersion.status == "active",
                _in_effect(day),
            )
            .order_by(AgencyVersion.code)
        ).all()
    )


def vdxp_system(*, session: Session, system_id: str) -> VdxpSystem | None:
    """A VDXP system with its agencies and secrets (loaded with it)."""
    return session.get(VdxpSystem, system_id)


def vdxp_systems(*, session: Session, agency_code: str = "") -> Sequence[VdxpSystem]:
    """Every VDXP system, or those acting for one agency, by system id."""
    query = select(VdxpSystem)
    if agency_code:
        query = query.where(
            VdxpSystem.system_id.in_(
                select(VdxpSystemAgency.system_id).where(VdxpSystemAgency.agency_code == agency_code)
            )
        )
    return session.scalars(query.order_by(VdxpSystem.system_id)).all()


def vdxp_served_agencies(*, session: Session) -> set[str]:
    """Codes of the agencies some VDXP system acts for (every system has a valid secret)."""
    return set(session.scalars(select(VdxpSystemAgency.agency_code).distinct()).all())


def vdxp_secrets_not_under(*, session: Session, master_key_id: str) -> Sequence[VdxpSystemSecret]:
    """Secrets whose data key is wrapped under another master key than this one."""
    return session.scalars(
        select(VdxpSystemSecret)
        .where(VdxpSystemSecret.master_key_id != master_key_id)
        .order_by(VdxpSystemSecret.id)
    ).all()


def vdxp_secret_count(*, session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(VdxpSystemSecret)) or 0)
