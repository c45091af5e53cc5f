"""The sign-in throttle: every secret the gateway checks goes through one `SignInGuard`.

Secrets are checked by `POST /v1/oauth/token` and `POST /reports/login` (the directory's
VerifyCredential, a scrypt hash) and on every `/vdxp/` call (the directory's HMAC check of the
system's signed headers). The rules this module protects (docs/security-matrix.md):

- failures count against the *normalised* client id (NFKC, every Unicode whitespace and
  invisible format character removed, casefolded) and against the source address (IPv6 by its
  /64), so padding or re-casing an id buys no fresh allowance;
- a (client id, address) pair is locked after a few failures, an address after many, each for
  a while that doubles on every repeat; the client id alone never is, so its owner's correct
  secret from another address still works while someone guesses (an id guessed at from many
  addresses gets fewer tries per address);
- an address's lock does not stop a pair that signed in correctly before (colleagues behind
  the same NAT as the guesser keep working);
- failing is cheap: a locked pair or address is refused before any hash, a wrong (id, secret)
  seen in the last seconds is refused from memory (and still counts), and the checks that do
  reach the directory's scrypt run a few at a time on threads of their own, each re-checked
  for a lock when its turn comes, so a burst of guesses neither blocks the event loop nor
  queues the owner behind hundreds of hashes.

The counts live in this gateway process (as the rate limits do, docs/adr/0015-gateway-stateless.md): with N
replicas an attacker gets at most N times the allowance before every replica has locked him.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import hmac
import ipaddress
import math
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from fastapi import Request

from lienthong_common.settings import GatewaySettings
from lienthong_gateway.problems import Problem

MAX_LOCK_SECONDS = 3600.0
KNOWN_GOOD_SECONDS = 30 * 24 * 3600.0
# An id failing this many times the pair allowance, across addresses, is under a spread-out
# attack: each pair then gets a third of the allowance (at least 3 tries for typos).
UNDER_ATTACK_FACTOR = 10
MAX_QUEUED_CHECKS = 256
MAX_KEYS = 100_000

# The credentials of /v1 and /reports are one namespace; VDXP system ids are another.
REALM_CREDENTIAL = "credential"
REALM_VDXP = "vdxp"


def normalised_client_id(client_id: str) -> str:
    """The id the throttle counts against: NFKC, no whitespace or invisible characters, casefolded."""
    text = unicodedata.normalize("NFKC", client_id)
    kept = "".join(ch for ch in text if not ch.isspace() and unicodedata.category(ch) not in ("Cf", "Cc"))
    return kept.casefold()


def source_address(request: Request) -> str:
    """The caller's address as the throttle keys it: IPv4 as is, IPv6 by its /64 (one
    subscriber's allocation), an IPv4-mapped IPv6 address as IPv4. Behind a proxy this is the
    client uvicorn took from X-Forwarded-For (only when the proxy is in forwarded_allow_ips)."""
    host = request.client.host if request.client else ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass(frozen=True)
class SignInPolicy:
    pair_failures: int = 10
    address_failures: int = 50
    window_seconds: float = 900.0
    lockout_seconds: float = 300.0
    negative_cache_seconds: float = 30.0
    concurrency: int = 4

    @classmethod
    def from_settings(cls, gateway: GatewaySettings) -> SignInPolicy:
        return cls(
            pair_failures=max(1, gateway.signin_pair_failures),
            address_failures=max(1, gateway.signin_address_failures),
            window_seconds=gateway.signin_failure_window_seconds,
            lockout_seconds=gateway.signin_lockout_seconds,
            negative_cache_seconds=gateway.signin_negative_cache_seconds,
            concurrency=max(1, gateway.signin_concurrency),
        )


@dataclass
class _Failures:
    count: int = 0
    since: float = 0.0
    locked_until: float = 0.0
    strikes: int = 0  # locks so far; each lock lasts twice as long as the one before


class Verdict(Protocol):
    """What the directory answers to a secret check (VerifyCredential, VerifyVdxpSignature)."""

    @property
    def valid(self) -> bool: ...


V = TypeVar("V", bound=Verdict)
_K = TypeVar("_K")
_V = TypeVar("_V")


def throttled(detail: str, wait: float) -> Problem:
    problem = Problem(429, detail, kind="sign-in-throttled")
    problem.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return problem


@dataclass
class SignInGuard:
    """Failure counts, locks, the negative cache and the pool that runs the checks."""

    policy: SignInPolicy = field(default_factory=SignInPolicy)
    clock: Callable[[], float] = time.monotonic
    _pairs: dict[tuple[str, str, str], _Failures] = field(default_factory=dict)
    _addresses: dict[str, _Failures] = field(default_factory=dict)
    _ids: dict[tuple[str, str], _Failures] = field(default_factory=dict)
    _known_good: dict[tuple[str, str, str], float] = field(default_factory=dict)
    # (realm, normalised id) -> {digest of the exact id and proof: (until, the refusal)}
    _refused: dict[tuple[str, str], dict[bytes, tuple[float, object]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _executor: ThreadPoolExecutor | None = None
    _queued: int = 0

    # -- locks -----------------------------------------------------------------------------
    def admit(self, realm: str, client_id: str, address: str) -> None:
        """429 (Retry-After) when the pair or, unless it signed in before, the address is locked."""
        norm = normalised_client_id(client_id)
        now = self.clock()
        with self._lock:
            pair = self._pairs.get((realm, norm, address))
            if pair is not None and pair.locked_until > now:
                raise throttled(
                    f"too many failed sign-ins for {client_id.strip()[:64]!r} from this address; "
                    "retry after the Retry-After seconds",
                    pair.locked_until - now,
                )
            known_good = self._known_good.get((realm, norm, address), 0.0) > now
            from_address = self._addresses.get(address)
            if not known_good and from_address is not None and from_address.locked_until > now:
                raise throttled(
                    "too many failed sign-ins from this address; retry after the Retry-After seconds",
                    from_address.locked_until - now,
                )

    def record(self, realm: str, client_id: str, address: str, *, valid: bool) -> None:
        """Count a failure (locking what reached its allowance) or clear the pair on success."""
        norm = normalised_client_id(client_id)
        now = self.clock()
        pair_key = (realm, norm, address)
        with self._lock:
            if valid:
                self._pairs.pop(pair_key, None)
                self._bounded(self._known_good)
                self._known_good[pair_key] = now + KNOWN_GOOD_SECONDS
                return
            of_id = self._window(self._ids, (realm, norm), now)
            of_id.count += 1
            allowance = self.policy.pair_failures
            if of_id.count >= allowance * UNDER_ATTACK_FACTOR:
                allowance = max(3, allowance // 3)
            self._fail(self._window(self._pairs, pair_key, now), allowance, now)
            self._fail(self._window(self._addresses, address, now), self.policy.address_failures, now)

    def _window(self, table: dict[_K, _Failures], key: _K, now: float) -> _Failures:
        """The key's failures in the current window (a new window once the last one is over)."""
        entry = table.get(key)
        if entry is None:
            self._bounded(table)
            entry = table[key] = _Failures(since=now)
        if now - entry.since > self.policy.window_seconds and entry.locked_until <= now:
            if now - entry.locked_until > self.policy.window_seconds:
                entry.strikes = 0  # quiet for a whole window: the next lock is short again
            entry.count, entry.since = 0, now
        return entry

    def _fail(self, entry: _Failures, allowance: int, now: float) -> None:
        entry.count += 1
        if entry.count >= allowance:
            lock = min(MAX_LOCK_SECONDS, self.policy.lockout_seconds * 2**entry.strikes)
            entry.locked_until = now + lock
            entry.strikes += 1
            entry.count, entry.since = 0, now + lock

    def _bounded(self, table: dict[_K, _V]) -> None:
        """Keep a table under MAX_KEYS: drop what no longer matters, then the oldest half."""
        if len(table) < MAX_KEYS:
            return
        now = self.clock()
        for key in [k for k, v in table.items() if self._stale(v, now)]:
            del table[key]
        if len(table) >= MAX_KEYS:
            for key in list(table)[: len(table) // 2]:
                del table[key]

    def _stale(self, value: object, now: float) -> bool:
        if isinstance(value, _Failures):
            return value.locked_until <= now and now - value.since > self.policy.window_seconds
        if isinstance(value, float):
            return value <= now
        return isinstance(value, dict) and not value

    # -- the negative cache --------------------------------------------------------------------
    def _digest(self, realm: str, client_id: str, proof: bytes) -> bytes:
        message = b"\0".join((realm.encode(), client_id.encode("utf-8", "surrogatepass"), proof))
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def _remembered(self, realm: str, client_id: str, proof: bytes) -> object | None:
        digest = self._digest(realm, client_id, proof)
        with self._lock:
            entries = self._refused.get((realm, normalised_client_id(client_id)))
            hit = entries.get(digest) if entries else None
        if hit is None or hit[0] <= self.clock():
            return None
        return hit[1]

    def _remember(self, realm: str, client_id: str, proof: bytes, refusal: object) -> None:
        if self.policy.negative_cache_seconds <= 0:
            return
        now = self.clock()
        key = (realm, normalised_client_id(client_id))
        with self._lock:
            entries = self._refused.get(key)
            if entries is None:
                self._bounded(self._refused)
                entries = self._refused[key] = {}
            if len(entries) >= 1000:
                for digest in [d for d, (until, _) in entries.items() if until <= now] or list(entries)[:500]:
                    del entries[digest]
            until = now + self.policy.negative_cache_seconds
            entries[self._digest(realm, client_id, proof)] = (until, refusal)

    def forget(self, client_id: str, realm: str = REALM_CREDENTIAL) -> None:
        """Drop the remembered refusals of a client whose secret just changed."""
        with self._lock:
            self._refused.pop((realm, normalised_client_id(client_id)), None)

    # -- checking ------------------------------------------------------------------------------
    def check(self, realm: str, client_id: str, address: str, proof: bytes, verify: Callable[[], V]) -> V:
        """Admit, then the remembered refusal or `verify()`; the outcome is counted."""
        self.admit(realm, client_id, address)
        remembered = self._remembered(realm, client_id, proof)
        if remembered is not None:
            self.record(realm, client_id, address, valid=False)
            return remembered  # type: ignore[return-value]  # stored by this same check
        verdict = verify()
        self.record(realm, client_id, address, valid=bool(verdict.valid))
        if not verdict.valid:
            self._remember(realm, client_id, proof, verdict)
        return verdict

    async def check_async(
        self, realm: str, client_id: str, address: str, proof: bytes, verify: Callable[[], V]
    ) -> V:
        """`check` on the guard's own threads; locked callers are refused before queueing."""
        self.admit(realm, client_id, address)
        remembered = self._remembered(realm, client_id, proof)
        if remembered is not None:
            self.record(realm, client_id, address, valid=False)
            return remembered  # type: ignore[return-value]
        if self._queued >= MAX_QUEUED_CHECKS:
            problem = Problem(503, "too many sign-ins are being checked; retry shortly", kind="busy")
            problem.headers["Retry-After"] = "1"
            raise problem
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.policy.concurrency, thread_name_prefix="secret-check")
        self._queued += 1
        try:
            work = functools.partial(
                contextvars.copy_context().run, self.check, realm, client_id, address, proof, verify
            )
            return await asyncio.get_running_loop().run_in_executor(self._executor, work)
        finally:
            self._queued -= 1

    async def check_credential(
        self, request: Request, client_id: str, proof: bytes, verify: Callable[[], V]
    ) -> V:
        """A client secret (token endpoint, /reports/login), throttled by id and address."""
        return await self.check_async(REALM_CREDENTIAL, client_id, source_address(request), proof, verify)

    def check_vdxp(self, request: Request, system_id: str, proof: bytes, verify: Callable[[], V]) -> V:
        """A VDXP system's signed headers (called on a worker thread already)."""
        return self.check(REALM_VDXP, system_id, source_address(request), proof, verify)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
