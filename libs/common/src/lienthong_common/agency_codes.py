"""QCVN 102:2016 agency codes: `V1V2V3.Z1Z2.Y1Y2.M1M2M3`, read right to left.

`M1M2M3` is the level-1 unit (a capital letter and two digits: `G` government bodies, `H`
provinces), `Y1Y2` level 2, `Z1Z2` level 3, `V1V2V3` level 4; an all-zero segment is unused.
A parent is found by zeroing the leftmost non-zero segment; `000.00.00.M1M2M3` is a root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEGMENT_NAMES = ("V1V2V3", "Z1Z2", "Y1Y2", "M1M2M3")
_DIGITS = {"V1V2V3": 3, "Z1Z2": 2, "Y1Y2": 2}
_LEVEL1 = re.compile(r"[A-Z][0-9]{2}")
PROVINCE_LETTER = "H"
GOVERNMENT_LETTER = "G"
# Reserved for recipient groups: `000.00.01.X00` is a group address, never an agency, and its
# QCVN shape lets it stand in edXML To/OrganId where strict writers demand a code.
GROUP_LEVEL1 = "X00"


class AgencyCodeError(ValueError):
    """A string that is not a well-formed QCVN 102 agency code; the message names the segment."""

    def __init__(self, code: str, reason: str, segment: str | None = None) -> None:
        super().__init__(f"agency code {code}: {reason}")
        self.code = code
        self.reason = reason
        self.segment = segment


@dataclass(frozen=True)
class AgencyCode:
    """A parsed agency code; segments kept as written (zero-padded strings)."""

    level4: str  # V1V2V3
    level3: str  # Z1Z2
    level2: str  # Y1Y2
    level1: str  # M1M2M3

    def __str__(self) -> str:
        return f"{self.level4}.{self.level3}.{self.level2}.{self.level1}"

    @property
    def depth(self) -> int:
        """How many levels below the level-1 unit: 0 for a root, up to 3."""
        lower = (self.level4, self.level3, self.level2)
        return sum(1 for segment in lower if int(segment) != 0)

    @property
    def is_root(self) -> bool:
        return self.depth == 0

    @property
    def is_province(self) -> bool:
        return self.level1.startswith(PROVINCE_LETTER)

    @property
    def root(self) -> AgencyCode:
        return AgencyCode("000", "00", "00", self.level1)

    @property
    def parent(self) -> AgencyCode | None:
        """Zero the leftmost non-zero segment; None for a root."""
        segments = [self.level4, self.level3, self.level2]
        for index, segment in enumerate(segments):
            if int(segment) != 0:
                segments[index] = "0" * len(segment)
                return AgencyCode(segments[0], segments[1], segments[2], self.level1)
        return None


def parse(code: str) -> AgencyCode:
    """Parse a code, raising AgencyCodeError that names the first wrong segment."""
    text = code.strip()
    if not text:
        raise AgencyCodeError(code, "is empty; expected V1V2V3.Z1Z2.Y1Y2.M1M2M3")
    parts = text.split(".")
    if len(parts) != 4:
        raise AgencyCodeError(
            text,
            f"expected four dot-separated segments V1V2V3.Z1Z2.Y1Y2.M1M2M3, got {len(parts)}",
        )
    for name, part in zip(SEGMENT_NAMES, parts, strict=True):
        if name == "M1M2M3":
            if not _LEVEL1.fullmatch(part):
                raise AgencyCodeError(
                    text,
                    f"segment {name} '{part}' must be a capital letter and two digits (e.g. H49)",
                    name,
                )
            continue
        width = _DIGITS[name]
        if len(part) != width or not part.isascii() or not part.isdigit():
            words = {2: "two", 3: "three"}[width]
            raise AgencyCodeError(text, f"segment {name} '{part}' must be {words} digits", name)
    return AgencyCode(parts[0], parts[1], parts[2], parts[3])


def validate(code: str) -> str:
    """The code in canonical form (surrounding spaces removed), or AgencyCodeError."""
    return str(parse(code))


def is_valid(code: str) -> bool:
    try:
        parse(code)
    except AgencyCodeError:
        return False
    return True


def parent_of(code: str) -> str | None:
    """The parent's code (leftmost non-zero segment zeroed); None for a level-1 root."""
    parent = parse(code).parent
    return None if parent is None else str(parent)


def province_of(code: str) -> str | None:
    """The province (M1M2M3 when it starts with H, e.g. H49); None for central bodies."""
    parsed = parse(code)
    return parsed.level1 if parsed.is_province else None


def level1_of(code: str) -> str:
    """The level-1 unit, e.g. G22 or H49."""
    return parse(code).level1


def root_of(code: str) -> str:
    """The level-1 unit's own code, e.g. 000.00.00.H49."""
    return str(parse(code).root)


def is_group_code(code: str) -> bool:
    """Whether `code` is a well-formed group address (level-1 unit X00, not the root itself)."""
    try:
        parsed = parse(code)
    except AgencyCodeError:
        return False
    return parsed.level1 == GROUP_LEVEL1 and not parsed.is_root


def is_descendant(code: str, ancestor: str) -> bool:
    """Whether `code` sits below `ancestor` in the code tree (the same non-zero segments)."""
    child, parent = parse(code), parse(ancestor)
    if child.level1 != parent.level1 or child.depth <= parent.depth:
        return False
    pairs = zip(
        (child.level4, child.level3, child.level2),
        (parent.level4, parent.level3, parent.level2),
        strict=True,
    )
    return all(int(theirs) == 0 or mine == theirs for mine, theirs in pairs)


def plausible_tiers(code: str) -> frozenset[int]:
    """Exchange tiers (1 central .. 4 commune) an agency with this code can belong to.

    Roots are tier 1 (government bodies) or tier 2 (provincial People's Committee); units
    directly under a province are its office (2), departments/districts (3) or, since the
    district tier was abolished in July 2025, communes (4); deeper units are tier 3 or 4.
    Units under a central body count as central (tier 1).
    """
    parsed = parse(code)
    if not parsed.is_province:
        return frozenset({1})
    if parsed.depth == 0:
        return frozenset({2})
    if parsed.depth == 1:
        return frozenset({2, 3, 4})
    return frozenset({3, 4})
