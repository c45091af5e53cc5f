"""What statistics consumes: submitted, verified and delivery events, counted per agency and month.

One consumer group ("lienthong-statistics") reads all three topics; the consumer helper records
each event id in the same transaction as the counts, so a redelivered event counts nothing.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from lienthong.events.v1 import events_pb2
from lienthong_common.outbox import TOPIC_DELIVERIES, TOPIC_SUBMITTED, TOPIC_VERIFIED
from lienthong_statistics import repository
from lienthong_statistics.domain import tallies_for

TOPICS = [TOPIC_SUBMITTED, TOPIC_VERIFIED, TOPIC_DELIVERIES]
CONSUMER_GROUP = "lienthong-statistics"


def handle_event(session: Session, event: events_pb2.Event) -> None:
    """Add the event's tallies (see domain.tallies_for) to the per-agency monthly counts."""
    for tally in tallies_for(event):
        repository.add_to_count(
            session=session, agency_code=tally.agency_code, month=tally.month, counter=tally.counter
        )
