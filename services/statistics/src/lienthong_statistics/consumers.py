"""What statistics consumes: submitted, verified and delivery events, counted per agency and month.

One consumer group ("lienthong-statistics") reads all three topics; the consumer helper records
each event id in the same transaction as the counts, so a redelivered event counts nothing.
The same handler rebuilds a fresh store from offset 0 (rebuild.py), so the two cannot diverge;
the rebuild pauses this consumer through the guard main.py gives it.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy.orm import Session

from lienthong.events.v1 import events_pb2
from lienthong_common.outbox import TOPIC_DELIVERIES, TOPIC_SUBMITTED, TOPIC_VERIFIED
from lienthong_statistics import repository
from lienthong_statistics.domain import effects_for

TOPICS = [TOPIC_SUBMITTED, TOPIC_VERIFIED, TOPIC_DELIVERIES]
CONSUMER_GROUP = "lienthong-statistics"


class ExchangeEvents:
    """Consumer of the submitted, verified and delivery topics: each event counted once."""

    topics = TOPICS

    def handle(self, session: Session, event: events_pb2.Event) -> None:
        count_event(session=session, event=event)


def count_event(*, session: Session, event: events_pb2.Event) -> None:
    """Apply the event's effects (see domain.effects_for) to the counts and pending
    acknowledgements: set-based, one statement for the awaited deliveries, one per
    acknowledgement (it needs the delivery day back) and one upsert for every counter."""
    effects = effects_for(event)
    amounts: Counter[tuple[str, str, str]] = Counter(
        (tally.agency_code, tally.month, tally.counter) for tally in effects.tallies
    )
    repository.await_acknowledgements(
        session=session,
        awaited=[(a.document_id, a.recipient_code, a.day) for a in effects.awaits],
    )
    for ack in effects.acknowledgements:
        delivered_day = repository.acknowledge_once(
            session=session, document_id=ack.document_id, recipient_code=ack.recipient_code
        )
        if delivered_day is not None and ack.day > delivered_day:
            amounts[(ack.recipient_code, ack.month, "acknowledgements_late")] += 1
    repository.add_counts(session=session, amounts=amounts)
