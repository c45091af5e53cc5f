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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from lienthong_common import agency_codes
from lienthong_common.clock import now_utc
from lienthong_common.errors import DomainError, invalid, not_found
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
    codes = _member_codes(session, rule, base, members, day)
    return repository.versions_as_of(session=session, codes=codes, day=day)


def descendant_test(base: str) -> Callable[[str], bool]:
    """`lambda code: agency_codes.is_descendant(code, base)` for canonical codes (as stored),
    with `base` parsed once: group expansion tests every agency of a province against it."""
    parent = agency_codes.parse(base)
    fixed = [
        (index, segment)
        for index, segment in enumerate((parent.level4, parent.level3, parent.level2))
        if int(segment) != 0
    ]
    depth, level1 = parent.depth, parent.level1

    def test(code: str) -> bool:
        parts = code.split(".")
        if len(parts) != 4 or parts[3] != level1:
            return False
        if sum(1 for part in parts[:3] if part.strip("0")) <= depth:
            return False
        return all(parts[index] == segment for index, segment in fixed)

    return test


def _member_codes(
    session: Session, rule: str, base: str, members: tuple[str, ...], day: date
) -> list[str]:
    """The codes a group stands for on `day`, by code (column queries, no ORM objects)."""
    if rule == TIER4_UNDER:
        if repository.state_as_of(session=session, code=base, day=day) is None:
            raise not_found(f"agency {base} is not in the directory on {day.isoformat()}")
        below = descendant_test(base)
        rows = repository.members_as_of(
            session=session, day=day, level1=agency_codes.level1_of(base), tier=4
        )
        return [code for code, status, _ in rows if status == ACTIVE and below(code)]
    if rule == DEPARTMENTS_OF:
        rows = repository.members_as_of(session=session, day=day, level1=base, tier=3)
        return [
            code for code, status, kind in rows if status == ACTIVE and kind in DEPARTMENT_KINDS
        ]
    found: set[str] = set()
    for member in members:
        resolution = domain.resolve_recipient(session=session, code=member, day=day)
        # A found resolution's code is in effect on `day` (resolve_recipient checked).
        if resolution.found:
            found.add(resolution.resolved_code)
    return sorted(found)


def resolve_address(*, session: Session, address: str, day: date) -> list[Resolution]:
    """The resolutions of one address: an agency code (one, following successors) or a group
    address (one per member: requested_code is the address, group_code says which group)."""
    if not is_group_address(address):
        return [domain.resolve_recipient(session=session, code=address, day=day)]
    address = address.strip()
    try:
        rule, base, members, label = _rule_of(session, address)
        expanded = _member_codes(session, rule, base, members, day)
    except DomainError as error:
        return [Resolution(address, "", False, f"recipient group {error.message}")]
    if not expanded:
        reason = f"recipient group {label} has no members on {day.isoformat()}"
        return [Resolution(address, "", False, reason)]
    note = f"member of group {label} on {day.isoformat()}"
    return [Resolution(address, code, True, note, group_code=address) for code in expanded]


def resolve_recipients(*, session: Session, codes: list[str], day: date) -> list[Resolution]:
    """One resolution per agency code; one per member for a group address (requested_code is
    the address, group_code says which group), so a router delivers to each member."""
    resolutions: list[Resolution] = []
    for code in codes:
        resolutions.extend(resolve_address(session=session, address=code, day=day))
    return resolutions
