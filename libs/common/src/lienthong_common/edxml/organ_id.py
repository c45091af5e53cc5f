"""QCVN 102:2016 agency codes: ``V1V2V3.Z1Z2.Y1Y2.M1M2M3``."""

from __future__ import annotations

import re

from ._model import EdxmlError

_SEGMENTS = (
    (re.compile(r"[0-9]{3}"), "level-4 segment V1V2V3", "3 digits"),
    (re.compile(r"[0-9]{2}"), "level-3 segment Z1Z2", "2 digits"),
    (re.compile(r"[0-9]{2}"), "level-2 segment Y1Y2", "2 digits"),
    (re.compile(r"[A-Z][0-9]{2}"), "level-1 segment M1M2M3", "a capital letter and 2 digits"),
)


def validate_organ_id(code: str, *, path: str = "OrganId") -> None:
    """Raise EdxmlError naming the wrong segment unless ``code`` is a QCVN agency code."""
    parts = code.split(".")
    if len(parts) != len(_SEGMENTS):
        raise EdxmlError(
            path,
            f"{code!r} has {len(parts)} segment(s); an agency code has 4 (V1V2V3.Z1Z2.Y1Y2.M1M2M3)",
        )
    for part, (pattern, segment, shape) in zip(parts, _SEGMENTS, strict=True):
        if not pattern.fullmatch(part):
            raise EdxmlError(path, f"{code!r}: {segment} {part!r} must be {shape}")


def is_organ_id(code: str) -> bool:
    try:
        validate_organ_id(code)
    except EdxmlError:
        return False
    return True
