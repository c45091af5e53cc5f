"""Element access with path-carrying errors, and the policy's deviation bookkeeping."""

from __future__ import annotations

import datetime
import re
from typing import Any

from ._model import NS, EdxmlError, ParsePolicy
from .organ_id import validate_organ_id

_DATE = re.compile(r"[0-9]{4}/[0-9]{2}/[0-9]{2}")
_DOCUMENT_ID = re.compile(r"([^,]+),([0-9]{4}/[0-9]{2}/[0-9]{2}),(.+)")
MISSING = "required element is missing"
EMPTY = "must not be empty"


class Reader:
    """Reads QCVN-namespace children; accepts or refuses deviations as the policy says."""

    def __init__(self, policy: ParsePolicy, warnings: list[str]) -> None:
        self.policy = policy
        self.warnings = warnings

    def deviation(self, path: str, reason: str) -> None:
        if not self.policy.lenient:
            raise EdxmlError(path, reason)
        self.warnings.append(f"{path}: {reason}")

    # -- elements -------------------------------------------------------------------------
    @staticmethod
    def child(parent: Any, name: str) -> Any:
        # iterchildren's tag filter runs in C: half the cost of find()'s path matching.
        return next(parent.iterchildren(f"{{{NS}}}{name}"), None)

    @staticmethod
    def children(parent: Any, name: str) -> list[Any]:
        return list(parent.iterchildren(f"{{{NS}}}{name}"))

    def require(self, parent: Any, name: str, path: str) -> Any:
        element = self.child(parent, name)
        if element is None:
            raise EdxmlError(f"{path}/{name}", MISSING)
        return element

    def text(self, parent: Any, name: str) -> str:
        """Text of an optional child, verbatim; "" when absent."""
        element = self.child(parent, name)
        if element is None or element.text is None:
            return ""
        return str(element.text)

    def required_text(self, parent: Any, name: str, path: str) -> str:
        value = self.require(parent, name, path).text
        if value is None or not value.strip():
            raise EdxmlError(f"{path}/{name}", EMPTY)
        return str(value).strip()

    def date(self, parent: Any, name: str, path: str, *, required: bool) -> datetime.date | None:
        raw = self.required_text(parent, name, path) if required else self.text(parent, name).strip()
        if not raw:
            return None
        return parse_date(raw, f"{path}/{name}")

    def integer(self, parent: Any, name: str, path: str) -> int | None:
        raw = self.text(parent, name).strip()
        if not raw:
            return None
        try:
            return int(raw)
        except ValueError:
            raise EdxmlError(f"{path}/{name}", f"{raw!r} is not an integer") from None

    # -- identifiers ------------------------------------------------------------------------
    def organ_id(self, code: str, path: str) -> None:
        try:
            validate_organ_id(code, path=path)
        except EdxmlError as exc:
            self.deviation(path, f"not a QCVN 102 agency code: {exc.reason}")

    def document_id(self, value: str, path: str) -> None:
        match = _DOCUMENT_ID.fullmatch(value)
        if match is None:
            self.deviation(path, f"{value!r} is not of the form OrganId,yyyy/MM/dd,Number/Notation")
            return
        self.organ_id(match.group(1), path)


def parse_date(raw: str, path: str) -> datetime.date:
    if _DATE.fullmatch(raw):  # ASCII digits only, so the fields are where they are read from
        try:
            return datetime.date(int(raw[:4]), int(raw[5:7]), int(raw[8:10]))
        except ValueError:
            pass
    raise EdxmlError(path, f"{raw!r} is not a date in yyyy/MM/dd form")


def format_date(value: datetime.date) -> str:
    return f"{value.year:04d}/{value.month:02d}/{value.day:02d}"
