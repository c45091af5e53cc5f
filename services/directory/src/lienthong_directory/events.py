"""What the directory emits (AgencyChanged on TOPIC_DIRECTORY, keyed by agency code) and
consumes (delivery events, to learn when an agency last exchanged)."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy.orm import Session

from lienthong.events.v1 import events_pb2
from lienthong_common.outbox import TOPIC_DIRECTORY, new_event
from lienthong_directory.models import OUTBOX, AgencyVersion


def agency_changed(*, session: Session, version: AgencyVersion) -> None:
    """Queue AgencyChanged for a new version, in the transaction that records it."""
    event = new_event()
    changed = event.agency_changed
    changed.code = version.code
    changed.name = version.name
    changed.tier = version.tier
    changed.province_code = version.province_code
    changed.status = version.status
    OUTBOX.add(session, topic=TOPIC_DIRECTORY, key=version.code, event=event)


def handle_delivery_event(session: Session, event: events_pb2.Event) -> None:
    """Consumer of TOPIC_DELIVERIES: the sender, recipient and actor took part in an exchange.

    Idempotent twice over: the runtime records the event id in this transaction, and only the
    latest time per agency is kept.
    """
    from lienthong_directory import connections

    if event.WhichOneof("payload") != "delivery_updated":
        return
    update = event.delivery_updated
    at = event.occurred_at.ToDatetime(tzinfo=UTC)
    connections.record_delivery(
        session=session,
        codes=[update.sender_code, update.recipient_code, update.actor_code],
        at=at,
    )
