"""The same-working-day acknowledgement rule (QĐ 28/2018, NĐ 30/2020).

A recipient must tell the sender it received a document (01 arrived, 02 refused or 03
accepted; any later status implies it) by the end of the working day the document reached
it, in Vietnam's time zone. A document delivered on a weekend or holiday is due by the end of
the next working day. A delivery still unacknowledged after its deadline is overdue; it is
shown as a flag (GetDocumentState, the timeline, the inbox) and counted by CountOverdue, and
never changes the delivery's state: overdue is a fact about time, not a step of handling.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from lienthong_common.settings import DeadlineSettings

# Codes that acknowledge receipt, and the states that can only follow an acknowledgement.
ACKNOWLEDGING_CODES = frozenset({"01", "02", "03", "04", "05", "06", "15", "16"})
# States a delivery can be overdue in: still waiting for the recipient's first word.
AWAITING_ACK_STATES = frozenset({"delivered"})


@dataclass(frozen=True)
class WorkingCalendar:
    zone: ZoneInfo
    working_days: frozenset[int]
    holidays: frozenset[date]

    @classmethod
    def from_settings(cls, settings: DeadlineSettings) -> WorkingCalendar:
        return cls.of(settings.time_zone, settings.working_days, settings.holidays)

    @classmethod
    def of(cls, zone: str, working_days: Iterable[int], holidays: Iterable[date] = ()) -> WorkingCalendar:
        days = frozenset(working_days)
        if not days or not days <= set(range(7)):
            raise ValueError(f"working days must be weekday numbers 0..6 (Monday = 0), got {sorted(days)}")
        return cls(ZoneInfo(zone), days, frozenset(holidays))

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.working_days and day not in self.holidays

    def next_working_day(self, day: date) -> date:
        """`day` itself when it is a working day, else the first working day after it."""
        for _ in range(400):
            if self.is_working_day(day):
                return day
            day += timedelta(days=1)
        raise ValueError("no working day within 400 days: check the working days and holidays")

    def acknowledgement_deadline(self, delivered_at: datetime) -> datetime:
        """The end (local midnight) of the working day on or after the delivery's local date."""
        local_day = delivered_at.astimezone(self.zone).date()
        due_day = self.next_working_day(local_day)
        return datetime.combine(due_day + timedelta(days=1), time.min, tzinfo=self.zone)


def is_overdue(
    *, state: str, acknowledged_at: datetime | None, ack_deadline: datetime | None, now: datetime
) -> bool:
    return (
        ack_deadline is not None
        and acknowledged_at is None
        and state in AWAITING_ACK_STATES
        and now >= ack_deadline
    )
