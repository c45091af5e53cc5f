"""Recording a delivery's change everywhere it must show, in the caller's transaction.

One change of a delivery is, at once: its new state, a timeline line, a DeliveryUpdated event
(outbox), an evidence-log entry and, for a business status, an edXML status package for the
other party, pushed to its webhook when it has one, and a status message per addressee for
its system to pull (status_messages.py). Keeping these together here is what makes each of
them complete: none is written without the others.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from lienthong_routing import evidence, repository, status_messages, status_packages, webhooks
from lienthong_routing.deadlines import ACKNOWLEDGING_CODES
from lienthong_routing.domain import DeliveryState, StatusCode, next_state
from lienthong_routing.events import emit_delivery_updated
from lienthong_routing.models import Delivery, RoutedDocument


def record_change(
    *,
    session: Session,
    document: RoutedDocument,
    delivery: Delivery,
    previous_state: str,
    status_code: str,
    description: str,
    actor_code: str,
    at: datetime,
    kind: str = "status",
    timeline_note: str = "",
    extra: dict[str, str] | None = None,
) -> None:
    """Timeline, event and evidence for a delivery whose state was just set."""
    repository.add_status_entry(
        session=session,
        document_id=document.id,
        recipient_code=delivery.recipient_code,
        code=status_code,
        state=delivery.state,
        description=timeline_note or description,
        actor_code=actor_code,
        at=at,
    )
    emit_delivery_updated(
        session=session,
        document=document,
        delivery=delivery,
        previous_state=previous_state,
        status_code=status_code,
        description=description,
        actor_code=actor_code,
        at=at,
    )
    evidence.append(
        session=session,
        kind=kind,
        document_id=document.id,
        recipient_code=delivery.recipient_code,
        at=at,
        facts={
            "delivery": delivery.id,
            "sender": document.sender_code,
            "previous_state": previous_state,
            "state": delivery.state,
            "code": status_code,
            "actor": actor_code,
            "description": description,
            **(extra or {}),
        },
    )


def apply_status(
    *,
    session: Session,
    document: RoutedDocument,
    delivery: Delivery,
    status: StatusCode,
    description: str,
    actor_code: str,
    at: datetime,
) -> None:
    """Move one delivery by a status code (raises 409 when illegal) and record it."""
    previous = DeliveryState(delivery.state)
    delivery.state = next_state(recipient_code=delivery.recipient_code, current=previous, code=status)
    delivery.last_status_code = status.value
    delivery.updated_at = at
    if status.value in ACKNOWLEDGING_CODES and delivery.acknowledged_at is None:
        delivery.acknowledged_at = at
    record_change(
        session=session,
        document=document,
        delivery=delivery,
        previous_state=previous.value,
        status_code=status.value,
        description=description,
        actor_code=actor_code,
        at=at,
    )


def send_status_package(
    *,
    session: Session,
    document: RoutedDocument,
    from_code: str,
    to_codes: list[str],
    status: StatusCode,
    description: str,
    at: datetime,
) -> list[str]:
    """Tell `to_codes` of a status: a pending status message each (their ids, in order), the
    edXML package kept, and that package pushed to those with a webhook."""
    entry = status_packages.record(
        session=session,
        document=document,
        from_code=from_code,
        status_code=status.value,
        description=description,
        at=at,
    )
    message_ids = status_messages.create(
        session=session,
        document=document,
        from_code=from_code,
        to_codes=to_codes,
        status_code=status.value,
        description=description,
        at=at,
        status_package_id=entry.id if entry is not None else None,
    )
    if entry is None:
        return message_ids
    for code in sorted(webhooks.active_webhooks(session=session, agency_codes=to_codes)):
        webhooks.enqueue(
            session=session,
            agency_code=code,
            document_id=document.id,
            kind=webhooks.KIND_STATUS,
            build=lambda payload_id: status_packages.webhook_payload(document, entry, payload_id),
            at=at,
        )
    return message_ids
