"""What counts, and how counts become the electronic-exchange report (pure functions).

Counting, from events only (so a replay from the beginning rebuilds identical numbers), in the
month of the event's occurred_at in Asia/Ho_Chi_Minh:
- documents_sent: DocumentVerified with TOTAL_PASSED, for the sender;
- documents_received: DeliveryUpdated creating a delivery (state delivered, previous_state ""),
  for the recipient (the successor, when the document was redirected);
- documents_refused: DocumentRefused, for the sender;
- statuses: every other DeliveryUpdated, for the agency that posted it (its actor_code; the
  recipient when no actor is named). A sender's recall request counts once per delivery.
DocumentSubmitted counts nothing: a document counts as sent once it has passed verification.

The report groups agencies by the directory's current attributes (province, tier). An agency
is *connected* in a period when it sent or received at least one document electronically in
it; `agencies` counts the directory's active agencies and `agencies_connected` only those, so
the share never passes 100%. Documents of agencies that are dissolved now still count under
their group; agencies the directory does not know are grouped under the level-1 unit of their
code (when it is a QCVN code) with tier 0.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lienthong.events.v1 import events_pb2
from lienthong_common.grpcutil import invalid

try:
    VIETNAM: timezone | ZoneInfo = ZoneInfo("Asia/Ho_Chi_Minh")
except ZoneInfoNotFoundError:  # no tz database in the image: Vietnam has kept UTC+7 since 1975
    VIETNAM = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")

PASSED = "TOTAL_PASSED"
CUMULATIVE = "cumulative"
MAX_MONTHS = 120
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_QCVN_CODE = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.([A-Z]\d{2})$")


@dataclass(frozen=True)
class Tally:
    agency_code: str
    month: str
    counter: str


@dataclass(frozen=True)
class AgencyInfo:
    code: str
    tier: int
    province_code: str
    status: str = "active"

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True)
class MonthCount:
    agency_code: str
    month: str
    documents_sent: int = 0
    documents_received: int = 0
    documents_refused: int = 0
    statuses: int = 0


@dataclass
class ReportRow:
    province_code: str
    tier: int
    month: str
    agencies: int = 0
    agencies_connected: int = 0
    documents_sent: int = 0
    documents_received: int = 0
    documents_refused: int = 0
    statuses: int = 0


@dataclass
class AgencyTotal:
    agency_code: str
    documents_sent: int = 0
    documents_received: int = 0
    documents_refused: int = 0


@dataclass
class Report:
    rows: list[ReportRow] = field(default_factory=list)
    agencies: list[AgencyTotal] = field(default_factory=list)


def month_of(at: datetime) -> str:
    """YYYY-MM of an instant as the calendar reads in Vietnam."""
    return at.astimezone(VIETNAM).strftime("%Y-%m")


def tallies_for(event: events_pb2.Event) -> list[Tally]:
    """The counters one event adds to (see the module docstring)."""
    month = month_of(event.occurred_at.ToDatetime(tzinfo=UTC))
    kind = event.WhichOneof("payload")
    if kind == "verified":
        if event.verified.indication != PASSED:
            return []
        return [Tally(event.verified.sender_code, month, "documents_sent")]
    if kind == "delivery_updated":
        update = event.delivery_updated
        if update.state == "delivered" and update.previous_state == "":
            return [Tally(update.recipient_code, month, "documents_received")]
        return [Tally(update.actor_code or update.recipient_code, month, "statuses")]
    if kind == "refused":
        return [Tally(event.refused.sender_code, month, "documents_refused")]
    return []


def parse_month(raw: str, *, name: str) -> str:
    if not _MONTH.match(raw):
        raise invalid(f"{name} {raw!r} is not a month; use YYYY-MM")
    return raw


def months_between(first: str, last: str) -> list[str]:
    """Every YYYY-MM from first to last inclusive."""
    year, month = int(first[:4]), int(first[5:])
    months = []
    while f"{year:04d}-{month:02d}" <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def report_months(*, from_month: str, to_month: str, earliest: str | None, today: date) -> list[str]:
    """The months a report covers: empty `to` is this month, empty `from` the first with data."""
    last = parse_month(to_month, name="to_month") if to_month else today.strftime("%Y-%m")
    first = parse_month(from_month, name="from_month") if from_month else min(earliest or last, last)
    if first > last:
        raise invalid(f"from_month {first} is after to_month {last}")
    months = months_between(first, last)
    if len(months) > MAX_MONTHS:
        raise invalid(f"a report covers at most {MAX_MONTHS} months; {first}..{last} is {len(months)}")
    return months


def attributes_of(code: str, directory: dict[str, AgencyInfo]) -> AgencyInfo:
    """The agency's directory entry, or a stand-in grouped by its code's level-1 unit, tier 0."""
    known = directory.get(code)
    if known is not None:
        return known
    match = _QCVN_CODE.match(code)
    return AgencyInfo(code=code, tier=0, province_code=match.group(1) if match else "", status="unknown")


def build_report(
    *,
    agencies: Sequence[AgencyInfo],
    counts: Iterable[MonthCount],
    months: Sequence[str],
    province_code: str = "",
) -> Report:
    """Rows per (province, tier, month) and per (province, tier, cumulative), plus per-agency totals."""
    directory = {a.code: a for a in agencies}
    wanted = set(months)

    def in_scope(info: AgencyInfo) -> bool:
        return not province_code or info.province_code == province_code

    groups: dict[tuple[str, int], dict[str, AgencyInfo]] = defaultdict(dict)
    for info in agencies:
        if in_scope(info):
            groups[(info.province_code, info.tier)][info.code] = info
    by_agency_month: dict[tuple[str, str], MonthCount] = {}
    for count in counts:
        info = attributes_of(count.agency_code, directory)
        if count.month not in wanted or not in_scope(info):
            continue
        by_agency_month[(count.agency_code, count.month)] = count
        groups[(info.province_code, info.tier)].setdefault(info.code, info)

    report = Report()
    for (province, tier), group in sorted(groups.items()):
        members = list(group.values())
        active = [m for m in members if m.active]
        connected_any: set[str] = set()
        cumulative = ReportRow(province, tier, CUMULATIVE, agencies=len(active))
        for month in months:
            row = ReportRow(province, tier, month, agencies=len(active))
            for member in members:
                done = by_agency_month.get((member.code, month))
                if done is None:
                    continue
                for target in (row, cumulative):
                    target.documents_sent += done.documents_sent
                    target.documents_received += done.documents_received
                    target.documents_refused += done.documents_refused
                    target.statuses += done.statuses
                if member.active and (done.documents_sent or done.documents_received):
                    row.agencies_connected += 1
                    connected_any.add(member.code)
            report.rows.append(row)
        cumulative.agencies_connected = len(connected_any)
        report.rows.append(cumulative)

    totals: dict[str, AgencyTotal] = {
        info.code: AgencyTotal(info.code)
        for group in groups.values()
        for info in group.values()
        if info.active
    }
    for (code, _month), count in by_agency_month.items():
        total = totals.setdefault(code, AgencyTotal(code))
        total.documents_sent += count.documents_sent
        total.documents_received += count.documents_received
        total.documents_refused += count.documents_refused
    report.agencies = [totals[code] for code in sorted(totals)]
    return report
