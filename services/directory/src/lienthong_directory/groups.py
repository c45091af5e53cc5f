"""Recipient groups and their expansion, as of a day, inside recipient resolution.

Addresses (what a sender writes where an agency code would go):
- a defined group's code, QCVN-shaped under the reserved level-1 unit X00 (`000.00.01.X00`), so
  it passes strict edXML writers in To/OrganId; an administrator defines it with a rule:
  `members` (a named list), `tier4_under` (every tier-4 agency below an agency) or
  `departments_of` (every department and board of a province);
- the same rules written out, for the API and the CLI: `tier4:000.00.00.H31`, `departments:H31`.

Expansion is deterministic: active agencies on the day, ordered by code; a named group's
dissolved members are followed to their successors and duplicates dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from lienthong_common import agency_codes
from lienthong_common.grpcutil import DomainError, invalid, not_found
from lienthong_common.outbox import now_utc
from lienthong_directory import domain, repository
from lienthong_directory.domain import ACTIVE, Resolution
from lienthong_directory.models import AgencyGroup, AgencyVersion

MEMBERS = "members"
TIER4_UNDER = "tier4_under"
DEPARTMENTS_OF = "departments_of"
RULES = (MEMBERS, TIER4_UNDER, DEPARTMENTS_OF)
DEPARTMENT_KINDS = ("department", "board")
_PREFIXES = {"tier4:": TIER4_UNDER, "departments:": DEPARTMENTS_OF}


@dataclass(frozen=True)
class GroupDefinition:
    code: str
    name: str
    rule: str
    base_code: str = ""
    members: tuple[str, ...] = ()


def is_group_address(address: str) -> bool:
    text = address.strip()
    return agency_codes.is_group_code(text) or any(text.startswith(p) for p in _PREFIXES)


def _province(base: str) -> str:
    text = base.strip()
    if agency_codes.is_valid(text):
        parsed = agency_codes.parse(text)
        if parsed.is_root and parsed.is_province:
            return parsed.level1
    elif len(text) == 3 and agency_codes.is_valid(f"000.00.00.{text}"):
        if text.startswith(agency_codes.PROVINCE_LETTER):
            return text
    raise invalid(f"'{base}' is not a province (e.g. H31 or 000.00.00.H31)")


def _check(definition: GroupDefinition) -> GroupDefinition:
    code = definition.code.strip()
    if not agency_codes.is_group_code(code):
        raise invalid(
            f"group code '{code}' must be a QCVN-shaped code under the reserved level-1 unit "
            f"{agency_codes.GROUP_LEVEL1} (e.g. 000.00.01.{agency_codes.GROUP_LEVEL1})"
        )
    if not definition.name.strip():
        raise invalid(f"group {code}: a name is required")
    if definition.rule not in RULES:
        raise invalid(f"group {code}: rule '{definition.rule}' is not one of {', '.join(RULES)}")
    base = definition.base_code.strip()
    members: tuple[str, ...] = ()
    if definition.rule == MEMBERS:
        if not definition.members:
            raise invalid(f"group {code}: a named group needs members")
        members = tuple(
            sorted({domain.normalize_code(m) for m in definition.members if m.strip()})
        )
        base = ""
    elif definition.rule == TIER4_UNDER:
        base = domain.normalize_code(base)
    else:
        base = _province(base)
    return GroupDefinition(code, definition.name.strip(), definition.rule, base, members)


def define_group(*, session: Session, definition: GroupDefinition) -> AgencyGroup:
    """Create or replace a group (its members need not exist yet: expansion is as of a day)."""
    checked = _check(definition)
    group = repository.get_group(session=session, code=checked.code)
    if group is None:
        group = AgencyGroup(code=checked.code)
        session.add(group)
    group.name = checked.name
    group.rule = checked.rule
    group.base_code = checked.base_code
    group.members = " ".join(checked.members)
    group.updated_at = now_utc()
    session.flush()
    return group


def delete_group(*, session: Session, code: str) -> AgencyGroup:
    group = repository.get_group(session=session, code=code.strip())
    if group is None:
        raise not_found(f"group {code.strip()} is not defined")
    session.delete(group)
    session.flush()
    return group


def _rule_of(session: Session, address: str) -> tuple[str, str, tuple[str, ...], str]:
    """(rule, base, members, label) of an address; NOT_FOUND for an undefined group code."""
    text = address.strip()
    for prefix, rule in _PREFIXES.items():
        if text.startswith(prefix):
            base = text[len(prefix) :]
            if rule == TIER4_UNDER:
                return rule, domain.normalize_code(base), (), text
            return rule, _province(base), (), text
    group = repository.get_group(session=session, code=text)
    if group is None:
        raise not_found(f"group {text} is not defined")
    return group.rule, group.base_code, tuple(group.members.split()), f"{text} ({group.name})"


def expand(*, session: Session, address: str, day: date) -> list[AgencyVersion]:
    """The active agencies a group address stands for on `day`, by code."""
    rule, base, members, _ = _rule_of(session, address)
    return _members(session, rule, base, members, day)


def _members(
    session: Session, rule: str, base: str, members: tuple[str, ...], day: date
) -> list[AgencyVersion]:
    if rule == TIER4_UNDER:
        if repository.version_as_of(session=session, code=base, day=day) is None:
            raise not_found(f"agency {base} is not in the directory on {day.isoformat()}")
        level1 = agency_codes.level1_of(base)
        return [
            v
            for v in repository.list_as_of(session=session, day=day, level1=level1, tier=4)
            if v.status == ACTIVE and agency_codes.is_descendant(v.code, base)
        ]
    if rule == DEPARTMENTS_OF:
        return [
            v
            for v in repository.list_as_of(session=session, day=day, level1=base, tier=3)
            if v.status == ACTIVE and v.kind in DEPARTMENT_KINDS
        ]
    found: dict[str, AgencyVersion] = {}
    for member in members:
        resolution = domain.resolve_recipient(session=session, code=member, day=day)
        if resolution.found and resolution.resolved_code not in found:
            version = repository.version_as_of(
                session=session, code=resolution.resolved_code, day=day
            )
            if version is not None:
                found[version.code] = version
    return [found[code] for code in sorted(found)]


def resolve_recipients(*, session: Session, codes: list[str], day: date) -> list[Resolution]:
    """One resolution per agency code; one per member for a group address (requested_code is
    the address, group_code says which group), so a router delivers to each member."""
    resolutions: list[Resolution] = []
    for code in codes:
        if not is_group_address(code):
            resolutions.append(domain.resolve_recipient(session=session, code=code, day=day))
            continue
        address = code.strip()
        try:
            rule, base, members, label = _rule_of(session, address)
            expanded = _members(session, rule, base, members, day)
        except DomainError as error:
            resolutions.append(Resolution(address, "", False, f"recipient group {error.message}"))
            continue
        if not expanded:
            reason = f"recipient group {label} has no members on {day.isoformat()}"
            resolutions.append(Resolution(address, "", False, reason))
            continue
        note = f"member of group {label} on {day.isoformat()}"
        resolutions.extend(
            Resolution(address, v.code, True, note, group_code=address) for v in expanded
        )
    return resolutions
