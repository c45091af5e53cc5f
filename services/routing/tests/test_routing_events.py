"""Consuming DocumentVerified: deliveries per recipient, refusals, successor redirects."""

from __future__ import annotations

from routing_support import (
    HA_LONG,
    QUANG_NINH,
    SENDER,
    FakeDirectory,
    outbox_events,
    route,
    verified_event,
)
from sqlalchemy.orm import Session

from lienthong_common.outbox import TOPIC_DELIVERIES
from lienthong_routing import deliveries, repository
from lienthong_routing.consumers import VerifiedDocuments
from lienthong_routing.routed_documents import route_verified_document


def test_passed_document_is_delivered_to_each_recipient_with_events(
    session: Session, directory: FakeDirectory
) -> None:
    document_id = route(session, directory, recipients=[QUANG_NINH, HA_LONG])

    view = deliveries.document_state(session=session, document_id=document_id)
    assert view.document.state == "routed"
    assert view.document.sender_code == SENDER
    assert {(d.recipient_code, d.state, d.requested_code) for d in view.deliveries} == {
        (QUANG_NINH, "delivered", ""),
        (HA_LONG, "delivered", ""),
    }
    assert all(d.inbox_sequence == 1 for d in view.deliveries)
    assert [e.state for e in view.timeline] == ["delivered", "delivered"]

    queued = outbox_events(session)
    assert len(queued) == 2
    for topic, key, event in queued:
        assert topic == TOPIC_DELIVERIES
        assert key == document_id == event.document_id
        update = event.delivery_updated
        assert (update.state, update.previous_state, update.status_code) == ("delivered", "", "")
        assert update.sender_code == SENDER
    assert {e.delivery_updated.recipient_code for _, _, e in queued} == {QUANG_NINH, HA_LONG}


def test_document_fields_are_recorded(session: Session, directory: FakeDirectory) -> None:
    document_id = route(
        session,
        directory,
        recipients=[HA_LONG],
        business_doc_type=3,
        referenced_document_id="000.00.00.G22,2025/07/01,12/VPCP",
    )
    document = repository.get_document(session=session, document_id=document_id)
    assert document is not None
    assert document.subject == "Về việc triển khai liên thông văn bản"
    assert document.edxml_document_id.startswith(SENDER)
    # Business documents are delivered like new ones for now.
    assert (document.business_doc_type, document.referenced_document_id) == (
        3,
        "000.00.00.G22,2025/07/01,12/VPCP",
    )
    assert [d.state for d in repository.deliveries_of(session=session, document_id=document_id)] == [
        "delivered"
    ]


def test_refused_document_creates_no_delivery(session: Session, directory: FakeDirectory) -> None:
    document_id = route(
        session,
        directory,
        recipients=[HA_LONG, QUANG_NINH],
        indication="TOTAL_FAILED",
        sub_indication="HASH_FAILURE",
        reason="the PDF was modified after signing",
    )

    view = deliveries.document_state(session=session, document_id=document_id)
    assert view.document.state == "refused"
    assert view.document.refusal_reason == "the PDF was modified after signing"
    assert view.deliveries == []
    assert deliveries.inbox(session=session, agency_code=HA_LONG).items == []
    assert directory.calls == []  # nobody is resolved for a document nobody will see

    [(topic, key, event)] = outbox_events(session)
    assert (topic, key) == (TOPIC_DELIVERIES, document_id)
    assert event.WhichOneof("payload") == "refused"
    assert event.refused.sender_code == SENDER
    assert list(event.refused.recipient_codes) == [HA_LONG, QUANG_NINH]
    assert (event.refused.indication, event.refused.sub_indication) == ("TOTAL_FAILED", "HASH_FAILURE")


def test_indeterminate_without_reason_gets_one(session: Session, directory: FakeDirectory) -> None:
    document_id = route(
        session,
        directory,
        recipients=[HA_LONG],
        indication="INDETERMINATE",
        sub_indication="TRY_LATER",
    )
    document = repository.get_document(session=session, document_id=document_id)
    assert document is not None and document.state == "refused"
    assert document.refusal_reason == "signature verification ended INDETERMINATE (TRY_LATER)"


def test_dissolved_recipient_is_redirected_to_its_successor(session: Session) -> None:
    dissolved, successor = "000.00.24.H44", "000.00.00.H44"
    directory = FakeDirectory(successors={dissolved: successor})

    document_id = route(session, directory, recipients=[dissolved])

    view = deliveries.document_state(session=session, document_id=document_id)
    [delivery] = view.deliveries
    assert (delivery.recipient_code, delivery.requested_code) == (successor, dissolved)
    [entry] = view.timeline
    assert entry.description == (
        f"redirected from {dissolved} to {successor}: {dissolved} dissolved "
        f"({dissolved} was dissolved on 2025-07-01; its successor {successor} receives)"
    )
    [(_, _, event)] = outbox_events(session)
    assert event.delivery_updated.recipient_code == successor
    assert event.delivery_updated.requested_code == dissolved
    assert deliveries.inbox(session=session, agency_code=successor).items[0][1].id == document_id
    assert deliveries.inbox(session=session, agency_code=dissolved).items == []


def test_two_dissolved_recipients_with_one_successor_get_one_delivery(session: Session) -> None:
    successor = "000.00.00.H44"
    directory = FakeDirectory(successors={"000.00.24.H44": successor, "000.00.25.H44": successor})

    document_id = route(session, directory, recipients=["000.00.24.H44", "000.00.25.H44"])

    view = deliveries.document_state(session=session, document_id=document_id)
    assert [d.recipient_code for d in view.deliveries] == [successor]
    assert len(view.timeline) == 2
    assert len(outbox_events(session)) == 1


def test_recipient_missing_from_directory_is_noted_not_delivered(session: Session) -> None:
    directory = FakeDirectory(unknown={"000.00.00.H99"})

    document_id = route(session, directory, recipients=["000.00.00.H99", HA_LONG])

    view = deliveries.document_state(session=session, document_id=document_id)
    assert [d.recipient_code for d in view.deliveries] == [HA_LONG]
    assert any(
        e.state == "undeliverable" and "recipient 000.00.00.H99 is not in the directory" in e.description
        for e in view.timeline
    )


def test_second_verdict_for_the_same_document_changes_nothing(
    session: Session, directory: FakeDirectory
) -> None:
    first = verified_event(recipients=[HA_LONG])
    route_verified_document(session=session, event=first, directory=directory)
    again = verified_event(recipients=[HA_LONG], document_id=first.document_id, indication="TOTAL_FAILED")
    route_verified_document(session=session, event=again, directory=directory)

    view = deliveries.document_state(session=session, document_id=first.document_id)
    assert view.document.state == "routed"
    assert len(view.deliveries) == 1
    assert len(outbox_events(session)) == 1


def test_handler_ignores_other_payloads(session: Session, directory: FakeDirectory) -> None:
    event = verified_event(recipients=[HA_LONG])
    event.ClearField("verified")
    VerifiedDocuments(directory=directory).handle(session, event)
    assert repository.get_document(session=session, document_id=event.document_id) is None


def test_handler_resolves_as_of_the_verification_date_in_vietnam(
    session: Session, directory: FakeDirectory
) -> None:
    event = verified_event(recipients=[HA_LONG])
    event.occurred_at.FromJsonString("2025-06-30T18:30:00Z")  # 1 July 01:30 in Hà Nội
    VerifiedDocuments(directory=directory).handle(session, event)
    assert directory.calls[0][1].isoformat() == "2025-07-01"
