"""Import and export of the directory, CSV and JSON.

An import is all or nothing: every row is tried in one transaction, every rejected row is
reported with its reason, and the transaction is committed only when none was rejected (and it
is not a dry run). JSON may also carry dated `reorganizations` and `groups`:

    {"agencies": [{"code", "name", "tier", "kind", "status", "successor_code", "email",
                   "telephone", "address", "website", "illustrative", "effective_from"}, ...],
     "reorganizations": [{"kind": "rename|recode|merge|split|dissolve", "effective_from",
                          "note", ...fields of that kind...}, ...],
     "groups": [{"code", "name", "rule", "base_code", "members"}, ...]}

CSV has one agency per line under a header naming the same columns (`code,name,tier` required).
Rows are applied by effective date, parents before children, whatever order they are written in.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from lienthong_common import agency_codes
from lienthong_common.errors import DomainError, invalid
from lienthong_directory import domain, groups, reorganize, repository
from lienthong_directory.domain import AgencyRecord
from lienthong_directory.models import AgencyVersion

CSV_COLUMNS = (
    "code",
    "name",
    "tier",
    "kind",
    "status",
    "successor_code",
    "email",
    "telephone",
    "address",
    "website",
    "illustrative",
    "effective_from",
)
_RECORD_FIELDS = {f.name for f in fields(AgencyRecord)}
_TRUE = {"1", "true", "yes", "y", "x", "có"}


@dataclass(frozen=True)
class Rejected:
    row: int
    code: str
    reason: str


@dataclass
class ImportReport:
    applied: bool = False
    created_or_changed: int = 0
    unchanged: int = 0
    reorganizations: int = 0
    groups: int = 0
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True)
class _Row:
    number: int
    record: AgencyRecord
    day: date


def _day(value: Any, default: date, what: str) -> date:
    text = str(value or "").strip()
    return domain.parse_day(text, field=what) if text else default


def record_of(row: dict[str, Any]) -> AgencyRecord:
    """An AgencyRecord from a JSON object or CSV row; INVALID_ARGUMENT when it cannot be one."""
    code = str(row.get("code") or "").strip()
    if not code:
        raise invalid("code is required")
    if not str(row.get("name") or "").strip():
        raise invalid(f"agency {code}: name is required")
    raw_tier = row.get("tier")
    try:
        tier = int(str(raw_tier).strip())
    except ValueError:
        raise invalid(f"agency {code}: tier '{raw_tier}' is not a number 1-4") from None
    values: dict[str, Any] = {
        k: ("" if v is None else str(v))
        for k, v in row.items()
        if k in _RECORD_FIELDS and k not in ("tier", "illustrative")
    }
    illustrative = row.get("illustrative", False)
    values["illustrative"] = (
        illustrative
        if isinstance(illustrative, bool)
        else str(illustrative).strip().lower() in _TRUE
    )
    values["tier"] = tier
    return AgencyRecord(**values)


def _depth(code: str) -> int:
    try:
        return agency_codes.parse(code).depth
    except agency_codes.AgencyCodeError:
        return 0


def _change_of(item: dict[str, Any]) -> reorganize.Change:
    kind = str(item.get("kind", "")).strip().lower()
    if kind == "rename":
        return reorganize.Rename(str(item.get("code", "")), str(item.get("name", "")))
    if kind == "recode":
        return reorganize.Recode(str(item.get("code", "")), str(item.get("new_code", "")))
    if kind == "merge":
        into = item.get("into")
        target = record_of(into) if isinstance(into, dict) and into.get("name") else None
        if target is None:
            code = into.get("code", "") if isinstance(into, dict) else str(into or "")
            target = AgencyRecord(code=str(code), name="", tier=0)
        sources = item.get("source_codes") or []
        return reorganize.Merge([str(c) for c in sources], target)
    if kind == "split":
        targets = [record_of(r) for r in item.get("into") or [] if isinstance(r, dict)]
        return reorganize.Split(
            str(item.get("source_code", "")), targets, str(item.get("successor_code", ""))
        )
    if kind == "dissolve":
        return reorganize.Dissolve(str(item.get("code", "")), str(item.get("successor_code", "")))
    raise invalid(f"kind '{kind}' is not rename, recode, merge, split or dissolve")


def _group_of(item: dict[str, Any]) -> groups.GroupDefinition:
    members = item.get("members") or []
    if isinstance(members, str):
        members = members.split()
    return groups.GroupDefinition(
        code=str(item.get("code", "")),
        name=str(item.get("name", "")),
        rule=str(item.get("rule", groups.MEMBERS)),
        base_code=str(item.get("base_code", "")),
        members=tuple(str(m) for m in members),
    )


def parse_csv(content: bytes) -> list[dict[str, Any]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise invalid(f"CSV is not UTF-8: {error}") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = {"code", "name", "tier"} - set(reader.fieldnames or [])
    if missing:
        raise invalid(f"CSV header lacks {', '.join(sorted(missing))}")
    return [dict(row) for row in reader]


def import_content(
    *, session: Session, fmt: str, content: bytes, default_day: date
) -> ImportReport:
    """Try every row in the caller's transaction; the caller commits only if report.applied."""
    fmt = fmt.strip().lower() or "json"
    document: Any
    if fmt == "csv":
        document = {"agencies": parse_csv(content)}
        first_row = 2  # line 1 is the header
    elif fmt == "json":
        try:
            document = json.loads(content.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise invalid(f"JSON cannot be read: {error}") from None
        if isinstance(document, list):
            document = {"agencies": document}
        if not isinstance(document, dict):
            raise invalid("JSON must be a list of agencies or {'agencies': [...]}")
        first_row = 1
    else:
        raise invalid(f"format '{fmt}' is not json or csv")
    report = ImportReport()
    rows: list[_Row] = []
    for index, item in enumerate(document.get("agencies") or []):
        number = index + first_row
        if not isinstance(item, dict):
            report.rejected.append(Rejected(number, "", "not an object"))
            continue
        try:
            rows.append(
                _Row(number, record_of(item), _day(item.get("effective_from"), default_day, "effective_from"))
            )
        except DomainError as error:
            report.rejected.append(Rejected(number, str(item.get("code", "")), error.message))
    # Parents before children, earlier changes before later ones; ties keep the file's order.
    rows.sort(key=lambda r: (r.day, _depth(r.record.code), r.number))
    for row in rows:
        try:
            outcome = domain.upsert_agency(session=session, record=row.record, effective_from=row.day)
        except DomainError as error:
            report.rejected.append(Rejected(row.number, row.record.code, error.message))
            continue
        if outcome.changed:
            report.created_or_changed += 1
        else:
            report.unchanged += 1
    changes = document.get("reorganizations") or []
    dated: list[tuple[int, date, dict[str, Any]]] = []
    for index, item in enumerate(changes, 1):
        if not isinstance(item, dict):
            report.rejected.append(Rejected(index, "", f"reorganization #{index}: not an object"))
            continue
        try:
            dated.append((index, _day(item.get("effective_from"), default_day, "effective_from"), item))
        except DomainError as error:
            report.rejected.append(Rejected(index, "", f"reorganization #{index}: {error.message}"))
    for index, day, item in sorted(dated, key=lambda d: (d[1], d[0])):
        code = str(item.get("code") or item.get("source_code") or "")
        try:
            change = _change_of(item)
            reorganize.apply(session=session, change=change, day=day, applied=reorganize.Applied())
            report.reorganizations += 1
        except DomainError as error:
            report.rejected.append(
                Rejected(index, code, f"reorganization #{index}: {error.message}")
            )
    for index, item in enumerate(document.get("groups") or [], 1):
        try:
            if not isinstance(item, dict):
                raise invalid("not an object")
            groups.define_group(session=session, definition=_group_of(item))
            report.groups += 1
        except DomainError as error:
            code = str(item.get("code", "")) if isinstance(item, dict) else ""
            report.rejected.append(Rejected(index, code, f"group #{index}: {error.message}"))
    report.rejected.sort(key=lambda r: r.row)
    report.applied = not report.rejected
    return report


def _row_of(version: AgencyVersion, *, with_end: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {
        "code": version.code,
        "name": version.name,
        "tier": version.tier,
        "kind": version.kind,
        "status": version.status,
        "successor_code": version.successor_code,
        "email": version.email,
        "telephone": version.telephone,
        "address": version.address,
        "website": version.website,
        "illustrative": version.illustrative,
        "effective_from": version.valid_from.isoformat(),
    }
    if with_end:
        row["valid_to"] = version.valid_to.isoformat() if version.valid_to else ""
    return row


def export_content(
    *, session: Session, fmt: str, day: date, province_code: str = "", history: bool = False
) -> tuple[bytes, str]:
    """(content, content type) of the agencies on `day` (or, JSON only, their whole history)."""
    fmt = fmt.strip().lower() or "json"
    if fmt not in ("json", "csv"):
        raise invalid(f"format '{fmt}' is not json or csv")
    if history and fmt == "csv":
        raise invalid("history is exported as JSON only")
    if history:
        versions = list(repository.all_versions(session=session, level1=province_code.strip()))
    else:
        versions = domain.list_agencies(session=session, day=day, province_code=province_code)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for version in versions:
            row = _row_of(version)
            row["illustrative"] = "true" if version.illustrative else "false"
            writer.writerow(row)
        return buffer.getvalue().encode("utf-8"), "text/csv; charset=utf-8"
    body: dict[str, Any] = {
        "as_of": "" if history else day.isoformat(),
        "agencies": [_row_of(v, with_end=history) for v in versions],
        "groups": [
            {
                "code": g.code,
                "name": g.name,
                "rule": g.rule,
                "base_code": g.base_code,
                "members": g.members.split(),
            }
            for g in repository.list_groups(session=session)
        ],
    }
    text = json.dumps(body, ensure_ascii=False, indent=1)
    return text.encode("utf-8"), "application/json"
