"""Routing's main use case: a verified document is recorded, then delivered or refused.

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
from typing import Any

from sqlalchemy.orm import Session

from lienthong.events.v1 import events_pb2
from lienthong_common.clock import VIETNAM, now_utc
from lienthong_common.ids import new_id
from lienthong_common.outbox import TOPIC_DELIVERIES
from lienthong_common.settings import DeadlineSettings
from lienthong_routing import business, evidence, repository, webhooks
from lienthong_routing.clients import RecipientDirectory, Resolution
from lienthong_routing.deadlines import WorkingCalendar
from lienthong_routing.domain import REFUSED, ROUTED, DeliveryState, NewDelivery
from lienthong_routing.events import delivery_event, emit_document_refused
from lienthong_routing.models import OUTBOX, RoutedDocument

log = logging.getLogger(__name__)

PASSED = "TOTAL_PASSED"
UNDELIVERABLE = "undeliverable"
# Without a configured calendar (tests, benchmarks): Monday to Friday, no holidays.
DEFAULT_CALENDAR = WorkingCalendar.from_settings(DeadlineSettings())


def route_verified_document(
    *,
    session: Session,
    event: events_pb2.Event,
    directory: RecipientDirectory,
    calendar: WorkingCalendar | None = None,
) -> RoutedDocument:
    """Record a verified document, then deliver it to its recipients or refuse it.

    The writes are set-based Core statements in the caller's transaction: one INSERT each for
    the document, its deliveries, its timeline lines, its evidence entries (chained in memory
    from the locked head) and its outbox events. The caller's transaction may hold other
    events' effects too (a consumer batch): anything the session still holds unflushed is
    flushed first, so every read here sees what came before it in the transaction.
    """
    session.flush()
    verified = event.verified
    at = now_utc()
    recipients = list(dict.fromkeys(verified.recipient_codes))
    passed = verified.indication == PASSED
    # Not added to the session: written below with a Core INSERT, handed back for reading.
    document = RoutedDocument(
        id=event.document_id,
        sender_code=verified.sender_code,
        subject=verified.subject,
        edxml_document_id=verified.edxml_document_id,
        business_doc_type=verified.business_doc_type,
        referenced_document_id=verified.referenced_document_id,
        recipient_codes=recipients,
        state=ROUTED if passed else REFUSED,
        indication=verified.indication,
        sub_indication=verified.sub_indication,
        refusal_reason="" if passed else refusal_reason(verified),
        created_at=at,
    )
    if not repository.insert_document(session=session, document=document):
        existing = repository.get_document(session=session, document_id=event.document_id)
        assert existing is not None
        # A second verdict for one document (e.g. a re-verification) changes nothing already routed.
        log.warning("document %s was already %s; verdict ignored", event.document_id, existing.state)
        return existing
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
    if not passed:
        evidence.append_many(session=session, at=at, items=proof)
        emit_document_refused(session=session, document=document, at=at)
        return document
    planned = _deliver(
        session=session,
        document=document,
        recipients=recipients,
        as_of=event.occurred_at.ToDatetime(tzinfo=UTC).astimezone(VIETNAM).date(),
        deadline=(calendar or DEFAULT_CALENDAR).acknowledgement_deadline(at),
        directory=directory,
        proof=proof,
        at=at,
    )
    OUTBOX.add_many(
        session,
        topic=TOPIC_DELIVERIES,
        events=[
            (
                document.id,
                delivery_event(
                    document=document,
                    recipient_code=delivery.recipient_code,
                    state=delivery.state,
                    requested_code=delivery.requested_code,
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
    created = [delivery for delivery, _note in planned]
    pushed_to = webhooks.active_webhooks(session=session, agency_codes=[d.recipient_code for d in created])
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
        business.apply(
            session=session,
            document=document,
            new_recipients={d.recipient_code for d in created},
            at=at,
        )
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
) -> list[tuple[NewDelivery, str]]:
    """Write the deliveries, timeline and evidence of a routed document: one INSERT each.

    Returns each delivery with its redirect note ("" when not redirected).
    """
    resolutions = directory.resolve_recipients(recipients, as_of=as_of)
    targets = list(dict.fromkeys(r.resolved_code for r in resolutions if r.found))
    sequences = repository.last_inbox_sequences(session=session, recipient_codes=targets)
    delivered_to: dict[str, tuple[NewDelivery, str]] = {}
    lines: list[dict[str, Any]] = []

    def line(recipient: str, state: str, description: str) -> None:
        lines.append(
            {
                "document_id": document.id,
                "recipient_code": recipient,
                "code": "",
                "state": state,
                "description": description,
                "actor_code": "",
                "at": at,
            }
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
        delivery = NewDelivery(
            id=new_id(),
            recipient_code=recipient,
            requested_code=requested if resolution.redirected else "",
            inbox_sequence=sequences[recipient],
            delivered_at=at,
            ack_deadline=deadline,
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
    repository.note_inbox_sequences(
        session=session, last={d.recipient_code: d.inbox_sequence for d, _ in planned}
    )
    repository.insert_deliveries(
        session=session,
        rows=[
            {
                "id": delivery.id,
                "document_id": document.id,
                "recipient_code": delivery.recipient_code,
                "requested_code": delivery.requested_code,
                "state": delivery.state,
                "last_status_code": "",
                "inbox_sequence": delivery.inbox_sequence,
                "delivered_at": at,
                "updated_at": at,
                "ack_deadline": deadline,
                "acknowledged_at": None,
                "superseded_by": "",
            }
            for delivery, _note in planned
        ],
    )
    repository.insert_status_entries(session=session, rows=lines)
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
