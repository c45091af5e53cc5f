"""Recipients: unknown codes, dissolved agencies and their successor chains, as of a date."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session, sessionmaker

from lienthong_common.db import transaction
from lienthong_directory import domain

from .conftest import add_agency

REORG = date(2025, 7, 1)


def _resolve(sessions: sessionmaker[Session], code: str, day: date = REORG) -> domain.Resolution:
    with transaction(sessions) as session:
        return domain.resolve_recipient(session=session, code=code, day=day)


def _dissolve(sessions: sessionmaker[Session], code: str, tier: int, successor: str, on: date) -> None:
    with transaction(sessions) as session:
        add_agency(session, code, tier, on=on, status="dissolved", successor=successor)


def test_active_agency_receives_itself(sessions: sessionmaker[Session], quang_ninh: None) -> None:
    assert _resolve(sessions, "000.00.03.H49") == domain.Resolution(
        "000.00.03.H49", "000.00.03.H49", True, ""
    )


def test_unknown_recipient(sessions: sessionmaker[Session], quang_ninh: None) -> None:
    resolution = _resolve(sessions, "000.00.00.H99")
    assert not resolution.found
    assert resolution.reason == "recipient 000.00.00.H99 is not in the directory"


def test_malformed_recipient_names_the_segment(
    sessions: sessionmaker[Session], quang_ninh: None
) -> None:
    resolution = _resolve(sessions, "vxp.saas.03")
    assert not resolution.found
    assert resolution.reason.startswith("recipient agency code vxp.saas.03:")


def test_dissolved_agency_redirects_to_successor(
    sessions: sessionmaker[Session], quang_ninh: None
) -> None:
    _dissolve(sessions, "000.00.12.H49", 3, "000.00.00.H49", REORG)
    resolution = _resolve(sessions, "000.00.12.H49", date(2025, 8, 1))
    assert resolution.found
    assert resolution.resolved_code == "000.00.00.H49"
    assert resolution.reason == (
        "000.00.12.H49 was dissolved on 2025-07-01; its successor 000.00.00.H49 receives"
    )
    before = _resolve(sessions, "000.00.12.H49", date(2025, 6, 30))
    assert (before.found, before.resolved_code, before.reason) == (True, "000.00.12.H49", "")


def test_successor_chain_is_followed(sessions: sessionmaker[Session], quang_ninh: None) -> None:
    _dissolve(sessions, "000.01.03.H49", 4, "000.00.12.H49", date(2021, 1, 1))
    _dissolve(sessions, "000.00.12.H49", 3, "000.00.03.H49", REORG)
    resolution = _resolve(sessions, "000.01.03.H49", REORG)
    assert resolution.found
    assert resolution.resolved_code == "000.00.03.H49"
    assert resolution.reason == (
        "000.01.03.H49 was dissolved on 2021-01-01; its successor 000.00.12.H49 was dissolved "
        "on 2025-07-01; its successor 000.00.03.H49 receives"
    )
    # Between the two dissolutions the first successor still received.
    assert _resolve(sessions, "000.01.03.H49", date(2022, 1, 1)).resolved_code == "000.00.12.H49"


def test_dissolved_date_is_the_start_of_the_dissolution(
    sessions: sessionmaker[Session], quang_ninh: None
) -> None:
    _dissolve(sessions, "000.00.12.H49", 3, "000.00.03.H49", REORG)
    _dissolve(sessions, "000.00.12.H49", 3, "000.00.00.H49", date(2025, 9, 1))  # successor fixed
    resolution = _resolve(sessions, "000.00.12.H49", date(2025, 10, 1))
    assert resolution.reason == (
        "000.00.12.H49 was dissolved on 2025-07-01; its successor 000.00.00.H49 receives"
    )


def test_successor_cycle_is_detected(sessions: sessionmaker[Session], quang_ninh: None) -> None:
    _dissolve(sessions, "000.00.12.H49", 3, "000.00.03.H49", REORG)
    _dissolve(sessions, "000.00.03.H49", 3, "000.00.12.H49", REORG)
    resolution = _resolve(sessions, "000.00.12.H49")
    assert not resolution.found
    assert resolution.resolved_code == ""
    assert "closes a loop (000.00.12.H49 → 000.00.03.H49 → 000.00.12.H49)" in resolution.reason


def test_dissolved_without_successor_or_with_unknown_one(
    sessions: sessionmaker[Session], quang_ninh: None
) -> None:
    with transaction(sessions) as session:
        add_agency(session, "000.00.12.H49", 3, on=REORG, status="dissolved")
    resolution = _resolve(sessions, "000.00.12.H49")
    assert not resolution.found
    assert resolution.reason == "000.00.12.H49 was dissolved on 2025-07-01 and has no successor"
    _dissolve(sessions, "000.01.03.H49", 4, "000.00.00.H98", REORG)
    resolution = _resolve(sessions, "000.01.03.H49")
    assert not resolution.found
    assert resolution.reason.endswith("its successor 000.00.00.H98 is not in the directory")


def test_resolve_many_keeps_order(sessions: sessionmaker[Session], quang_ninh: None) -> None:
    with transaction(sessions) as session:
        found = domain.resolve_recipients(
            session=session, codes=["000.00.03.H49", "000.00.00.H99"], day=REORG
        )
    assert [(r.requested_code, r.found) for r in found] == [
        ("000.00.03.H49", True),
        ("000.00.00.H99", False),
    ]
