"""Database reads and writes of the directory (keyword-only, each taking the caller's session)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from lienthong_directory.models import (
    Agency,
    AgencyCertificate,
    AgencyGroup,
    AgencyVersion,
    Credential,
    Exchange,
)


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
    return {e.agency_code: e.last_exchange_at for e in session.scalars(select(Exchange)).all()}


def record_exchange(*, session: Session, agency_code: str, at: datetime) -> None:
    """Keep the latest exchange time (replays and out-of-order events change nothing)."""
    existing = session.get(Exchange, agency_code)
    if existing is None:
        session.add(Exchange(agency_code=agency_code, last_exchange_at=at))
        session.flush()
        return
    current = existing.last_exchange_at
    if current.tzinfo is None:
        current = current.replace(tzinfo=at.tzinfo)
    if at > current:
        existing.last_exchange_at = at


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
