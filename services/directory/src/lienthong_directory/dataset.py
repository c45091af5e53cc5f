"""Agency datasets (the bundled demo and `lienthong agencies import`), and seeding without gRPC.

A dataset is JSON: `{"agencies": [{"code", "name", "tier", "kind", "status",
"successor_code", "email", "telephone", "address", "website", "illustrative"}, ...]}`, parents
before their children. Other keys (such as `note`) are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from lienthong_directory import domain
from lienthong_directory.domain import AgencyRecord

_FIELDS = {f.name for f in fields(AgencyRecord)}


class DatasetError(ValueError):
    """A dataset file that cannot be read as agency records."""


def demo_dataset_path() -> Path:
    """data/directory/demo.json at the repository root (the service sits in services/directory)."""
    return Path(__file__).resolve().parents[4] / "data" / "directory" / "demo.json"


def parse_records(document: Any, *, source: str = "dataset") -> list[AgencyRecord]:
    """Agency records from a parsed JSON document (an object with `agencies`, or a list)."""
    rows = document.get("agencies") if isinstance(document, dict) else document
    if not isinstance(rows, list):
        raise DatasetError(f"{source}: expected a list of agencies or {{'agencies': [...]}}")
    records = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or "code" not in row or "name" not in row or "tier" not in row:
            raise DatasetError(f"{source}: agency #{index + 1} needs code, name and tier")
        values = {key: value for key, value in row.items() if key in _FIELDS}
        try:
            values["tier"] = int(values["tier"])
            values["illustrative"] = bool(values.get("illustrative", False))
            records.append(AgencyRecord(**values))
        except (TypeError, ValueError) as error:
            raise DatasetError(f"{source}: agency #{index + 1}: {error}") from None
    return records


def load_dataset(path: Path | str) -> list[AgencyRecord]:
    """Read a JSON dataset file into agency records."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: {error}") from None
    return parse_records(document, source=str(path))


@dataclass(frozen=True)
class SeedReport:
    created_or_changed: list[str]
    unchanged: list[str]


def seed(
    session: Session, records: list[AgencyRecord], *, effective_from: date | None = None
) -> SeedReport:
    """Upsert every record in the caller's transaction; rerunning with the same data is a no-op."""
    changed: list[str] = []
    unchanged: list[str] = []
    for record in records:
        outcome = domain.upsert_agency(
            session=session, record=record, effective_from=effective_from
        )
        (changed if outcome.changed else unchanged).append(outcome.version.code)
    return SeedReport(created_or_changed=changed, unchanged=unchanged)
