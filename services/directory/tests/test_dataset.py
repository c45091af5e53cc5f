"""The bundled demo dataset and gRPC-free seeding."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from lienthong_common import agency_codes
from lienthong_common.db import transaction
from lienthong_directory import domain
from lienthong_directory.dataset import DatasetError, demo_dataset_path, load_dataset, seed


def test_demo_dataset_has_what_the_demo_needs() -> None:
    records = load_dataset(demo_dataset_path())
    by_code = {r.code: r for r in records}
    assert by_code["000.00.00.G22"].name == "Văn phòng Chính phủ"
    assert by_code["000.00.00.G09"].name == "Bộ Nội vụ"
    assert by_code["000.00.00.H49"].tier == 2
    assert {"000.00.00.H44", "000.00.24.H44", "000.46.24.H44"} <= by_code.keys()
    tier3_h49 = [r for r in records if r.code.endswith("H49") and r.tier == 3 and r.status == "active"]
    tier4_h49 = [r for r in records if r.code.endswith("H49") and r.tier == 4]
    assert len(tier3_h49) == 3
    assert len(tier4_h49) == 4
    assert len({agency_codes.parent_of(r.code) for r in tier4_h49}) == 2
    # Parents come before children, so the CLI can upsert in file order.
    seen: set[str] = set()
    for record in records:
        parent = agency_codes.parent_of(record.code)
        assert parent is None or parent in seen, record.code
        seen.add(record.code)


def test_seed_is_idempotent_and_resolves(sessions: sessionmaker[Session]) -> None:
    records = load_dataset(demo_dataset_path())
    with transaction(sessions) as session:
        first = seed(session, records, effective_from=date(2025, 7, 1))
    assert len(first.created_or_changed) == len(records)
    with transaction(sessions) as session:
        again = seed(session, records)
        assert again.created_or_changed == []
        commune = domain.get_agency(session=session, code="000.46.24.H44", day=date(2025, 7, 2))
        assert commune.parent_code == "000.00.24.H44"
        assert commune.illustrative
        hoanh_bo = domain.resolve_recipient(
            session=session, code="000.00.12.H49", day=date(2025, 7, 2)
        )
        assert hoanh_bo.resolved_code == "000.00.03.H49"


def test_bad_dataset_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "agencies.json"
    path.write_text(json.dumps({"agencies": [{"code": "000.00.00.H49"}]}), encoding="utf-8")
    with pytest.raises(DatasetError, match="agency #1 needs code, name and tier"):
        load_dataset(path)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(DatasetError):
        load_dataset(path)
