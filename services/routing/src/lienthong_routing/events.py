"""What routing consumes (DocumentVerified) and emits (DeliveryUpdated, DocumentRefused).

A document that passed verification (TOTAL_PASSED) is recorded and put at once into each
recipient's inbox (state `delivered`); recipients are resolved through the directory first,
so a document addressed to a dissolved agency goes to its successor, with the requested code
kept on the delivery and the redirect noted on the timeline. Any other verdict refuses the
document: it is recorded with the reason, DocumentRefused is emitted, and no recipient ever
sees it.

Each delivery gets its acknowledgement deadline (deadlines.py), an evidence-log entry, and a
webhook payload when the recipient registered one. Business documents (BussinessDocType 1
recall, 2 update, 3 replace, referring to another DocumentId) are delivered like new ones and
then act on the document they refer to (business.py).
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, date, datetime

from sqlalchemy.orm import Session

from lienthong.events.v1 import events_pb2
from lienthong_common.ids import new_id
from lienthong_common.outbox import TOPIC_DELIVERIES, new_event, now_utc
from lienthong_common.timezones import VIETNAM
from lienthong_routing import business, evidence, repository, webhooks
from lienthong_routing.deadlines import WorkingCalendar
from lienthong_routing.directory import RecipientDirectory, Resolution
from lienthong_routing.domain import DeliveryState
from lienthong_routing.ledger import delivery_updated
from lienthong_routing.models import OUTBOX, Delivery, RoutedDocument, StatusEntry
from lienthong_routing.settings import routing_settings

log = logging.getLogger(__name__)

PASSED = "TOTAL_PASSED"
ROUTED = "routed"
REFUSED = "refused"
UNDELIVERABLE = "undeliverable"


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


def handle_event(
    session: Session,
    event: events_pb2.Event,
    *,
    directory: RecipientDirectory,
    calendar: WorkingCalendar | None = None,
) -> None:
    """Consumer of TOPIC_VERIFIED: route or refuse each verified document."""
    if event.WhichOneof("payload") != "verified":
        return
    route_verified_document(session=session, event=event, directory=directory, calendar=calendar)


def default_calendar() -> WorkingCalendar:
    return WorkingCalendar.from_settings(routing_settings().deadlines)


def route_verified_document(
    *,
    session: Session,
    event: events_pb2.Event,
    directory: RecipientDirectory,
    calendar: WorkingCalendar | None = None,
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
    document = RoutedDocument(
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
    )
    session.add(document)
    session.flush()  # deliveries reference it (no ORM relationship orders the inserts)
    proof: list[evidence.Fact] = [
        evidence.Fact(
            kind=document.state,
            document_id=document.id,
            facts={
                "sender": document.sender_code,
                "recipients": recipients,
                "edxml_document_id": document.edxml_document_id,
                "business_doc_type": document.business_doc_type,
                "referenced_document_id": document.referenced_document_id,
                "indication": document.indication,
                "sub_indication": document.sub_indication,
                "refusal_reason": document.refusal_reason,
            },
        )
    ]
    if document.state == REFUSED:
        evidence.append_many(session=session, at=at, items=proof)
        session.flush()
        emit_document_refused(session=session, document=document, at=at)
        return document
    # One flush for the deliveries, timeline and evidence (no autoflush between).
    with session.no_autoflush:
        planned = _deliver(
            session=session,
            document=document,
            recipients=recipients,
            as_of=event.occurred_at.ToDatetime(tzinfo=UTC).astimezone(VIETNAM).date(),
            deadline=(calendar or default_calendar()).acknowledgement_deadline(at),
            directory=directory,
            proof=proof,
            at=at,
        )
    session.flush()
    created = [delivery for delivery, _note in planned]
    pushed_to = webhooks.active_webhooks(session=session, agency_codes=[d.recipient_code for d in created])
    OUTBOX.add_many(
        session,
        topic=TOPIC_DELIVERIES,
        events=[
            (
                document.id,
                delivery_updated(
                    document=document,
                    delivery=delivery,
                    previous_state="",
                    status_code="",
                    description=note,
                    actor_code="",
                    at=at,
                ),
            )
            for delivery, note in planned
        ],
    )
    for delivery in created:
        if delivery.recipient_code in pushed_to:
            webhooks.enqueue(
                session=session,
                agency_code=delivery.recipient_code,
                document_id=document.id,
                delivery_id=delivery.id,
                kind=webhooks.KIND_DELIVERY,
                build=functools.partial(webhooks.delivery_payload, document, delivery),
                at=at,
            )
    if document.business_doc_type and document.referenced_document_id:
        business.apply(session=session, document=document, deliveries=created, at=at)
    return document


def _deliver(
    *,
    session: Session,
    document: RoutedDocument,
    recipients: list[str],
    as_of: date,
    deadline: datetime,
    directory: RecipientDirectory,
    proof: list[evidence.Fact],
    at: datetime,
) -> list[tuple[Delivery, str]]:
    """Create the deliveries, timeline and evidence of a routed document in one flush.

    Returns each delivery with its redirect note ("" when not redirected).
    """
    resolutions = directory.resolve_recipients(recipients, as_of=as_of)
    targets = list(dict.fromkeys(r.resolved_code for r in resolutions if r.found))
    sequences = repository.last_inbox_sequences(session=session, recipient_codes=targets)
    delivered_to: dict[str, tuple[Delivery, str]] = {}
    lines: list[StatusEntry] = []

    def line(recipient: str, state: str, description: str) -> None:
        lines.append(
            StatusEntry(
                document_id=document.id,
                recipient_code=recipient,
                code="",
                state=state,
                description=description,
                actor_code="",
                at=at,
            )
        )

    for resolution in resolutions:
        requested = resolution.requested_code
        if not resolution.found:
            line(
                requested,
                UNDELIVERABLE,
                resolution.reason or f"recipient {requested} is not in the directory",
            )
            continue
        recipient = resolution.resolved_code
        note = redirect_note(resolution) if resolution.redirected else ""
        if resolution.group_code:
            note = f"delivered as a member of group {resolution.group_code}"
        if recipient in delivered_to:
            # Two requested codes led to one successor: one delivery, the redirect still noted.
            line(recipient, DeliveryState.DELIVERED, note or f"{requested} listed twice")
            continue
        sequences[recipient] = sequences.get(recipient, 0) + 1
        delivery = Delivery(
            id=new_id(),
            document_id=document.id,
            recipient_code=recipient,
            requested_code=requested if resolution.redirected else "",
            state=DeliveryState.DELIVERED.value,
            last_status_code="",
            inbox_sequence=sequences[recipient],
            delivered_at=at,
            updated_at=at,
            ack_deadline=deadline,
            acknowledged_at=None,
            superseded_by="",
        )
        delivered_to[recipient] = (delivery, note)
        line(recipient, DeliveryState.DELIVERED, note or "delivered to the recipient's inbox")
        proof.append(
            evidence.Fact(
                kind="delivered",
                document_id=document.id,
                recipient_code=recipient,
                facts={
                    "delivery": delivery.id,
                    "sender": document.sender_code,
                    "requested_code": delivery.requested_code,
                    "inbox_sequence": delivery.inbox_sequence,
                    "ack_deadline": deadline.isoformat(),
                    "note": note,
                },
            )
        )
    planned = list(delivered_to.values())
    session.add_all([delivery for delivery, _note in planned])
    session.add_all(lines)
    evidence.append_many(session=session, at=at, items=proof)
    return planned


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
