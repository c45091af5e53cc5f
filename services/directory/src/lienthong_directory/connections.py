"""Connection status: an agency is connected when it has an active credential (a /v1 client
secret, or a VDXP system acting for it) and took part in an exchange within the window.
Exchanges are learnt from delivery events (see consumers.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from lienthong_common.clock import VIETNAM
from lienthong_common.errors import invalid
from lienthong_directory import domain, repository


@dataclass(frozen=True)
class Connection:
    code: str
    connected: bool
    active_credential: bool
    last_exchange_at: datetime | None


def status(
    *,
    session: Session,
    codes: list[str],
    province_code: str,
    tier: int,
    day: date,
    window_days: int,
    now: datetime | None = None,
) -> list[Connection]:
    """Connection status of the named agencies, or of every agency in the filter on `day`."""
    if window_days <= 0:
        raise invalid(f"window_days {window_days} must be positive")
    if codes:
        wanted = [domain.normalize_code(c) for c in codes]
    else:
        wanted = [
            v.code
            for v in domain.list_agencies(
                session=session, day=day, province_code=province_code, tier=tier
            )
            if v.status == domain.ACTIVE
        ]
    credentials = repository.active_credentials(session=session) | repository.vdxp_served_agencies(
        session=session
    )
    exchanged = repository.exchanges(session=session)
    # The window ends at the end of `day` (or now, when that is earlier).
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), VIETNAM)
    end = min(end, now or datetime.now(UTC))
    since = end - timedelta(days=window_days)
    result = []
    for code in wanted:
        last = exchanged.get(code)
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        active = code in credentials
        recent = last is not None and since <= last <= end
        result.append(Connection(code, active and recent, active, last))
    return result


def record_delivery(*, session: Session, codes: list[str], at: datetime) -> None:
    """Note that these agencies exchanged at `at` (sender, recipient, actor of a delivery)."""
    for code in sorted({c for c in codes if c}):
        repository.record_exchange(session=session, agency_code=code, at=at)
