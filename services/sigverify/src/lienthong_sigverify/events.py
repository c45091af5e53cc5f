"""Consumes DocumentSubmitted, emits DocumentVerified (through the outbox, keyed by document id)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from opentelemetry import trace
from sqlalchemy.orm import Session, sessionmaker

from lienthong.events.v1 import events_pb2
from lienthong_common.edxml import LENIENT, EdxmlError, ParsePolicy
from lienthong_common.kafka import Handler, prepared
from lienthong_common.outbox import TOPIC_VERIFIED, new_event, now_utc, timestamp
from lienthong_sigverify import held, repository
from lienthong_sigverify.domain import (
    FORMAT_FAILURE,
    BindingCheck,
    EnvelopeOutcome,
    Indication,
    PdfCheck,
    PreparedPackage,
    Report,
    SignatureCheck,
    apply_envelope,
    verify_package,
)
from lienthong_sigverify.models import OUTBOX
from lienthong_sigverify.verification import VerificationEngine

log = logging.getLogger(__name__)

# Fetches a stored package by platform document id: its bytes, or a file the handler then owns
# (and removes once the package is verified).
PackageSource = Callable[[str], bytes | Path]

VERDICT_ATTRIBUTE = "lienthong.verdict.indication"


def on_document_submitted(
    *,
    fetch_package: PackageSource,
    verifier: PdfCheck | VerificationEngine,
    binding_check: BindingCheck | None,
) -> Handler:
    """The TOPIC_SUBMITTED handler: verify the package, store the report, announce the verdict."""
    return SubmittedDocuments(
        fetch_package=fetch_package, verifier=verifier, binding_check=binding_check
    ).handle


class SubmittedDocuments:
    """Verifies submitted documents: `prefetch` a polled batch, then `handle` each event.

    `prefetch` (the consumer's before_batch hook) fetches the batch's packages, decodes their
    PDFs to files (PreparedPackage) and starts them in the worker pool; `handle` runs per event
    inside the transaction that records the event, waits for that document's verdicts, and
    stores report and outbox row together. Packages and PDFs stay on disk (``spool_dir``): the
    service holds none of them in memory, the workers read the PDF files as they validate.
    """

    # Packages prepared between prefetch and handle (bytes held in memory plus on disk); beyond
    # this the rest are fetched when their event is handled.
    max_prefetched_bytes = 256 * 1024 * 1024

    def __init__(
        self,
        *,
        fetch_package: PackageSource,
        verifier: PdfCheck | VerificationEngine,
        binding_check: BindingCheck | None,
        sessions: sessionmaker[Session] | None = None,
        envelope_policy: str = "if-present",
        allow_rsa_sha1: bool = True,
        spool_dir: Path | None = None,
        max_package_bytes: int = LENIENT.max_bytes,
        hold_policy: held.HoldPolicy | None = None,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        """`hold_policy`: TRY_LATER verdicts are held and re-verified (held.HeldDocuments)
        instead of emitted; None emits them like any verdict."""
        self._fetch_package = fetch_package
        self._envelope_policy = envelope_policy
        self._allow_rsa_sha1 = allow_rsa_sha1
        self._verifier = verifier
        self._binding_check = binding_check
        self._sessions = sessions
        self._spool_dir = spool_dir
        self._policy = dataclasses.replace(LENIENT, max_bytes=max(LENIENT.max_bytes, max_package_bytes))
        self._packages: dict[str, PreparedPackage] = {}
        self._lock = threading.Lock()
        self._hold_policy = hold_policy
        self._clock = clock

    def _prepare(self, document_id: str) -> PreparedPackage | Report:
        """The package fetched and read, or the FORMAT_FAILURE report of one that is not edXML."""
        fetched = self._fetch_package(document_id)
        if self._spool_dir is not None:
            self._spool_dir.mkdir(parents=True, exist_ok=True)
        try:
            return PreparedPackage(fetched, folder=self._spool_dir, owns_package=isinstance(fetched, Path))
        except EdxmlError as error:
            if isinstance(fetched, Path):
                fetched.unlink(missing_ok=True)
            return Report(Indication.TOTAL_FAILED, FORMAT_FAILURE, f"the package is not valid edXML: {error}")

    def prefetch(self, events: list[events_pb2.Event]) -> None:
        """Start verifying the PDFs of every not-yet-verified document in `events`."""
        engine = self._verifier
        if not isinstance(engine, VerificationEngine):
            return
        snapshot = engine.snapshot()  # outside any transaction: may seed configured roots
        if engine.workers == 0:
            return
        with self._lock:
            # Left over from a batch whose events went elsewhere (rebalance). A worker still on
            # one of their files keeps it open; the engine re-verifies what was removed first.
            leftovers, self._packages = list(self._packages.values()), {}
        for leftover in leftovers:
            leftover.close()
        held = 0
        for event in events:
            if event.WhichOneof("payload") != "submitted" or event.document_id in self._packages:
                continue
            if self._sessions is not None:
                with self._sessions() as session:
                    if repository.report_exists(session, document_id=event.document_id):
                        continue
            try:
                with prepared(event):  # the fetch joins the document's trace
                    package = self._prepare(event.document_id)
            except Exception:
                log.warning("prefetching document %s failed", event.document_id, exc_info=True)
                continue
            if isinstance(package, Report):
                continue  # not edXML: handle() says so
            # Counted in memory or on disk (a large package and its decoded PDFs wait in the
            # spool, under data_dir's size limit on Kubernetes).
            cost = (package.size if isinstance(package.package, bytes) else 0) + package.disk_bytes
            if held + cost > self.max_prefetched_bytes:
                package.close()
                break
            held += cost
            with self._lock:
                self._packages[event.document_id] = package
            engine.prefetch(package.pdfs, snapshot)

    def handle(self, session: Session, event: events_pb2.Event) -> None:
        if event.WhichOneof("payload") != "submitted":
            return
        with self._lock:
            package = self._packages.pop(event.document_id, None)
        try:
            if repository.report_exists(session, document_id=event.document_id):
                # Already verified under another event id: the first verdict stands.
                log.info("document %s already verified; event %s ignored", event.document_id, event.event_id)
                return
            if held.is_held(session, document_id=event.document_id):
                # Held under another event id: the re-verify loop owns it.
                log.info("document %s already held; event %s ignored", event.document_id, event.event_id)
                return
            if package is None:
                prepared_or_report = self._prepare(event.document_id)
                if isinstance(prepared_or_report, Report):
                    report = prepared_or_report
                else:
                    package = prepared_or_report
            if package is not None:
                report = self._verify(package, event.submitted.sender_code)
        finally:
            if package is not None:
                package.close()
        trace.get_current_span().set_attribute(VERDICT_ATTRIBUTE, report.indication.value)
        if self._hold_policy is not None and held.must_hold(report):
            held.hold(session, submitted=event, report=report, now=self._clock(), policy=self._hold_policy)
            log.info("document %s held: revocation not confirmed (%s)", event.document_id, report.reason)
            return
        record_verification(session, submitted=event, report=report, verified_at=self._clock())
        log.info(
            "document %s verified: %s %s (%s)",
            event.document_id,
            report.indication.value,
            report.sub_indication,
            report.reason,
        )

    def reverify(self, submitted: events_pb2.Event) -> Report:
        """The verdict on a held document now (held.HeldDocuments), outside any transaction."""
        prepared_or_report = self._prepare(submitted.document_id)
        if isinstance(prepared_or_report, Report):
            return prepared_or_report
        with prepared_or_report as package:
            return self._verify(package, submitted.submitted.sender_code)

    def _verify(self, package: PreparedPackage, sender: str) -> Report:
        verifier = self._verifier
        if not isinstance(verifier, VerificationEngine):
            return verify_package(package, verifier=verifier, binding_check=self._binding_check)
        snapshot = verifier.snapshot(seed=False)  # inside the event's transaction: read only
        report = verify_package(package, verifier=verifier.bound(snapshot), binding_check=self._binding_check)
        policy = self._envelope_policy
        if policy != "off":
            report = apply_envelope(
                report,
                _envelope_outcome(package, snapshot.anchors, verifier, self._allow_rsa_sha1, self._policy),
                required=policy == "required",
                sender=sender,
                binding_check=self._binding_check,
            )
        return dataclasses.replace(
            report, policy=f"{verifier.policy},envelope={policy}", trust_store_version=snapshot.version
        )


def _envelope_outcome(
    package: PreparedPackage,
    anchors: tuple[bytes, ...],
    engine: VerificationEngine,
    allow_rsa_sha1: bool,
    policy: ParsePolicy,
) -> EnvelopeOutcome | None:
    """The envelope's XML-DSig verdict (lienthong_common.edxml.signature), read from the package
    file in bounded memory; None if unavailable."""
    try:
        from lienthong_common.edxml.signature import verify_envelope
    except ImportError:  # an installation without the XML-DSig verifier: PDFs decide alone
        return None
    verdict = verify_envelope(
        package.package,
        trust_roots=list(anchors),
        allow_rsa_sha1=allow_rsa_sha1,
        revocation=engine.revocation,
        policy=policy,
        spill_dir=package.folder if isinstance(package.package, Path) else None,
    )
    return EnvelopeOutcome(
        indication=Indication(str(verdict.indication)),
        sub_indication=verdict.sub_indication or "",
        message=verdict.message,
        signer_subject=verdict.signer_subject,
        signer_certificate_der=verdict.signer_certificate_der,
        agency_code=verdict.agency_code or "",
        chain=tuple(verdict.chain),
        warnings=tuple(verdict.warnings),
    )


def record_verification(
    session: Session, *, submitted: events_pb2.Event, report: Report, verified_at: datetime
) -> events_pb2.Event:
    """Store the report and queue its DocumentVerified event in the same transaction."""
    document_id = submitted.document_id
    repository.save_report(session, document_id=document_id, report=report, verified_at=verified_at)
    source = submitted.submitted
    event = new_event(document_id, at=verified_at)
    event.verified.CopyFrom(
        events_pb2.DocumentVerified(
            sender_code=source.sender_code,
            recipient_codes=list(source.recipient_codes),
            edxml_document_id=source.edxml_document_id,
            subject=source.subject,
            indication=report.indication.value,
            sub_indication=report.sub_indication,
            reason=report.reason,
            signatures=[signature_result(check) for check in report.signatures],
            business_doc_type=source.business_doc_type,
            referenced_document_id=source.referenced_document_id,
        )
    )
    OUTBOX.add(session, topic=TOPIC_VERIFIED, key=document_id, event=event)
    return event


def signature_result(check: SignatureCheck) -> events_pb2.SignatureResult:
    """The protobuf form of one signature's outcome."""
    result = events_pb2.SignatureResult(
        attachment_name=check.attachment_name,
        field_name=check.field_name,
        indication=check.indication.value,
        sub_indication=check.sub_indication,
        signer_subject=check.signer_subject,
        signer_agency_code=check.signer_agency_code,
        chain=list(check.chain),
        message=check.message,
    )
    if check.signing_time is not None:
        result.signing_time.CopyFrom(timestamp(check.signing_time))
    return result
