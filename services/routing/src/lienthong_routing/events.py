"""What routing consumes (DocumentVerified) and emits (DeliveryUpdated, DocumentRefused).

A document that passed verification (TOTAL_PASSED) is recorded and put at once into each
recipient's inbox (state `delivered`); recipients are resolved through the directory first,
so a document addressed to a dissolved agency goes to its successor, with the requested code
kept on the delivery and the redirect noted on the timeline. Any other verdict refuses the
document: it is recorded with the reason, DocumentRefused is emitted, and no recipient ever
sees it.

Business documents (BussinessDocType 1 recall, 2 update, 3 replace, referring to another
DocumentId) are for now recorded with their type and referenced id and delivered like new
documents. Acting on the referenced document (cancelling or superseding its deliveries) is a
later issue; the sender's recall request is status 13 (see deliveries.post_status).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from lienthong.events.v1 import events_pb2
from lienthong_common.outbox import TOPIC_DELIVERIES, new_event, now_utc
from lienthong_routing import repository
from lienthong_routing.directory import RecipientDirectory, Resolution
from lienthong_routing.domain import DeliveryState
from lienthong_routing.models import OUTBOX, Delivery, RoutedDocument

log = logging.getLogger(__name__)

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
PASSED = "TOTAL_PASSED"
ROUTED = "routed"
REFUSED = "refused"
UNDELIVERABLE = "undeliverable"


def emit_delivery_updated(
    *,
    session: Session,
    document: RoutedDocument,
    delivery: Delivery,
    previous_state: str,
    status_code: str,
    description: str,
    actor_code: str,
    at: datetime,
) -> None:
    """Queue DeliveryUpdated for a delivery just created or changed, in the caller's transaction."""
    event = new_event(document.id, at)
    event.delivery_updated.CopyFrom(
        events_pb2.DeliveryUpdated(
            sender_code=document.sender_code,
            recipient_code=delivery.recipient_code,
            state=delivery.state,
            previous_state=previous_state,
            status_code=status_code,
            description=description,
            actor_code=actor_code,
            requested_code=delivery.requested_code,
        )
    )
    OUTBOX.add(session, topic=TOPIC_DELIVERIES, key=document.id, event=event)


def emit_document_refused(*, session: Session, document: RoutedDocument, at: datetime) -> None:
    event = new_event(document.id, at)
    event.refused.CopyFrom(
        events_pb2.DocumentRefused(
            sender_code=document.sender_code,
            recipient_codes=document.recipient_codes,
            indication=document.indication,
            sub_indication=document.sub_indication,
            reason=document.refusal_reason,
        )
    )
    OUTBOX.add(session, topic=TOPIC_DELIVERIES, key=document.id, event=event)


def handle_event(session: Session, event: events_pb2.Event, *, directory: RecipientDirectory) -> None:
    """Consumer of TOPIC_VERIFIED: route or refuse each verified document."""
    if event.WhichOneof("payload") != "verified":
        return
    route_verified_document(session=session, event=event, directory=directory)


def route_verified_document(
    *, session: Session, event: events_pb2.Event, directory: RecipientDirectory
) -> RoutedDocument:
    """Record a verified document, then deliver it to its recipients or refuse it."""
    verified = event.verified
    existing = repository.get_document(session=session, document_id=event.document_id)
    if existing is not None:
        # A second verdict for one document (e.g. a re-verification) changes nothing already routed.
        log.warning("document %s was already %s; verdict ignored", event.document_id, existing.state)
        return existing
    at = now_utc()
    recipients = list(dict.fromkeys(verified.recipient_codes))
    document = repository.add_document(
        session=session,
        document=RoutedDocument(
            id=event.document_id,
            sender_code=verified.sender_code,
            subject=verified.subject,
            edxml_document_id=verified.edxml_document_id,
            business_doc_type=verified.business_doc_type,
            referenced_document_id=verified.referenced_document_id,
            recipient_codes=recipients,
            state=ROUTED if verified.indication == PASSED else REFUSED,
            indication=verified.indication,
            sub_indication=verified.sub_indication,
            refusal_reason="" if verified.indication == PASSED else refusal_reason(verified),
            created_at=at,
        ),
    )
    if document.state == REFUSED:
        emit_document_refused(session=session, document=document, at=at)
        return document
    as_of = event.occurred_at.ToDatetime(tzinfo=UTC).astimezone(VIETNAM).date()
    delivered_to: set[str] = set()
    for resolution in directory.resolve_recipients(recipients, as_of=as_of):
        requested = resolution.requested_code
        if not resolution.found:
            repository.add_status_entry(
                session=session,
                document_id=document.id,
                recipient_code=requested,
                code="",
                state=UNDELIVERABLE,
                description=resolution.reason or f"recipient {requested} is not in the directory",
                actor_code="",
                at=at,
            )
            continue
        recipient = resolution.resolved_code
        note = redirect_note(resolution) if resolution.redirected else ""
        if recipient in delivered_to:
            # Two requested codes led to one successor: one delivery, the redirect still noted.
            repository.add_status_entry(
                session=session,
                document_id=document.id,
                recipient_code=recipient,
                code="",
                state=DeliveryState.DELIVERED,
                description=note or f"{requested} listed twice",
                actor_code="",
                at=at,
            )
            continue
        delivered_to.add(recipient)
        delivery = repository.add_delivery(
            session=session,
            document_id=document.id,
            recipient_code=recipient,
            requested_code=requested if resolution.redirected else "",
            state=DeliveryState.DELIVERED,
            at=at,
        )
        repository.add_status_entry(
            session=session,
            document_id=document.id,
            recipient_code=recipient,
            code="",
            state=DeliveryState.DELIVERED,
            description=note or "delivered to the recipient's inbox",
            actor_code="",
            at=at,
        )
        emit_delivery_updated(
            session=session,
            document=document,
            delivery=delivery,
            previous_state="",
            status_code="",
            description=note,
            actor_code="",
            at=at,
        )
    return document


def redirect_note(resolution: Resolution) -> str:
    """The timeline note of a redirect, with the directory's own account of it when given."""
    requested, recipient = resolution.requested_code, resolution.resolved_code
    note = f"redirected from {requested} to {recipient}: {requested} dissolved"
    return f"{note} ({resolution.reason})" if resolution.reason else note


def refusal_reason(verified: events_pb2.DocumentVerified) -> str:
    """The verifier's reason, or one built from its indication when it gave none."""
    if verified.reason:
        return verified.reason
    detail = f" ({verified.sub_indication})" if verified.sub_indication else ""
    return f"signature verification ended {verified.indication or 'without a verdict'}{detail}"
