"""Reorganisations, the bundled national and Hải Phòng datasets, and as_of across 1 July 2025."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from lienthong_common.db import transaction
from lienthong_common.errors import DomainError, ErrorKind
from lienthong_directory import domain, groups, reorganize, transfer
from lienthong_directory.domain import AgencyRecord

from .conftest import add_agency

DATA = Path(__file__).resolve().parents[3] / "data" / "directory"
BEFORE = date(2025, 6, 30)
AFTER = date(2025, 7, 1)
HP = "000.00.00.H27"
HD = "000.00.00.H26"


def load(session: Session, name: str) -> transfer.ImportReport:
    report = transfer.import_content(
        session=session, fmt="json", content=(DATA / name).read_bytes(), default_day=date(2019, 1, 1)
    )
    assert report.rejected == [], report.rejected[:5]
    return report


@pytest.fixture(scope="module")
def haiphong_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    from lienthong_common.db import make_engine, make_session_factory
    from lienthong_directory.models import Base

    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('hp') / 'directory.db'}")
    Base.metadata.create_all(engine)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        load(session, "national.json")
        load(session, "haiphong.json")
    yield sessions
    engine.dispose()


def test_datasets_shape_in_2019(haiphong_db: sessionmaker[Session]) -> None:
    with transaction(haiphong_db) as session:
        day = date(2019, 6, 1)
        provinces = domain.list_agencies(session=session, day=day, tier=2)
        roots = [v for v in provinces if v.code.startswith("000.00.00.H")]
        assert len(roots) == 63
        assert all(v.illustrative for v in roots if v.code != "000.00.00.H49")
        hp = domain.list_agencies(session=session, day=day, province_code="H27")
        districts = [v for v in hp if v.kind == "district_peoples_committee"]
        assert len(districts) == 15
        assert sum(v.name.startswith("Ủy ban nhân dân quận") for v in districts) == 7
        assert sum(v.name.startswith("Ủy ban nhân dân huyện") for v in districts) == 8
        communes = [v for v in hp if v.tier == 4]
        assert 200 <= len(communes) <= 240
        departments = groups.expand(session=session, address="departments:H27", day=day)
        assert 20 <= len(departments) <= 26


def test_as_of_across_the_2025_reorganisation(haiphong_db: sessionmaker[Session]) -> None:
    with transaction(haiphong_db) as session:
        before = domain.list_agencies(session=session, day=BEFORE, province_code="H27")
        after = domain.list_agencies(session=session, day=AFTER, province_code="H27")
        active_after = [v for v in after if v.status == "active"]
        assert not [v for v in active_after if v.kind == "district_peoples_committee"]
        assert len([v for v in before if v.tier == 4 and v.status == "active"]) == 223
        communes_after = [v for v in active_after if v.tier == 4]
        assert 30 <= len(communes_after) < 100
        # Hải Dương: a province until 30 June, redirected to Hải Phòng from 1 July.
        assert domain.get_agency(session=session, code=HD, day=BEFORE).status == "active"
        gone = domain.resolve_recipient(session=session, code=HD, day=AFTER)
        assert gone.resolved_code == HP and "dissolved on 2025-07-01" in gone.reason
        assert domain.resolve_recipient(session=session, code=HD, day=BEFORE).resolved_code == HD
        # 34 provinces after the merges.
        roots = [
            v
            for v in domain.list_agencies(session=session, day=AFTER, tier=2)
            if v.code.startswith("000.00.00.H") and v.status == "active"
        ]
        assert len(roots) == 34


def test_successor_chain_from_an_old_commune(haiphong_db: sessionmaker[Session]) -> None:
    with transaction(haiphong_db) as session:
        commune = "000.01.31.H27"  # a ward of Hồng Bàng
        resolution = domain.resolve_recipient(session=session, code=commune, day=AFTER)
        assert resolution.found and resolution.resolved_code == "000.00.50.H27"
        district = domain.resolve_recipient(session=session, code="000.00.31.H27", day=AFTER)
        assert district.resolved_code == HP
        bach_long_vi = domain.resolve_recipient(session=session, code="000.00.45.H27", day=AFTER)
        assert bach_long_vi.resolved_code == "000.00.98.H27"
        merged = domain.get_agency(session=session, code="000.00.07.H27", day=AFTER)
        assert merged.name.startswith("Sở Nông nghiệp và Môi trường")


def test_rename_recode_merge_split_dissolve(sessions: sessionmaker[Session], quang_ninh: None) -> None:
    day = date(2024, 1, 1)
    with transaction(sessions) as session:
        add_agency(session, "000.00.05.H49", 3, "Sở A", on=date(2020, 1, 1))
        add_agency(session, "000.00.06.H49", 3, "Sở B", on=date(2020, 1, 1))
        versions = reorganize.reorganize(
            session=session,
            changes=[
                (reorganize.Rename("000.00.05.H49", "Sở A mới"), day),
                (reorganize.Recode("000.00.06.H49", "000.00.07.H49"), day),
                (
                    reorganize.Merge(
                        ["000.00.05.H49", "000.00.07.H49"],
                        AgencyRecord(code="000.00.08.H49", name="Sở AB", tier=3),
                    ),
                    date(2024, 6, 1),
                ),
                (
                    reorganize.Split(
                        "000.00.08.H49",
                        [
                            AgencyRecord(code="000.00.09.H49", name="Sở X", tier=3),
                            AgencyRecord(code="000.00.10.H49", name="Sở Y", tier=3),
                        ],
                        "000.00.09.H49",
                    ),
                    date(2025, 1, 1),
                ),
                (reorganize.Dissolve("000.00.10.H49", "000.00.09.H49"), date(2025, 2, 1)),
            ],
        )
        assert len(versions) == 10
        assert domain.get_agency(session=session, code="000.00.05.H49", day=day).name == "Sở A mới"
        assert domain.get_agency(session=session, code="000.00.05.H49", day=date(2023, 1, 1)).name == "Sở A"
        for old in ("000.00.05.H49", "000.00.06.H49", "000.00.07.H49", "000.00.08.H49"):
            resolved = domain.resolve_recipient(session=session, code=old, day=date(2025, 3, 1))
            assert resolved.resolved_code == "000.00.09.H49", resolved
        mid = domain.resolve_recipient(session=session, code="000.00.06.H49", day=date(2024, 3, 1))
        assert mid.resolved_code == "000.00.07.H49"


def test_reorganisation_errors_name_the_change(sessions: sessionmaker[Session], quang_ninh: None) -> None:
    with pytest.raises(DomainError) as caught, transaction(sessions) as session:
        reorganize.reorganize(
            session=session,
            changes=[
                (reorganize.Rename("000.00.12.H49", "Hoành Bồ mới"), date(2024, 1, 1)),
                (reorganize.Dissolve("000.00.03.H49", ""), date(2024, 1, 1)),
            ],
        )
    assert caught.value.kind is ErrorKind.CONFLICT
    assert "change #2 (dissolve)" in caught.value.message
    assert "000.01.03.H49" in caught.value.message  # the ward still under it
    with transaction(sessions) as session:
        # Nothing of the failed batch was kept.
        current = domain.get_agency(session=session, code="000.00.12.H49", day=date(2024, 1, 1))
        assert current.name == "Ủy ban nhân dân huyện Hoành Bồ"


def test_future_dated_change(sessions: sessionmaker[Session], quang_ninh: None) -> None:
    later = domain.today().replace(year=domain.today().year + 1)
    with transaction(sessions) as session:
        reorganize.reorganize(
            session=session, changes=[(reorganize.Rename("000.00.03.H49", "TP Hạ Long mới"), later)]
        )
        assert domain.get_agency(session=session, code="000.00.03.H49", day=domain.today()).name.endswith(
            "Hạ Long"
        )
        assert domain.get_agency(session=session, code="000.00.03.H49", day=later).name == "TP Hạ Long mới"
