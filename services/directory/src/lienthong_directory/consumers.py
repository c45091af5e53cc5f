"""What the directory consumes: delivery events, to learn when an agency last exchanged
(connection status, connections.py)."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy.orm import Session

from lienthong.events.v1 import events_pb2
from lienthong_common.outbox import TOPIC_DELIVERIES
from lienthong_directory import connections


class DeliveryEvents:
    """Consumer of TOPIC_DELIVERIES: the sender, recipient and actor took part in an exchange.

    Idempotent twice over: the runtime records the event id in this transaction, and only the
    latest time per agency is kept.
    """

    topics = [TOPIC_DELIVERIES]

    def handle(self, session: Session, event: events_pb2.Event) -> None:
        if event.WhichOneof("payload") != "delivery_updated":
            return
        update = event.delivery_updated
        connections.record_delivery(
            session=session,
            codes=[update.sender_code, update.recipient_code, update.actor_code],
            at=event.occurred_at.ToDatetime(tzinfo=UTC),
        )
