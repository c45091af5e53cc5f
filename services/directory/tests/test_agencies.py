"""Agencies: validation, parents, effective-dated versions, idempotent upserts, events."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lienthong.events.v1 import events_pb2
from lienthong_common.db import transaction
from lienthong_common.errors import DomainError, ErrorKind
from lienthong_common.outbox import TOPIC_DIRECTORY
from lienthong_directory import domain
from lienthong_directory.domain import AgencyRecord
from lienthong_directory.models import OUTBOX, AgencyVersion

from .conftest import add_agency

JAN_2020 = date(2020, 1, 1)
REORG = date(2025, 7, 1)


def _outbox_rows(session: Session) -> list[tuple[str, str, bytes]]:
    table = OUTBOX.table
    return [
        (row.topic, row.key, row.payload)
        for row in session.execute(select(table.c.topic, table.c.key, table.c.payload).order_by(table.c.id))
    ]


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("000.00.XX.H49", "agency code 000.00.XX.H49: segment Y1Y2 'XX' must be two digits"),
        ("0000.00.01.H49", "segment V1V2V3 '0000' must be three digits"),
        ("000.0.01.H49", "segment Z1Z2 '0' must be two digits"),
        ("000.00.01.49H", "segment M1M2M3 '49H' must be a capital letter and two digits"),
        ("000.00.H49", "expected four dot-separated segments"),
    ],
)
def test_upsert_names_the_wrong_segment(session: Session, code: str, message: str) -> None:
    with pytest.raises(DomainError) as caught:
        add_agency(session, code, 3)
    assert caught.value.kind is ErrorKind.INVALID
    assert message in caught.value.message


def test_parent_is_derived_and_province_taken_from_level1(session: Session) -> None:
    add_agency(session, "000.00.00.H49", 2)
    add_agency(session, "000.00.01.H49", 3)
    commune = add_agency(session, "000.01.01.H49", 4).version
    assert commune.parent_code == "000.00.01.H49"
    assert commune.province_code == "H49"
    ministry = add_agency(session, "000.00.00.G09", 1, "Bộ Nội vụ").version
    assert ministry.parent_code == ""
    assert ministry.province_code == ""


def test_non_root_needs_its_parent(session: Session) -> None:
    with pytest.raises(DomainError) as caught:
        add_agency(session, "000.46.24.H44", 4)
    assert caught.value.kind is ErrorKind.NOT_FOUND
    assert "parent 000.00.24.H44 is not in the directory" in caught.value.message


def test_parent_given_by_caller_must_match_the_code(session: Session) -> None:
    add_agency(session, "000.00.00.H49", 2)
    record = AgencyRecord(code="000.00.01.H49", name="Sở", tier=3, parent_code="000.00.00.H44")
    with pytest.raises(DomainError, match="does not match the parent its code implies"):
        domain.upsert_agency(session=session, record=record)


@pytest.mark.parametrize(
    ("code", "tier", "expected"),
    [
        ("000.00.00.H49", 1, "expected 2"),
        ("000.00.00.G22", 2, "expected 1"),
        ("000.00.00.H49", 5, "is not one of 1, 2, 3, 4"),
        ("000.00.00.H49", 0, "is not one of 1, 2, 3, 4"),
    ],
)
def test_tier_must_fit_the_code(session: Session, code: str, tier: int, expected: str) -> None:
    with pytest.raises(DomainError, match=expected):
        add_agency(session, code, tier)


def test_child_tier_not_above_parent(session: Session) -> None:
    add_agency(session, "000.00.00.H49", 2)
    add_agency(session, "000.00.07.H49", 4)  # a commune directly under the province (post-2025)
    with pytest.raises(DomainError, match=r"tier 3 is above its parent 000\.00\.07\.H49.s tier 4"):
        add_agency(session, "000.01.07.H49", 3)


def test_dissolved_status_and_successor_rules(session: Session) -> None:
    add_agency(session, "000.00.00.H49", 2)
    with pytest.raises(DomainError, match="only a dissolved agency has a successor"):
        add_agency(session, "000.00.12.H49", 3, successor="000.00.00.H49")
    with pytest.raises(DomainError, match="cannot be its own successor"):
        add_agency(session, "000.00.12.H49", 3, status="dissolved", successor="000.00.12.H49")
    with pytest.raises(DomainError, match=r"successor: agency code 000\.00\.1\.H49: segment Y1Y2"):
        add_agency(session, "000.00.12.H49", 3, status="dissolved", successor="000.00.1.H49")
    with pytest.raises(DomainError, match="status 'merged' is not active or dissolved"):
        add_agency(session, "000.00.12.H49", 3, status="merged")


def test_as_of_answers_before_and_after_a_change(
    sessions: sessionmaker[Session], quang_ninh: None
) -> None:
    with transaction(sessions) as session:
        add_agency(
            session, "000.00.12.H49", 3, "Ủy ban nhân dân huyện Hoành Bồ",
            on=REORG, status="dissolved", successor="000.00.03.H49",
        )
    with transaction(sessions) as session:
        before = domain.get_agency(session=session, code="000.00.12.H49", day=date(2025, 6, 30))
        after = domain.get_agency(session=session, code="000.00.12.H49", day=REORG)
        assert (before.status, before.successor_code) == ("active", "")
        assert (after.status, after.successor_code) == ("dissolved", "000.00.03.H49")
        with pytest.raises(DomainError, match="is not in the directory on 2019-12-31"):
            domain.get_agency(session=session, code="000.00.12.H49", day=date(2019, 12, 31))
        with pytest.raises(DomainError, match=r"^agency 000.00.00.H99 is not in the directory$"):
            domain.get_agency(session=session, code="000.00.00.H99", day=REORG)
        versions = session.scalars(
            select(AgencyVersion).where(AgencyVersion.code == "000.00.12.H49").order_by(AgencyVersion.id)
        ).all()
        assert [(v.valid_from, v.valid_to) for v in versions] == [(JAN_2020, REORG), (REORG, None)]


def test_rename_keeps_history(sessions: sessionmaker[Session], quang_ninh: None) -> None:
    with transaction(sessions) as session:
        add_agency(session, "000.00.03.H49", 3, "Ủy ban nhân dân TP Hạ Long (mới)", on=REORG)
        old = domain.get_agency(session=session, code="000.00.03.H49", day=date(2024, 1, 1))
        new = domain.get_agency(session=session, code="000.00.03.H49", day=date(2025, 8, 1))
        assert old.name == "Ủy ban nhân dân thành phố Hạ Long"
        assert new.name == "Ủy ban nhân dân TP Hạ Long (mới)"


def test_change_may_not_predate_current_version(
    sessions: sessionmaker[Session], quang_ninh: None
) -> None:
    with transaction(sessions) as session:
        add_agency(session, "000.00.03.H49", 3, "Tên mới", on=REORG)
    with transaction(sessions) as session, pytest.raises(DomainError) as caught:
        add_agency(session, "000.00.03.H49", 3, "Tên khác", on=date(2024, 1, 1))
    assert caught.value.kind is ErrorKind.CONFLICT


def test_list_filters_by_province_tier_and_date(
    sessions: sessionmaker[Session], quang_ninh: None
) -> None:
    with transaction(sessions) as session:
        add_agency(session, "000.00.00.G22", 1, "Văn phòng Chính phủ", on=JAN_2020)
        add_agency(session, "000.00.05.H49", 3, "Sở mới", on=REORG)
        codes = [v.code for v in domain.list_agencies(session=session, day=date(2025, 1, 1))]
        assert codes == [
            "000.00.00.G22", "000.00.00.H49", "000.00.03.H49", "000.00.12.H49", "000.01.03.H49"
        ]
        tier3 = domain.list_agencies(session=session, day=REORG, province_code="H49", tier=3)
        assert [v.code for v in tier3] == ["000.00.03.H49", "000.00.05.H49", "000.00.12.H49"]
        g22 = domain.list_agencies(session=session, day=REORG, province_code="G22")
        assert [v.code for v in g22] == ["000.00.00.G22"]
        with pytest.raises(DomainError, match="province_code 'h49'"):
            domain.list_agencies(session=session, day=REORG, province_code="h49")


def test_upsert_is_idempotent(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        first = add_agency(session, "000.00.00.H49", 2, "Ủy ban nhân dân tỉnh Quảng Ninh")
        assert first.changed
    with transaction(sessions) as session:
        again = add_agency(session, "000.00.00.H49", 2, " Ủy ban nhân dân tỉnh Quảng Ninh ")
        assert not again.changed
        assert again.version.id == first.version.id
        assert session.scalar(select(func.count()).select_from(AgencyVersion)) == 1
        assert len(_outbox_rows(session)) == 1


def test_every_change_emits_agency_changed_keyed_by_code(session: Session) -> None:
    add_agency(session, "000.00.00.H49", 2, "Ủy ban nhân dân tỉnh Quảng Ninh", on=JAN_2020)
    add_agency(session, "000.00.00.H49", 2, "UBND tỉnh Quảng Ninh", on=REORG)
    rows = _outbox_rows(session)
    assert [(topic, key) for topic, key, _ in rows] == [
        (TOPIC_DIRECTORY, "000.00.00.H49"),
        (TOPIC_DIRECTORY, "000.00.00.H49"),
    ]
    event = events_pb2.Event.FromString(rows[-1][2])
    assert event.WhichOneof("payload") == "agency_changed"
    assert event.agency_changed.name == "UBND tỉnh Quảng Ninh"
    assert event.agency_changed.tier == 2
    assert event.agency_changed.province_code == "H49"
    assert event.agency_changed.status == "active"
    assert event.event_id


def test_outbox_row_shares_the_transaction(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError), transaction(sessions) as session:
        add_agency(session, "000.00.00.H49", 2)
        assert len(_outbox_rows(session)) == 1
        raise RuntimeError("crash before commit")
    with transaction(sessions) as session:
        assert _outbox_rows(session) == []
        assert session.scalar(select(func.count()).select_from(AgencyVersion)) == 0
    OUTBOX.wakeup.clear()
    with transaction(sessions) as session:
        add_agency(session, "000.00.00.H49", 2)
        assert not OUTBOX.wakeup.is_set()  # the relay is woken only after the commit
    with transaction(sessions) as session:
        assert len(_outbox_rows(session)) == 1
        assert OUTBOX.wakeup.is_set()
