"""PDF verification spread over processes, with a verdict cache.

The service process owns the consumer, the database and the gRPC server; the CPU-bound part
(parsing PDFs, hashing, signature and path validation) runs in a pool of worker processes, one
per core by default, so both cores of a small node are used. The consumer hands a whole polled
batch to :meth:`VerificationEngine.prefetch` before handling it event by event: while the first
event's transaction waits for its verdict, the others are already being computed. Effects stay
per event (report, outbox row and processed-event claim in one transaction).

Verdicts are cached by (PDF digest, policy, trust-store version): the same attachment sent
again (a retry, an update that reuses it) is not verified twice. A cached verdict lives at most
``verdict_cache_seconds`` and never past its signer certificate's expiry; INDETERMINATE verdicts
and passes whose revocation could not be confirmed are not cached, so they are retried.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import multiprocessing
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from cryptography import x509

from lienthong_common.outbound import OutboundPolicy
from lienthong_common.pades import (
    Indication,
    PdfVerdict,
    PdfVerifier,
    RevocationCache,
    RevocationMode,
    accelerators,
)
from lienthong_common.settings import Settings
from lienthong_sigverify.trust import TrustSnapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifierConfig:
    """How a worker builds its PdfVerifier (picklable, sent with every task)."""

    revocation: RevocationMode
    revocation_cache_dir: str | None
    allow_fetching: bool
    fetch_timeout: float
    allow_sha1: bool = False  # PAdES signatures made with SHA-1 (refused by default)
    # Private networks CRL/OCSP URLs may reach besides public addresses (docs/adr/0080).
    revocation_allowed_cidrs: tuple[str, ...] = ()

    @property
    def policy(self) -> str:
        return (
            f"revocation={self.revocation}"
            + ("" if self.allow_fetching else ",offline")
            + (",sha1" if self.allow_sha1 else "")
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> VerifierConfig:
        sv = settings.sigverify
        cache_dir = sv.revocation_cache_dir or settings.data_dir / "sigverify" / "revocation-cache"
        return cls(
            revocation=sv.revocation,
            revocation_cache_dir=str(Path(cache_dir).resolve()),
            allow_fetching=sv.revocation_fetching,
            fetch_timeout=sv.revocation_fetch_timeout_seconds,
            allow_sha1=sv.allow_sha1_pades,
            revocation_allowed_cidrs=tuple(sv.revocation_allowed_cidrs),
        )


class TrustSource(Protocol):
    def snapshot(self, *, seed: bool = True) -> TrustSnapshot: ...


# ------------------------------------------------------------------ worker side (per process)

_worker_lock = threading.Lock()
_worker_verifiers: dict[tuple[int, tuple[bytes, ...], VerifierConfig], PdfVerifier] = {}
_worker_caches: dict[str | None, RevocationCache] = {}


def verify_pdf_task(
    pdf: bytes | Path, version: int, anchors: tuple[bytes, ...], config: VerifierConfig
) -> PdfVerdict:
    """Verify one PDF (its bytes, or its file: only the path crosses to the worker, which reads
    the file as validation needs it) against a trust-store version (in a worker, or inline)."""
    key = (version, anchors, config)
    with _worker_lock:
        verifier = _worker_verifiers.get(key)
        if verifier is None:
            _worker_verifiers.clear()  # an older trust-store version is never asked for again
            cache = _worker_caches.get(config.revocation_cache_dir)
            if cache is None:
                directory = Path(config.revocation_cache_dir) if config.revocation_cache_dir else None
                cache = _worker_caches[config.revocation_cache_dir] = RevocationCache(directory)
            verifier = _worker_verifiers[key] = PdfVerifier(
                list(anchors),
                revocation=config.revocation,
                allow_fetching=config.allow_fetching and config.revocation != "off",
                revocation_cache=cache,
                fetch_timeout=config.fetch_timeout,
                allow_sha1=config.allow_sha1,
                outbound=OutboundPolicy.from_cidrs(config.revocation_allowed_cidrs),
            )
    return verifier.verify(pdf)


def _warm_up(parent: int) -> None:
    """Install the PAdES accelerators in this worker (pyHanko imported before the first document
    arrives); leave with the service process (`parent`) even when it is killed outright."""
    threading.Thread(target=_exit_with_parent, args=(parent,), name="parent-watch", daemon=True).start()
    accelerators.install()


def _exit_with_parent(parent: int, interval: float = 0.5) -> None:
    """A worker whose service process is gone is reparented: it exits then, instead of staying
    behind for ever holding its memory and waiting for work that can no longer come."""
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            os._exit(0)


def new_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """The verification worker processes. spawn, not fork: the service process runs gRPC and
    Kafka threads that must not be forked."""
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_warm_up,
        initargs=(os.getpid(),),
    )


# ------------------------------------------------------------------ service side


def pool_size(settings: Settings) -> int:
    """Worker processes: settings.sigverify.workers, else one per core."""
    configured = settings.sigverify.workers
    if configured is not None:
        return max(0, configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_CacheKey = tuple[str, str, int]


class VerificationEngine:
    """Verifies PDFs in worker processes; caches verdicts; thread-safe."""

    def __init__(
        self,
        *,
        trust: TrustSource,
        config: VerifierConfig,
        workers: int,
        cache_seconds: float = 600.0,
        cache_entries: int = 10000,
    ) -> None:
        self._trust = trust
        self._config = config
        self._workers = workers
        self._cache_seconds = cache_seconds
        self._cache_entries = cache_entries
        self._lock = threading.Lock()
        self._inflight: dict[_CacheKey, concurrent.futures.Future[PdfVerdict]] = {}
        self._verdicts: OrderedDict[_CacheKey, tuple[float, PdfVerdict]] = OrderedDict()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.hits = 0
        self.misses = 0
        if workers > 0:
            self._pool = self._new_pool()

    @classmethod
    def from_settings(cls, settings: Settings, *, trust: TrustSource) -> VerificationEngine:
        return cls(
            trust=trust,
            config=VerifierConfig.from_settings(settings),
            workers=pool_size(settings),
            cache_seconds=settings.sigverify.verdict_cache_seconds,
            cache_entries=settings.sigverify.verdict_cache_entries,
        )

    @property
    def policy(self) -> str:
        return self._config.policy

    @property
    def revocation(self) -> RevocationMode:
        return self._config.revocation

    @property
    def workers(self) -> int:
        return self._workers

    def snapshot(self, *, seed: bool = True) -> TrustSnapshot:
        """The trust store now; `seed=False` inside a transaction (see TrustStore.snapshot)."""
        return self._trust.snapshot(seed=seed)

    def bound(self, snapshot: TrustSnapshot) -> SnapshotVerifier:
        """A `verify(pdf)` object pinned to one trust-store snapshot (what a report records)."""
        return SnapshotVerifier(self, snapshot)

    def prefetch(self, pdfs: Iterable[bytes | Path], snapshot: TrustSnapshot | None = None) -> int:
        """Start verifying `pdfs` in the pool (no-op inline); returns how many were started."""
        if self._pool is None:
            return 0
        snapshot = snapshot or self.snapshot()
        started = 0
        for pdf in pdfs:
            key = self._key(pdf, snapshot)
            with self._lock:
                if key in self._inflight or self._cached(key) is not None:
                    continue
            self._submit(key, pdf, snapshot)
            started += 1
        return started

    def verify(self, pdf: bytes | Path, snapshot: TrustSnapshot | None = None) -> PdfVerdict:
        """The verdict on one PDF (its bytes or its file): cached, in flight, or computed now."""
        snapshot = snapshot or self.snapshot()
        key = self._key(pdf, snapshot)
        with self._lock:
            cached = self._cached(key)
            if cached is not None:
                self.hits += 1
                return cached
            self.misses += 1
            future = self._inflight.get(key)
        if self._pool is None:
            verdict = verify_pdf_task(pdf, snapshot.version, snapshot.anchors, self._config)
        else:
            if future is None:
                future = self._submit(key, pdf, snapshot)
            try:
                verdict = future.result()
            except concurrent.futures.process.BrokenProcessPool:
                log.error("a verification worker died; restarting the pool and retrying once")
                self._restart_pool()
                verdict = self._submit(key, pdf, snapshot).result()
            except FileNotFoundError:
                # A prefetch's copy of these bytes was removed before a worker opened it (its
                # document went to another consumer); verify this copy.
                assert self._pool is not None
                verdict = self._pool.submit(
                    verify_pdf_task, pdf, snapshot.version, snapshot.anchors, self._config
                ).result()
            finally:
                with self._lock:
                    if self._inflight.get(key) is future:
                        del self._inflight[key]
        self._remember(key, verdict)
        return verdict

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # ------------------------------------------------------------------ internals

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        return new_pool(self._workers)

    def _restart_pool(self) -> None:
        with self._lock:
            old, self._pool = self._pool, self._new_pool()
            self._inflight.clear()
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)

    def _submit(
        self, key: _CacheKey, pdf: bytes | Path, snapshot: TrustSnapshot
    ) -> concurrent.futures.Future[PdfVerdict]:
        assert self._pool is not None
        with self._lock:
            future = self._inflight.get(key)
            if future is None:
                future = self._pool.submit(
                    verify_pdf_task, pdf, snapshot.version, snapshot.anchors, self._config
                )
                self._inflight[key] = future
        return future

    def _key(self, pdf: bytes | Path, snapshot: TrustSnapshot) -> _CacheKey:
        if isinstance(pdf, Path):
            with pdf.open("rb") as stream:
                digest = hashlib.file_digest(stream, "sha256").hexdigest()
        else:
            digest = hashlib.sha256(pdf).hexdigest()
        return (digest, self._config.policy, snapshot.version)

    def _cached(self, key: _CacheKey) -> PdfVerdict | None:
        entry = self._verdicts.get(key)
        if entry is None:
            return None
        if entry[0] < time.time():
            del self._verdicts[key]
            return None
        self._verdicts.move_to_end(key)
        return entry[1]

    def _remember(self, key: _CacheKey, verdict: PdfVerdict) -> None:
        if self._cache_seconds <= 0 or not _cacheable(verdict):
            return
        expires = time.time() + self._cache_seconds
        for sig in verdict.signatures:
            not_after = _not_after(sig.signer_certificate_der)
            if not_after is not None:
                expires = min(expires, not_after.timestamp())
        with self._lock:
            self._verdicts[key] = (expires, verdict)
            self._verdicts.move_to_end(key)
            while len(self._verdicts) > self._cache_entries:
                self._verdicts.popitem(last=False)


class SnapshotVerifier:
    """The engine seen through one trust-store snapshot; what domain.verify_package calls."""

    def __init__(self, engine: VerificationEngine, snapshot: TrustSnapshot) -> None:
        self._engine = engine
        self.snapshot = snapshot

    def verify(self, pdf: bytes | Path) -> PdfVerdict:
        return self._engine.verify(pdf, self.snapshot)


def _cacheable(verdict: PdfVerdict) -> bool:
    if verdict.indication is Indication.INDETERMINATE:
        return False  # TRY_LATER and friends: the next attempt may decide
    return all(sig.revocation_confirmed for sig in verdict.signatures)


def _not_after(cert_der: bytes) -> datetime | None:
    if not cert_der:
        return None
    try:
        return x509.load_der_x509_certificate(cert_der).not_valid_after_utc
    except ValueError:
        return None
