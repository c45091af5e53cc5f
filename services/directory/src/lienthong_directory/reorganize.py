"""Reorganisations as first-class, effective-dated operations: rename, re-code, merge, split,
dissolve with a successor. Each writes ordinary agency versions (so `as_of` sees the structure
before and after) in the caller's transaction; the caller's transaction makes a batch atomic."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

from sqlalchemy.orm import Session

from lienthong_common.errors import DomainError, conflict, invalid, not_found
from lienthong_directory import domain, repository
from lienthong_directory.domain import ACTIVE, DISSOLVED, AgencyRecord
from lienthong_directory.models import AgencyVersion


@dataclass(frozen=True)
class Rename:
    code: str
    name: str


@dataclass(frozen=True)
class Recode:
    code: str
    new_code: str


@dataclass(frozen=True)
class Merge:
    source_codes: list[str]
    into: AgencyRecord


@dataclass(frozen=True)
class Split:
    source_code: str
    into: list[AgencyRecord]
    successor_code: str


@dataclass(frozen=True)
class Dissolve:
    code: str
    successor_code: str = ""


Change = Rename | Recode | Merge | Split | Dissolve


@dataclass
class Applied:
    versions: list[AgencyVersion] = field(default_factory=list)


def _active(session: Session, code: str, day: date, role: str) -> AgencyVersion:
    version = repository.version_as_of(session=session, code=code, day=day)
    if version is None:
        raise not_found(f"{role} {code} is not in the directory on {day.isoformat()}")
    if version.status != ACTIVE:
        raise conflict(f"{role} {code} is already dissolved on {day.isoformat()}")
    return version


def _write(session: Session, record: AgencyRecord, day: date, applied: Applied) -> None:
    outcome = domain.upsert_agency(session=session, record=record, effective_from=day)
    if outcome.changed:
        applied.versions.append(outcome.version)


def _dissolve(
    session: Session, code: str, successor: str, day: date, applied: Applied
) -> None:
    version = _active(session, code, day, "agency")
    children = repository.active_children(session=session, code=code, day=day)
    if children:
        shown = ", ".join(children[:5]) + (" …" if len(children) > 5 else "")
        raise conflict(
            f"agency {code} still has {len(children)} active unit(s) under it on "
            f"{day.isoformat()} ({shown}); dissolve or merge them first"
        )
    if successor:
        _active(session, successor, day, f"successor of {code}")
    record = replace(
        AgencyRecord.of_version(version), status=DISSOLVED, successor_code=successor
    )
    _write(session, record, day, applied)


def apply(*, session: Session, change: Change, day: date, applied: Applied) -> None:
    """Apply one reorganisation effective `day`; raises a DomainError naming what is wrong."""
    if isinstance(change, Rename):
        code = domain.normalize_code(change.code)
        if not change.name.strip():
            raise invalid(f"rename of {code}: the new name is required")
        current = _active(session, code, day, "agency")
        _write(
            session, replace(AgencyRecord.of_version(current), name=change.name.strip()), day, applied
        )
    elif isinstance(change, Recode):
        code = domain.normalize_code(change.code)
        new_code = domain.normalize_code(change.new_code)
        if new_code == code:
            raise invalid(f"re-code of {code}: the new code is the same")
        current = _active(session, code, day, "agency")
        if repository.version_as_of(session=session, code=new_code, day=day) is not None:
            raise conflict(f"re-code of {code}: {new_code} is already in use on {day.isoformat()}")
        moved = replace(
            AgencyRecord.of_version(current), code=new_code, parent_code="", province_code=""
        )
        _write(session, moved, day, applied)
        _dissolve(session, code, new_code, day, applied)
    elif isinstance(change, Merge):
        if not change.source_codes:
            raise invalid("merge: at least one source agency is required")
        into = change.into
        target = domain.normalize_code(into.code)
        existing = repository.version_as_of(session=session, code=target, day=day)
        if existing is not None and existing.status != ACTIVE:
            raise conflict(f"merge into {target}: it is dissolved on {day.isoformat()}")
        if into.name.strip():
            _write(session, replace(into, code=target), day, applied)
        elif existing is None:
            raise invalid(f"merge into {target}: a new agency needs a name and tier")
        sources = [domain.normalize_code(c) for c in change.source_codes]
        if len(set(sources)) != len(sources):
            raise invalid(f"merge into {target}: a source is listed twice")
        for source in sources:
            if source != target:
                _dissolve(session, source, target, day, applied)
    elif isinstance(change, Split):
        source = domain.normalize_code(change.source_code)
        if not change.into:
            raise invalid(f"split of {source}: at least one new agency is required")
        successor = domain.normalize_code(change.successor_code) if change.successor_code else ""
        targets = [domain.normalize_code(r.code) for r in change.into]
        if successor and successor not in targets:
            _active(session, successor, day, f"successor of {source}")
        _active(session, source, day, "agency")
        for record in change.into:
            _write(session, record, day, applied)
        _dissolve(session, source, successor, day, applied)
    else:
        code = domain.normalize_code(change.code)
        successor = domain.normalize_code(change.successor_code) if change.successor_code else ""
        _dissolve(session, code, successor, day, applied)


def reorganize(*, session: Session, changes: list[tuple[Change, date]]) -> list[AgencyVersion]:
    """Apply changes in order (each with its effective day); all or nothing with the caller's
    transaction. Returns every version written."""
    applied = Applied()
    for index, (change, day) in enumerate(changes, 1):
        try:
            apply(session=session, change=change, day=day, applied=applied)
        except DomainError as error:
            if len(changes) == 1:
                raise
            kind = type(change).__name__.lower()
            raise DomainError(error.kind, f"change #{index} ({kind}): {error.message}") from None
    return applied.versions
