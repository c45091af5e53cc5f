"""Time as every service reads it: now in UTC, and Vietnam's time zone.

Vietnam has kept UTC+7 without daylight saving since 1975, so a fixed offset is exact and needs
no tz database (slim container images ship none).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

VIETNAM = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")


def now_utc() -> datetime:
    """The current time, timezone-aware, in UTC (what every stored timestamp is)."""
    return datetime.now(UTC)
