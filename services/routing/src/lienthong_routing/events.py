"""What routing emits: DeliveryUpdated and DocumentRefused on TOPIC_DELIVERIES, keyed by
document id, queued through the outbox in the transaction that makes the change.
What it consumes is in consumers.py."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from lienthong.events.v1 import events_pb2
from lienthong_common.outbox import TOPIC_DELIVERIES, new_event
from lienthong_routing.models import OUTBOX, Delivery, RoutedDocument


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


def delivery_updated(
    *,
    document: RoutedDocument,
    delivery: Delivery,
    previous_state: str,
    status_code: str,
    description: str,
    actor_code: str,
    at: datetime,
) -> events_pb2.Event:
    """The DeliveryUpdated event of a delivery just created or changed."""
    return delivery_event(
        document=document,
        recipient_code=delivery.recipient_code,
        state=delivery.state,
        requested_code=delivery.requested_code,
        previous_state=previous_state,
        status_code=status_code,
        description=description,
        actor_code=actor_code,
        at=at,
    )


def delivery_event(
    *,
    document: RoutedDocument,
    recipient_code: str,
    state: str,
    requested_code: str,
    previous_state: str,
    status_code: str,
    description: str,
    actor_code: str,
    at: datetime,
) -> events_pb2.Event:
    """The DeliveryUpdated event of one delivery, from its fields."""
    event = new_event(document.id, at)
    update = event.delivery_updated
    update.sender_code = document.sender_code
    update.recipient_code = recipient_code
    update.state = state
    update.previous_state = previous_state
    update.status_code = status_code
    update.description = description
    update.actor_code = actor_code
    update.requested_code = requested_code
    return event


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
    event = delivery_updated(
        document=document,
        delivery=delivery,
        previous_state=previous_state,
        status_code=status_code,
        description=description,
        actor_code=actor_code,
        at=at,
    )
    OUTBOX.add(session, topic=TOPIC_DELIVERIES, key=document.id, event=event)
