"""The same-working-day acknowledgement deadline, weekends and holidays, and the overdue flag."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from routing_support import HA_LONG, QUANG_NINH, FakeDirectory, verified_event
from sqlalchemy.orm import Session

from lienthong_routing import deliveries, repository
from lienthong_routing.deadlines import WorkingCalendar
from lienthong_routing.routed_documents import route_verified_document

VN = ZoneInfo("Asia/Ho_Chi_Minh")
WEEKDAYS = WorkingCalendar.of("Asia/Ho_Chi_Minh", range(5))


def vn(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=VN)


@pytest.mark.parametrize(
    ("delivered", "due"),
    [
        (vn(2026, 11, 25, 9, 0), vn(2026, 11, 26)),  # Wednesday: by Wednesday midnight
        (vn(2026, 11, 27, 23, 30), vn(2026, 11, 28)),  # Friday late: still Friday
        (vn(2026, 11, 28, 10, 0), vn(2026, 12, 1)),  # Saturday: by the end of Monday
        (vn(2026, 11, 29, 22, 0), vn(2026, 12, 1)),  # Sunday: by the end of Monday
    ],
)
def test_deadline_is_the_end_of_the_working_day(delivered: datetime, due: datetime) -> None:
    assert WEEKDAYS.acknowledgement_deadline(delivered) == due


def test_deadline_uses_vietnam_time_not_utc() -> None:
    # Friday 18:00 UTC is Saturday 01:00 in Hà Nội: due Monday.
    assert WEEKDAYS.acknowledgement_deadline(datetime(2026, 11, 27, 18, 0, tzinfo=UTC)) == vn(2026, 12, 1)


def test_holidays_and_custom_working_days() -> None:
    national_day = WorkingCalendar.of("Asia/Ho_Chi_Minh", range(5), [date(2026, 9, 2)])
    assert national_day.acknowledgement_deadline(vn(2026, 9, 2, 8)) == vn(2026, 9, 4)
    six_days = WorkingCalendar.of("Asia/Ho_Chi_Minh", range(6))
    assert six_days.acknowledgement_deadline(vn(2026, 11, 28, 10)) == vn(2026, 11, 29)
    with pytest.raises(ValueError):
        WorkingCalendar.of("Asia/Ho_Chi_Minh", [7])


def _route_at(session: Session, at: datetime, recipients: list[str]) -> str:
    event = verified_event(recipients=recipients)
    route_verified_document(session=session, event=event, directory=FakeDirectory(), calendar=WEEKDAYS)
    for delivery in repository.deliveries_of(session=session, document_id=event.document_id):
        delivery.delivered_at = at
        delivery.ack_deadline = WEEKDAYS.acknowledgement_deadline(at)
    session.flush()
    return event.document_id


def test_same_day_deadline_across_a_weekend(session: Session) -> None:
    """Delivered Friday evening, unacknowledged: overdue from Saturday 00:00, not before."""
    friday = vn(2026, 11, 27, 17, 0)
    document_id = _route_at(session, friday, [HA_LONG, QUANG_NINH])
    deliveries.post_status(session=session, document_id=document_id, actor_code=QUANG_NINH, code="01")

    before = deliveries.document_state(session=session, document_id=document_id, now=vn(2026, 11, 27, 23, 59))
    assert [before.overdue(d) for d in before.deliveries] == [False, False]

    saturday = vn(2026, 11, 28, 9, 0)
    view = deliveries.document_state(session=session, document_id=document_id, now=saturday)
    flags = {d.recipient_code: view.overdue(d) for d in view.deliveries}
    assert flags == {HA_LONG: True, QUANG_NINH: False}
    [line] = [e for e in view.timeline if e.state == "overdue"]
    assert line.recipient_code == HA_LONG and line.at == vn(2026, 11, 28)
    assert deliveries.count_overdue(session=session, now=saturday) == {HA_LONG: 1}
    assert [d.recipient_code for d, _ in deliveries.overdue_deliveries(session=session, now=saturday)] == [
        HA_LONG
    ]

    # Delivered on Saturday instead: due by the end of Monday, so not overdue on Monday afternoon.
    weekend_doc = _route_at(session, vn(2026, 11, 28, 10, 0), [HA_LONG])
    monday = vn(2026, 11, 30, 15, 0)
    weekend = deliveries.document_state(session=session, document_id=weekend_doc, now=monday)
    assert [weekend.overdue(d) for d in weekend.deliveries] == [False]
    tuesday = vn(2026, 12, 1, 0, 1)
    assert deliveries.count_overdue(session=session, now=tuesday) == {HA_LONG: 2}

    # A late acknowledgement clears the flag (the timeline keeps the history of statuses).
    deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="03")
    assert deliveries.count_overdue(session=session, now=tuesday) == {HA_LONG: 1}


def test_new_deliveries_get_todays_deadline(session: Session, directory: FakeDirectory) -> None:
    event = verified_event(recipients=[HA_LONG])
    route_verified_document(session=session, event=event, directory=directory, calendar=WEEKDAYS)
    [delivery] = repository.deliveries_of(session=session, document_id=event.document_id)
    assert delivery.ack_deadline is not None
    assert delivery.ack_deadline == WEEKDAYS.acknowledgement_deadline(delivery.delivered_at)
    assert delivery.ack_deadline - delivery.delivered_at <= timedelta(days=4)
