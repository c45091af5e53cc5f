"""Routing's own settings (prefix LIENTHONG_ROUTING__, nested with `__`), read once per process.

LIENTHONG_ROUTING__WEBHOOKS__MAX_ATTEMPTS=8
LIENTHONG_ROUTING__WEBHOOKS__ALLOWED_CIDRS='["10.20.0.0/16"]'   # private receivers let through
LIENTHONG_ROUTING__DEADLINES__WORKING_DAYS='[0,1,2,3,4]'     # Monday = 0
LIENTHONG_ROUTING__DEADLINES__HOLIDAYS='["2026-09-02","2027-01-01"]'
"""

from __future__ import annotations

import ipaddress
from datetime import date
from functools import lru_cache

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebhookSettings(BaseModel):
    enabled: bool = True
    # Attempts before a payload is dead-lettered (the first POST counts as one).
    max_attempts: int = Field(default=8, ge=1)
    # Back-off before attempt n+1: min(max_delay, base * 2**(n-1)), times a random factor in [0.5, 1].
    base_delay_seconds: float = Field(default=2.0, gt=0)
    max_delay_seconds: float = Field(default=600.0, gt=0)
    timeout_seconds: float = Field(default=10.0, gt=0)
    # How often the dispatcher looks for due payloads, and how many it claims at once.
    poll_seconds: float = Field(default=0.5, gt=0)
    batch: int = Field(default=32, ge=1)
    concurrency: int = Field(default=4, ge=1)
    # A claimed payload is invisible to other dispatchers this long (crash recovery).
    lease_seconds: float = Field(default=60.0, gt=0)
    # Receivers should refuse signatures older than this (documented, and used by verify_signature).
    signature_tolerance_seconds: int = 300
    # Webhooks reach only public addresses (lienthong_common.outbound): these CIDRs are let through
    # as well, for agencies whose receivers really are on a private network, e.g.
    # LIENTHONG_ROUTING__WEBHOOKS__ALLOWED_CIDRS='["10.20.0.0/16"]'. Cloud metadata never is.
    allowed_cidrs: list[str] = Field(default_factory=list)

    @field_validator("allowed_cidrs")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError as error:
                raise ValueError(
                    f"LIENTHONG_ROUTING__WEBHOOKS__ALLOWED_CIDRS: {cidr!r} is not a network ({error})"
                ) from None
        return value


class DeadlineSettings(BaseModel):
    time_zone: str = "Asia/Ho_Chi_Minh"
    # Weekday numbers (Monday = 0) that are working days.
    working_days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    holidays: list[date] = Field(default_factory=list)


class RoutingSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LIENTHONG_ROUTING__", env_nested_delimiter="__", extra="ignore"
    )

    webhooks: WebhookSettings = WebhookSettings()
    deadlines: DeadlineSettings = DeadlineSettings()


@lru_cache(maxsize=1)
def routing_settings() -> RoutingSettings:
    """Routing's settings from the environment (cached: read once per process)."""
    return RoutingSettings()
