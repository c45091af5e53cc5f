"""Consumes DocumentSubmitted, emits DocumentVerified (through the outbox, keyed by document id)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from opentelemetry import trace
from sqlalchemy.orm import Session

from lienthong.events.v1 import events_pb2
from lienthong_common.kafka import Handler
from lienthong_common.outbox import TOPIC_VERIFIED, new_event, now_utc, timestamp
from lienthong_common.pades import PdfVerifier
from lienthong_sigverify import repository
from lienthong_sigverify.domain import BindingCheck, Report, SignatureCheck, verify_package
from lienthong_sigverify.models import OUTBOX

log = logging.getLogger(__name__)

# Fetches a stored package's bytes by platform document id.
PackageSource = Callable[[str], bytes]

VERDICT_ATTRIBUTE = "lienthong.verdict.indication"


def on_document_submitted(
    *, fetch_package: PackageSource, verifier: PdfVerifier, binding_check: BindingCheck | None
) -> Handler:
    """The TOPIC_SUBMITTED handler: verify the package, store the report, announce the verdict."""

    def handle(session: Session, event: events_pb2.Event) -> None:
        if event.WhichOneof("payload") != "submitted":
            return
        if repository.report_exists(session, document_id=event.document_id):
            # Already verified under another event id: the first verdict stands.
            log.info("document %s already verified; event %s ignored", event.document_id, event.event_id)
            return
        package = fetch_package(event.document_id)
        report = verify_package(package, verifier=verifier, binding_check=binding_check)
        record_verification(session, submitted=event, report=report, verified_at=now_utc())
        trace.get_current_span().set_attribute(VERDICT_ATTRIBUTE, report.indication.value)
        log.info(
            "document %s verified: %s %s (%s)",
            event.document_id,
            report.indication.value,
            report.sub_indication,
            report.reason,
        )

    return handle


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
