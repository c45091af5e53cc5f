"""What statistics consumes: submitted, verified and delivery events, counted per agency and month.

One consumer group ("lienthong-statistics") reads all three topics; the consumer helper records
each event id in the same transaction as the counts, so a redelivered event counts nothing.
The same handler rebuilds a fresh store from offset 0 (rebuild.py), so the two cannot diverge.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from lienthong.events.v1 import events_pb2
from lienthong_common.outbox import TOPIC_DELIVERIES, TOPIC_SUBMITTED, TOPIC_VERIFIED
from lienthong_statistics import repository
from lienthong_statistics.domain import effects_for

TOPICS = [TOPIC_SUBMITTED, TOPIC_VERIFIED, TOPIC_DELIVERIES]
CONSUMER_GROUP = "lienthong-statistics"


def handle_event(session: Session, event: events_pb2.Event) -> None:
    """Apply the event's effects (see domain.effects_for) to the counts and pending acknowledgements."""
    effects = effects_for(event)
    for tally in effects.tallies:
        repository.add_to_count(
            session=session, agency_code=tally.agency_code, month=tally.month, counter=tally.counter
        )
    for awaited in effects.awaits:
        repository.await_acknowledgement(
            session=session,
            document_id=awaited.document_id,
            recipient_code=awaited.recipient_code,
            day=awaited.day,
        )
    for ack in effects.acknowledgements:
        delivered_day = repository.acknowledge(
            session=session, document_id=ack.document_id, recipient_code=ack.recipient_code
        )
        if delivered_day is not None and ack.day > delivered_day:
            repository.add_to_count(
                session=session,
                agency_code=ack.recipient_code,
                month=ack.month,
                counter="acknowledgements_late",
            )
