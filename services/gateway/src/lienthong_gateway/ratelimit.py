"""Per-agency rate limits: one token bucket per caller, in this gateway process.

Each replica limits on its own, so the platform-wide allowance is the per-replica figure times
the number of replicas; that keeps the gateway stateless (docs/adr/0015-gateway-stateless.md)
and still stops one agency's runaway integration from starving the others on the replica it
lands on.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """Token buckets keyed by agency code: `rate` tokens a second, at most `burst` saved up."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    max_keys: int = 100_000
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def enabled(self) -> bool:
        return self.rate > 0 and self.burst > 0

    def acquire(self, key: str) -> float:
        """Take one token for `key`; 0.0 when allowed, else the seconds until one is available."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_keys:
                    self._evict(now)
                bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated=now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def _evict(self, now: float) -> None:
        # Buckets that have refilled completely carry no information: drop them.
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.updated) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()


def retry_after_header(wait: float) -> str:
    """Retry-After in whole seconds, never 0 (clients treat 0 as 'retry at once')."""
    return str(max(1, math.ceil(wait)))
