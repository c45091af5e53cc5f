"""Counting events per agency and month, once each."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from statistics_support import COMMUNE, DEPARTMENT, SENDER, delivery, exchange, refused, verified

from lienthong.events.v1 import events_pb2
from lienthong_common.kafka import EventConsumer
from lienthong_common.outbox import TOPIC_DELIVERIES, TOPIC_SUBMITTED, TOPIC_VERIFIED, new_event
from lienthong_common.settings import KafkaSettings
from lienthong_statistics import repository
from lienthong_statistics.consumers import CONSUMER_GROUP, ExchangeEvents
from lienthong_statistics.domain import month_of
from lienthong_statistics.models import OUTBOX, AgencyMonthCount


def counts(session: Session) -> dict[tuple[str, str], tuple[int, int, int, int]]:
    rows = session.scalars(select(AgencyMonthCount))
    return {
        (r.agency_code, r.month): (r.documents_sent, r.documents_received, r.documents_refused, r.statuses)
        for r in rows
    }


def topic_of(event: events_pb2.Event) -> str:
    kind = event.WhichOneof("payload")
    return {"submitted": TOPIC_SUBMITTED, "verified": TOPIC_VERIFIED}.get(kind or "", TOPIC_DELIVERIES)


def test_one_sent_and_two_received_for_a_two_recipient_document(session: Session) -> None:
    for event in exchange(SENDER, [DEPARTMENT, COMMUNE], "2025-08-04T02:00:00Z"):
        ExchangeEvents().handle(session, event)

    assert counts(session) == {
        (SENDER, "2025-08"): (1, 0, 0, 0),
        (DEPARTMENT, "2025-08"): (0, 1, 0, 0),
        (COMMUNE, "2025-08"): (0, 1, 0, 0),
    }


def test_duplicates_are_not_double_counted(sessions: sessionmaker[Session]) -> None:
    consumer = EventConsumer(
        service="statistics",
        group=CONSUMER_GROUP,
        topics=[TOPIC_VERIFIED, TOPIC_DELIVERIES],
        settings=KafkaSettings(),
        sessions=sessions,
        outbox=OUTBOX,
        handler=ExchangeEvents().handle,
    )
    events = exchange(SENDER, [DEPARTMENT, COMMUNE], "2025-08-04T02:00:00Z")
    handled = [consumer.handle(topic_of(e), e.SerializeToString(), []) for e in events + events]

    assert handled == [True] * 3 + [False] * 3
    with sessions() as session:
        assert counts(session)[(SENDER, "2025-08")] == (1, 0, 0, 0)
        assert counts(session)[(DEPARTMENT, "2025-08")] == (0, 1, 0, 0)


def test_month_is_read_in_vietnam(session: Session) -> None:
    handle = ExchangeEvents().handle
    handle(session, verified(SENDER, [DEPARTMENT], "2025-06-30T17:30:00Z"))  # 1 July 00:30 ICT
    handle(session, verified(SENDER, [DEPARTMENT], "2025-06-30T16:59:59Z"))  # 30 June 23:59 ICT
    assert counts(session) == {(SENDER, "2025-07"): (1, 0, 0, 0), (SENDER, "2025-06"): (1, 0, 0, 0)}


def test_refusals_statuses_and_what_counts_nothing(session: Session) -> None:
    when = "2025-08-10T03:00:00Z"
    ExchangeEvents().handle(session, refused(SENDER, [DEPARTMENT], when))
    ExchangeEvents().handle(session, verified(SENDER, [DEPARTMENT], when, indication="TOTAL_FAILED"))
    ExchangeEvents().handle(session, verified(SENDER, [DEPARTMENT], when, indication="INDETERMINATE"))
    ExchangeEvents().handle(
        session,
        delivery(
            SENDER, DEPARTMENT, when, state="accepted", previous="delivered", code="03", actor=DEPARTMENT
        ),
    )
    ExchangeEvents().handle(
        session,
        delivery(
            SENDER, DEPARTMENT, when, state="recall_requested", previous="accepted", code="13", actor=SENDER
        ),
    )
    submitted = new_event("doc")
    submitted.submitted.sender_code = SENDER
    ExchangeEvents().handle(session, submitted)

    submitted_month = month_of(submitted.occurred_at.ToDatetime(tzinfo=UTC))
    assert counts(session) == {
        (SENDER, "2025-08"): (0, 0, 1, 1),
        (DEPARTMENT, "2025-08"): (0, 0, 0, 1),
        (SENDER, submitted_month): (0, 0, 0, 0),  # submitted: counted apart, below
    }
    assert repository.totals_by_agency(session=session)[SENDER]["documents_submitted"] == 1


def test_add_to_count_accumulates_on_one_row(session: Session) -> None:
    for _ in range(3):
        repository.add_to_count(session=session, agency_code=SENDER, month="2025-08", counter="statuses")
    repository.add_to_count(
        session=session, agency_code=SENDER, month="2025-08", counter="documents_sent", amount=2
    )
    assert counts(session) == {(SENDER, "2025-08"): (2, 0, 0, 3)}
