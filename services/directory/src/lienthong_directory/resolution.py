"""Resolutions cached per (address, day) for one directory revision.

Every document's recipients go through ResolveRecipients, usually the same few addresses as of
the same day, and a group of ~200 communes costs milliseconds to expand. An answer depends only
on the directory's agencies, versions and groups and on the day, and every write to those raises
the revision counter in the same transaction (models.DirectoryRevision). So a request reads the
revision first (one primary-key lookup) and uses only answers cached under exactly that revision;
the first answer computed under a newer revision empties the cache.

Why an answer stored under revision R is right for every later reader of R: it was computed
after R was read, from data at least as new as R (on PostgreSQL, READ COMMITTED; on SQLite,
pysqlite runs each SELECT on the latest commit); data newer than R means a write committed
during that request, and once it has committed every reader reads a revision above R. A
reader that read R just before such a commit may get the newer answer: the write happened
during its call. Cached values are immutable (tuples of frozen Resolutions, rendered once by the
caller, e.g. to protobuf bytes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from typing import Generic, TypeVar

from sqlalchemy.orm import Session

from lienthong_directory import groups, repository
from lienthong_directory.domain import Resolution

DEFAULT_MAX_WEIGHT = 4096
T = TypeVar("T")


class ResolutionCache(Generic[T]):
    """Thread-safe (the gRPC server's worker threads share one); bounded by emptying when full.

    `render` turns one address's resolutions into what is kept (and handed back) for it;
    `weigh` says how much a kept value counts against `max_weight` (default: 1 per address, so
    at most 4096 addresses; the servicer weighs its serialized answers in bytes).
    """

    def __init__(
        self,
        render: Callable[[tuple[Resolution, ...]], T],
        *,
        weigh: Callable[[T], int] = lambda _: 1,
        max_weight: int = DEFAULT_MAX_WEIGHT,
    ) -> None:
        self.render = render
        self.weigh = weigh
        self.max_weight = max_weight
        self._lock = threading.Lock()
        self._revision = -1
        self._entries: dict[tuple[str, date], T] = {}
        self._weight = 0
        self.hits = 0
        self.misses = 0

    def lookup(self, *, reader: repository.Reader, codes: list[str], day: date) -> list[T] | None:
        """Every address's cached answer for the current revision, or None if one is missing
        (then `resolve` in a session)."""
        revision = repository.directory_revision(session=reader)
        with self._lock:
            if revision != self._revision:
                return None
            found = [self._entries.get((address, day)) for address in codes]
            if any(value is None for value in found):
                return None
            self.hits += len(found)
        return [value for value in found if value is not None]

    def resolve(self, *, session: Session, codes: list[str], day: date) -> list[T]:
        """What groups.resolve_recipients answers (rendered per address), cached where it can."""
        revision = repository.directory_revision(session=session)
        answers: list[T] = []
        for address in codes:
            key = (address, day)
            with self._lock:
                cached = self._entries.get(key) if revision == self._revision else None
                if cached is None:
                    self.misses += 1
                else:
                    self.hits += 1
            if cached is None:
                resolutions = groups.resolve_address(session=session, address=address, day=day)
                cached = self.render(tuple(resolutions))
                self._store(revision, key, cached)
            answers.append(cached)
        return answers

    def _store(self, revision: int, key: tuple[str, date], value: T) -> None:
        with self._lock:
            if revision > self._revision:
                self._revision = revision
                self._entries, self._weight = {}, 0
            if revision != self._revision or key in self._entries:
                return  # computed under an older revision than the cache holds, or twice
            weight = self.weigh(value)
            if self._weight + weight > self.max_weight:
                self._entries, self._weight = {}, 0
            self._entries[key] = value
            self._weight += weight
