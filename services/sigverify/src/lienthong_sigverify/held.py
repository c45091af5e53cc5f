"""Documents held while their signer's revocation status cannot be confirmed (docs/adr/0075).

A TRY_LATER verdict (a CRL or OCSP source the certificate declares gave no current data) is
neither a pass nor a refusal: the consumer records a hold, in the transaction that records the
event id, and emits nothing. :class:`HeldDocuments`, a background worker of the service
runtime, re-verifies each held document when it is due (after 1, 2, 4 ... minutes, at most an
hour) and, once the verdict is definite, queues the same ``verified`` event the consumer would
have emitted and deletes the hold, in one transaction. A document still unconfirmed after the
revocation deadline is refused, saying for how long and which sources stayed silent.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from lienthong.events.v1 import events_pb2
from lienthong_common.clock import now_utc
from lienthong_common.db import transaction
from lienthong_common.settings import SigverifySettings
from lienthong_sigverify import repository
from lienthong_sigverify.domain import Indication, Report
from lienthong_sigverify.models import HeldDocumentRow

log = logging.getLogger(__name__)
tracer = trace.get_tracer("lienthong.sigverify")

TRY_LATER = "TRY_LATER"

# Re-verifies a held document from its submitted event: the verdict now.
Reverify = Callable[[events_pb2.Event], Report]
# Stores the report and queues its verified event, in the session's transaction.
Emit = Callable[..., object]


def must_hold(report: Report) -> bool:
    """True when the verdict is to be held, not emitted: revocation status could not be
    confirmed (INDETERMINATE/TRY_LATER). Every other verdict is definite."""
    return report.indication is Indication.INDETERMINATE and report.sub_indication == TRY_LATER


@dataclass(frozen=True)
class HoldPolicy:
    """When a held document is tried again, and when waiting ends in a refusal."""

    base_seconds: float = 60.0
    max_seconds: float = 3600.0
    deadline_seconds: float = 86400.0

    @classmethod
    def from_settings(cls, settings: SigverifySettings) -> HoldPolicy:
        return cls(
            base_seconds=settings.held_retry_base_seconds,
            max_seconds=settings.held_retry_max_seconds,
            deadline_seconds=settings.revocation_deadline_seconds,
        )

    def delay(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th verification: base, 2*base, 4*base ..., capped."""
        exponent = min(max(attempts, 1) - 1, 32)  # 2**32 minutes is far past any cap
        return timedelta(seconds=min(self.max_seconds, self.base_seconds * 2**exponent))

    def expired(self, *, first_seen: datetime, now: datetime) -> bool:
        return now - first_seen >= timedelta(seconds=self.deadline_seconds)

    def describe_deadline(self) -> str:
        seconds = self.deadline_seconds
        if seconds >= 3600 and seconds % 3600 == 0:
            return f"{int(seconds // 3600)} h"
        if seconds >= 60 and seconds % 60 == 0:
            return f"{int(seconds // 60)} min"
        return f"{seconds:g} s"


def unconfirmed_sources(report: Report) -> str:
    """The revocation sources that gave no current data, as the held report names them."""
    sources: list[str] = []
    for check in report.signatures:
        if check.sub_indication != TRY_LATER:
            continue
        lines = [line for line in check.revocation if "unreachable" in line or "offline" in line]
        for line in lines or [check.message]:
            if line not in sources:
                sources.append(line)
    return "; ".join(sources) or report.reason


def deadline_refusal(report: Report, policy: HoldPolicy) -> Report:
    """The verdict emitted when the deadline passed with revocation still unconfirmed: still
    INDETERMINATE/TRY_LATER (ETSI: nothing was decided), with a reason that says so."""
    reason = (
        f"revocation status could not be confirmed for {policy.describe_deadline()}: "
        f"{unconfirmed_sources(report)}"
    )
    return dataclasses.replace(report, reason=reason)


# ------------------------------------------------------------------ the hold, in the consumer


def hold(
    session: Session, *, submitted: events_pb2.Event, report: Report, now: datetime, policy: HoldPolicy
) -> None:
    """Record that `submitted`'s document waits for revocation data (first attempt done now).
    In the consumer's transaction, beside the processed event id: a redelivered event was
    already claimed and never gets here; the document id is the key, so a second submitted
    event for the same document cannot hold it twice."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    session.add(
        HeldDocumentRow(
            document_id=submitted.document_id,
            event_id=submitted.event_id,
            submitted_event=submitted.SerializeToString(),
            traceparent=carrier.get("traceparent", ""),
            first_seen=now.astimezone(UTC),
            next_attempt_at=(now + policy.delay(1)).astimezone(UTC),
            attempts=1,
            last_reason=report.reason,
        )
    )
    session.flush()


def is_held(session: Session, *, document_id: str) -> bool:
    return session.get(HeldDocumentRow, document_id) is not None


@dataclass(frozen=True)
class Hold:
    """A held document as the sender may see it."""

    document_id: str
    first_seen: datetime
    next_attempt_at: datetime
    attempts: int
    reason: str
    deadline: datetime


def get_hold(session: Session, *, document_id: str, policy: HoldPolicy) -> Hold | None:
    row = session.get(HeldDocumentRow, document_id)
    if row is None:
        return None
    first_seen = _aware(row.first_seen)
    return Hold(
        document_id=row.document_id,
        first_seen=first_seen,
        next_attempt_at=_aware(row.next_attempt_at),
        attempts=row.attempts,
        reason=row.last_reason,
        deadline=first_seen + timedelta(seconds=policy.deadline_seconds),
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# ------------------------------------------------------------------ the re-verify loop


class HeldDocuments:
    """Background worker (ServiceRuntime.workers): re-verify held documents when due.

    Safe with several replicas: a due row is claimed by a compare-and-set on its
    ``next_attempt_at`` (moved a lease ahead, so no other replica takes it while it is being
    verified; after a crash it is due again when the lease ends), found with ``FOR UPDATE SKIP
    LOCKED`` on PostgreSQL; SQLite has one writer at a time. The outcome is written in a second
    transaction that first checks the claim is still this worker's.
    """

    LEASE = timedelta(minutes=5)

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        reverify: Reverify,
        emit: Emit,
        policy: HoldPolicy,
        clock: Callable[[], datetime] = now_utc,
        poll_seconds: float = 5.0,
        batch: int = 8,
        lease: timedelta | None = None,
    ) -> None:
        self._sessions = sessions
        self._reverify = reverify
        self._emit = emit
        self._policy = policy
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._batch = batch
        self._lease = lease or self.LEASE
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="held-documents", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception:
                log.exception("re-verifying held documents failed")
                worked = 0
            if not worked:
                self._stop.wait(self._poll_seconds)

    def run_once(self) -> int:
        """One round: claim due holds, re-verify each, record the outcome; returns how many."""
        done = 0
        for document_id, lease_until in self._claim():
            if self._stop.is_set():
                break
            self._attempt(document_id, lease_until)
            done += 1
        return done

    def _claim(self) -> list[tuple[str, datetime]]:
        now = self._clock()
        lease_until = (now + self._lease).astimezone(UTC)
        claimed: list[tuple[str, datetime]] = []
        with transaction(self._sessions) as session:
            due = session.execute(
                select(HeldDocumentRow.document_id, HeldDocumentRow.next_attempt_at)
                .where(HeldDocumentRow.next_attempt_at <= now)
                .order_by(HeldDocumentRow.next_attempt_at)
                .limit(self._batch)
                .with_for_update(skip_locked=True)
            ).all()
            for document_id, seen in due:
                moved = session.execute(
                    update(HeldDocumentRow)
                    .where(
                        HeldDocumentRow.document_id == document_id,
                        HeldDocumentRow.next_attempt_at == seen,
                    )
                    .values(next_attempt_at=lease_until)
                    .execution_options(synchronize_session=False)
                )
                if moved.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append((document_id, lease_until))
        return claimed

    def _attempt(self, document_id: str, lease_until: datetime) -> None:
        with self._sessions() as session:
            row = session.get(HeldDocumentRow, document_id)
            if row is None:
                return
            submitted = events_pb2.Event.FromString(row.submitted_event)
            traceparent = row.traceparent
        parent = propagate.extract({"traceparent": traceparent}) if traceparent else None
        token = otel_context.attach(parent) if parent is not None else None
        try:
            with tracer.start_as_current_span("sigverify re-verify held document") as span:
                span.set_attribute("lienthong.document.id", document_id)
                try:
                    report = self._reverify(submitted)
                except Exception:
                    # Left claimed: due again when the lease ends.
                    log.exception("re-verifying held document %s failed; retried later", document_id)
                    return
                self._record(document_id, lease_until, submitted, report)
        finally:
            if token is not None:
                otel_context.detach(token)

    def _record(
        self, document_id: str, lease_until: datetime, submitted: events_pb2.Event, report: Report
    ) -> None:
        with transaction(self._sessions) as session:
            row = session.get(HeldDocumentRow, document_id, with_for_update=True)
            if row is None or _aware(row.next_attempt_at) != lease_until:
                return  # released or re-claimed elsewhere meanwhile (lease ended): theirs now
            now = self._clock()
            if repository.report_exists(session, document_id=document_id):
                session.delete(row)  # verified by another path: the first verdict stands
                return
            attempts = row.attempts + 1
            if not must_hold(report):
                self._emit(session, submitted=submitted, report=report, verified_at=now)
                session.delete(row)
                log.info(
                    "held document %s verified after %d attempts: %s %s",
                    document_id,
                    attempts,
                    report.indication.value,
                    report.sub_indication,
                )
                return
            if self._policy.expired(first_seen=_aware(row.first_seen), now=now):
                refusal = deadline_refusal(report, self._policy)
                self._emit(session, submitted=submitted, report=refusal, verified_at=now)
                session.delete(row)
                log.warning("held document %s refused: %s", document_id, refusal.reason)
                return
            row.attempts = attempts
            row.next_attempt_at = (now + self._policy.delay(attempts)).astimezone(UTC)
            row.last_reason = report.reason
            log.info(
                "document %s still held (attempt %d, next at %s): %s",
                document_id,
                attempts,
                row.next_attempt_at.isoformat(),
                report.reason,
            )
