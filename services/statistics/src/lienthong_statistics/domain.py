"""What counts, and how counts become the electronic-exchange report (pure functions).

Counting, from events only (so a replay from the beginning rebuilds identical numbers), in the
month of the event's occurred_at in Asia/Ho_Chi_Minh:
- documents_submitted: DocumentSubmitted, for the sender;
- documents_sent: DocumentVerified with TOTAL_PASSED, for the sender;
- documents_received: DeliveryUpdated creating a delivery (state delivered, previous_state ""),
  for the recipient (the successor, when the document was redirected);
- documents_refused: DocumentRefused, for the sender;
- statuses: every other DeliveryUpdated, for the agency that posted it (its actor_code; the
  recipient when no actor is named). A sender's recall request counts once per delivery.
- acknowledgements: a delivery awaits its recipient's first status (any update the recipient
  makes, 01 arrived included); the law asks for it the same day, so one that comes on a later
  Vietnamese calendar day counts as acknowledgements_late, and one still missing after the
  day of delivery is overdue.

Paper traffic is not an event: agencies report it per month (paper issued, paper received,
issued electronically outside the axis), and the report puts it beside the electronic counts:
- send rate = sent / (sent + paper issued);
- receive rate = received / (received + paper received);
- electronic share of all documents issued = (sent + electronic other) / (sent + electronic
  other + paper issued).
A rate is absent (None) when its denominator is 0.

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
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime

from lienthong.events.v1 import events_pb2
from lienthong_common.clock import VIETNAM
from lienthong_common.errors import invalid

PASSED = "TOTAL_PASSED"
CUMULATIVE = "cumulative"
MAX_MONTHS = 120
MAX_PAPER_COUNT = 10_000_000  # per agency per month; far above any real agency's volume
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_QCVN_CODE = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.([A-Z]\d{2})$")
# The sender's recall request changes a delivery without its recipient saying anything.
_NOT_AN_ACKNOWLEDGEMENT = frozenset({"recall_requested"})


@dataclass(frozen=True)
class Tally:
    agency_code: str
    month: str
    counter: str


@dataclass(frozen=True)
class AwaitAcknowledgement:
    """A delivery was created: its recipient owes an acknowledgement by the end of `day`."""

    document_id: str
    recipient_code: str
    day: str


@dataclass(frozen=True)
class Acknowledged:
    """The recipient said something about the delivery on `day` (in `month`)."""

    document_id: str
    recipient_code: str
    day: str
    month: str


@dataclass(frozen=True)
class Effects:
    tallies: list[Tally] = field(default_factory=list)
    awaits: list[AwaitAcknowledgement] = field(default_factory=list)
    acknowledgements: list[Acknowledged] = field(default_factory=list)


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
    documents_submitted: int = 0


@dataclass(frozen=True)
class PaperCount:
    """One agency's reported paper traffic in one month."""

    agency_code: str
    month: str
    paper_issued: int = 0
    paper_received: int = 0
    electronic_issued_other: int = 0


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


@dataclass
class Measures:
    """Sums over agencies and months, and the rates they give."""

    documents_sent: int = 0
    documents_received: int = 0
    documents_refused: int = 0
    statuses: int = 0
    documents_submitted: int = 0
    paper_issued: int = 0
    paper_received: int = 0
    electronic_issued_other: int = 0

    def add_count(self, count: MonthCount) -> None:
        self.documents_sent += count.documents_sent
        self.documents_received += count.documents_received
        self.documents_refused += count.documents_refused
        self.statuses += count.statuses
        self.documents_submitted += count.documents_submitted

    def add_paper(self, paper: PaperCount) -> None:
        self.paper_issued += paper.paper_issued
        self.paper_received += paper.paper_received
        self.electronic_issued_other += paper.electronic_issued_other

    def add(self, other: Measures) -> None:
        for f in fields(Measures):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def send_rate(self) -> float | None:
        return _ratio(self.documents_sent, self.documents_sent + self.paper_issued)

    @property
    def receive_rate(self) -> float | None:
        return _ratio(self.documents_received, self.documents_received + self.paper_received)

    @property
    def electronic_share(self) -> float | None:
        electronic = self.documents_sent + self.electronic_issued_other
        return _ratio(electronic, electronic + self.paper_issued)


@dataclass
class ReportRow(Measures):
    province_code: str = ""
    tier: int = 0
    month: str = ""
    agencies: int = 0
    agencies_connected: int = 0

    @property
    def connected_share(self) -> float | None:
        return _ratio(self.agencies_connected, self.agencies)


@dataclass
class AgencyTotal(Measures):
    agency_code: str = ""
    province_code: str = ""
    tier: int = 0
    month: str = CUMULATIVE
    connected: bool = False


@dataclass
class Report:
    months: list[str] = field(default_factory=list)
    rows: list[ReportRow] = field(default_factory=list)
    provinces: list[ReportRow] = field(default_factory=list)
    agencies: list[AgencyTotal] = field(default_factory=list)
    agency_months: list[AgencyTotal] = field(default_factory=list)


def month_of(at: datetime) -> str:
    """YYYY-MM of an instant as the calendar reads in Vietnam."""
    return at.astimezone(VIETNAM).strftime("%Y-%m")


def day_of(at: datetime) -> str:
    """YYYY-MM-DD of an instant as the calendar reads in Vietnam."""
    return at.astimezone(VIETNAM).strftime("%Y-%m-%d")


def effects_for(event: events_pb2.Event) -> Effects:
    """The counters one event adds to and the acknowledgements it opens or closes."""
    when = event.occurred_at.ToDatetime(tzinfo=UTC)
    month = month_of(when)
    kind = event.WhichOneof("payload")
    if kind == "submitted":
        return Effects([Tally(event.submitted.sender_code, month, "documents_submitted")])
    if kind == "verified":
        if event.verified.indication != PASSED:
            return Effects()
        return Effects([Tally(event.verified.sender_code, month, "documents_sent")])
    if kind == "delivery_updated":
        update = event.delivery_updated
        if update.state == "delivered" and update.previous_state == "":
            return Effects(
                [Tally(update.recipient_code, month, "documents_received")],
                awaits=[AwaitAcknowledgement(event.document_id, update.recipient_code, day_of(when))],
            )
        actor = update.actor_code or update.recipient_code
        acknowledgements = []
        if actor == update.recipient_code and update.state not in _NOT_AN_ACKNOWLEDGEMENT:
            acknowledgements.append(
                Acknowledged(event.document_id, update.recipient_code, day_of(when), month)
            )
        return Effects([Tally(actor, month, "statuses")], acknowledgements=acknowledgements)
    if kind == "refused":
        return Effects([Tally(event.refused.sender_code, month, "documents_refused")])
    return Effects()


def tallies_for(event: events_pb2.Event) -> list[Tally]:
    """The counters one event adds to (see the module docstring)."""
    return effects_for(event).tallies


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


def check_paper(paper: PaperCount, *, today: date) -> PaperCount:
    """A paper report as accepted: a past or current month, counts from 0 to MAX_PAPER_COUNT."""
    parse_month(paper.month, name="period")
    if paper.month > today.strftime("%Y-%m"):
        raise invalid(f"period {paper.month} has not begun; report a month once it has")
    for name in ("paper_issued", "paper_received", "electronic_issued_other"):
        value = getattr(paper, name)
        if not 0 <= value <= MAX_PAPER_COUNT:
            raise invalid(f"{name} must be between 0 and {MAX_PAPER_COUNT}, not {value}")
    return paper


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
    paper: Iterable[PaperCount] = (),
    tier: int = 0,
    agency_months: bool = False,
) -> Report:
    """Rows per (province, tier, month) and cumulative, per province, and per agency."""
    directory = {a.code: a for a in agencies}
    wanted = set(months)

    def in_scope(info: AgencyInfo) -> bool:
        return (not province_code or info.province_code == province_code) and (not tier or info.tier == tier)

    groups: dict[tuple[str, int], dict[str, AgencyInfo]] = defaultdict(dict)
    for info in agencies:
        if in_scope(info):
            groups[(info.province_code, info.tier)][info.code] = info
    done: dict[tuple[str, str], Measures] = defaultdict(Measures)
    for count in counts:
        info = attributes_of(count.agency_code, directory)
        if count.month in wanted and in_scope(info):
            done[(count.agency_code, count.month)].add_count(count)
            groups[(info.province_code, info.tier)].setdefault(info.code, info)
    for report_of in paper:
        info = attributes_of(report_of.agency_code, directory)
        if report_of.month in wanted and in_scope(info):
            done[(report_of.agency_code, report_of.month)].add_paper(report_of)
            groups[(info.province_code, info.tier)].setdefault(info.code, info)

    def connected(info: AgencyInfo, measures: Measures) -> bool:
        return info.active and bool(measures.documents_sent or measures.documents_received)

    report = Report(months=list(months))
    province_months: dict[tuple[str, str], ReportRow] = {}
    province_connected: dict[str, set[str]] = defaultdict(set)
    for (province, group_tier), group in sorted(groups.items()):
        members = sorted(group.values(), key=lambda m: m.code)
        active = sum(1 for m in members if m.active)
        cumulative = ReportRow(province_code=province, tier=group_tier, month=CUMULATIVE, agencies=active)
        connected_any: set[str] = set()
        for month in months:
            row = ReportRow(province_code=province, tier=group_tier, month=month, agencies=active)
            for member in members:
                measures = done.get((member.code, month))
                if measures is None:
                    continue
                row.add(measures)
                if connected(member, measures):
                    row.agencies_connected += 1
                    connected_any.add(member.code)
            cumulative.add(row)
            report.rows.append(row)
            whole = province_months.setdefault(
                (province, month), ReportRow(province_code=province, month=month)
            )
            whole.add(row)
            whole.agencies += row.agencies
            whole.agencies_connected += row.agencies_connected
        cumulative.agencies_connected = len(connected_any)
        province_connected[province] |= connected_any
        report.rows.append(cumulative)

        for member in members:
            total = AgencyTotal(agency_code=member.code, province_code=province, tier=group_tier)
            for month in months:
                measures = done.get((member.code, month))
                if measures is None:
                    continue
                total.add(measures)
                if agency_months:
                    report.agency_months.append(
                        AgencyTotal(
                            **vars(measures),
                            agency_code=member.code,
                            province_code=province,
                            tier=group_tier,
                            month=month,
                            connected=connected(member, measures),
                        )
                    )
            total.connected = member.code in connected_any
            if member.active or total != AgencyTotal(
                agency_code=member.code, province_code=province, tier=group_tier
            ):
                report.agencies.append(total)

    for province in sorted({p for p, _ in province_months}):
        cumulative = ReportRow(province_code=province, month=CUMULATIVE)
        for month in months:
            whole = province_months[(province, month)]
            report.provinces.append(whole)
            cumulative.add(whole)
            cumulative.agencies = whole.agencies
        cumulative.agencies_connected = len(province_connected[province])
        report.provinces.append(cumulative)
    report.agencies.sort(key=lambda a: a.agency_code)
    report.agency_months.sort(key=lambda a: (a.agency_code, a.month))
    return report
