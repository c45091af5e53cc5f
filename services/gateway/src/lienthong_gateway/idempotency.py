"""Idempotency of status posts, remembered by the gateway process.

Packages are idempotent in docstore (sender + Idempotency-Key → the first document). Status
posts change routing's state machine, which refuses a repeated transition; a retried post must
instead get the first reply. The gateway owns no database, so it remembers (agency, key) →
(request fingerprint, reply) in memory for `ttl` seconds. Across replicas, or after a restart, a
retry that routing refuses as a repeat is still answered with the current state when the
caller's delivery already carries the posted code (see documents.post_status), so retries are
safe everywhere; the 422 for "same key, different body" is guaranteed within one replica.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def fingerprint(*parts: Any) -> str:
    """A stable digest of a request's meaningful content."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class Remembered:
    request: str
    status: int
    reply: dict[str, Any]


@dataclass
class IdempotencyStore:
    ttl: float
    max_entries: int = 100_000
    clock: Callable[[], float] = time.monotonic
    _entries: OrderedDict[tuple[str, str, str], tuple[float, Remembered]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, scope: str, caller: str, key: str) -> Remembered | None:
        now = self.clock()
        with self._lock:
            hit = self._entries.get((scope, caller, key))
            if hit is None:
                return None
            if now - hit[0] > self.ttl:
                del self._entries[(scope, caller, key)]
                return None
            return hit[1]

    def put(self, scope: str, caller: str, key: str, value: Remembered) -> None:
        with self._lock:
            self._entries[(scope, caller, key)] = (self.clock(), value)
            self._entries.move_to_end((scope, caller, key))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
