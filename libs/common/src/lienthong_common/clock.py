"""Vietnam's time zone, once for every service.

Vietnam has kept UTC+7 without daylight saving since 1975, so a fixed offset is exact and needs
no tz database (slim container images ship none).
"""

from __future__ import annotations

from datetime import timedelta, timezone

VIETNAM = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")
