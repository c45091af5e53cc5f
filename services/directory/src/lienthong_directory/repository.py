"""Database reads and writes of the directory (keyword-only, each taking the caller's session)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from lienthong_directory.models import Agency, AgencyCertificate, AgencyVersion, Credential


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
