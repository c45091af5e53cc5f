"""Status messages: each recorded status waits for its addressee's system, as a VNPT package."""

from __future__ import annotations

from datetime import timedelta

import pytest
from routing_support import HA_LONG, QUANG_NINH, SENDER, FakeDirectory, route, verified_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from lienthong_common import edxml
from lienthong_common.clock import now_utc
from lienthong_common.edxml import BUSINESS_RECALL
from lienthong_common.errors import DomainError, ErrorKind
from lienthong_routing import deliveries, repository, vdxp_pending
from lienthong_routing.models import StatusMessage
from lienthong_routing.routed_documents import route_verified_document

THIRD = "000.00.02.H49"
DOCUMENT_ID = f"{SENDER},2025/07/15,7816/VPCP-TTĐT"


def pending(session: Session, *codes: str, kind: str = "", limit: int = 0) -> vdxp_pending.PendingList:
    return vdxp_pending.list_pending(session=session, agency_codes=list(codes), kind=kind, limit=limit)


def ack(session: Session, message_id: str, outcome: str, *codes: str) -> vdxp_pending.PendingItem:
    return vdxp_pending.acknowledge_status_message(
        session=session, message_id=message_id, agency_codes=list(codes), outcome=outcome
    )


def test_a_recipients_status_waits_for_the_sender_until_done(
    session: Session, directory: FakeDirectory
) -> None:
    document_id = route(session, directory, recipients=[HA_LONG])
    posted = deliveries.post_status(
        session=session, document_id=document_id, actor_code=HA_LONG, code="03", description="Đã tiếp nhận"
    )

    [message_id] = posted.status_message_ids
    [item] = pending(session, SENDER).items
    assert (item.id, item.kind, item.from_code, item.to_code, item.state) == (
        message_id,
        "status",
        HA_LONG,
        SENDER,
        "pending",
    )
    assert (item.document_id, item.status_code, item.description) == (document_id, "03", "Đã tiếp nhận")
    assert item.edxml_document_id == DOCUMENT_ID
    assert pending(session, HA_LONG, kind="status").items == []  # nothing for the one who posted it

    done = ack(session, message_id, "done", SENDER)
    assert done.state == "done"
    assert pending(session, SENDER).total == 0
    assert ack(session, message_id, "done", SENDER).state == "done"  # acknowledging twice is fine


def test_the_senders_recall_request_reaches_each_recipient_it_moved(
    session: Session, directory: FakeDirectory
) -> None:
    document_id = route(session, directory, recipients=[HA_LONG, QUANG_NINH, THIRD])
    deliveries.post_status(session=session, document_id=document_id, actor_code=THIRD, code="02")

    posted = deliveries.post_status(session=session, document_id=document_id, actor_code=SENDER, code="13")

    assert len(posted.status_message_ids) == 2
    items = pending(session, HA_LONG, QUANG_NINH, THIRD, kind="status").items
    assert {(i.to_code, i.from_code, i.status_code) for i in items} == {
        (HA_LONG, SENDER, "13"),
        (QUANG_NINH, SENDER, "13"),  # THIRD refused the document: no recall to answer
    }
    assert sorted(i.id for i in items) == sorted(posted.status_message_ids)


def test_a_recall_document_also_sends_13_to_the_recipients(
    session: Session, directory: FakeDirectory
) -> None:
    old = route(session, directory, recipients=[HA_LONG])
    recall = verified_event(
        recipients=[HA_LONG],
        business_doc_type=BUSINESS_RECALL,
        referenced_document_id=DOCUMENT_ID,
        edxml_document_id=f"{SENDER},2025/07/16,7817/VPCP-TTĐT",
    )
    route_verified_document(session=session, event=recall, directory=directory)

    [item] = pending(session, HA_LONG, kind="status").items
    assert (item.document_id, item.status_code, item.from_code) == (old, "13", SENDER)


def test_a_repeated_post_answers_with_the_first_messages(session: Session, directory: FakeDirectory) -> None:
    document_id = route(session, directory, recipients=[HA_LONG, QUANG_NINH])
    first = deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="03")
    again = deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="03")
    assert again.status_message_ids == first.status_message_ids
    assert [(d.recipient_code, d.state) for d in again.deliveries] == [(HA_LONG, "accepted")]

    recall = deliveries.post_status(session=session, document_id=document_id, actor_code=SENDER, code="13")
    recall_again = deliveries.post_status(
        session=session, document_id=document_id, actor_code=SENDER, code="13"
    )
    assert recall_again.status_message_ids == recall.status_message_ids
    assert {d.recipient_code for d in recall_again.deliveries} == {HA_LONG, QUANG_NINH}

    count = session.scalars(select(StatusMessage).where(StatusMessage.document_id == document_id)).all()
    assert len(count) == 3  # 03 to the sender, 13 to each recipient: nothing added by the repeats


def test_only_the_latest_identical_status_is_a_repeat(session: Session, directory: FakeDirectory) -> None:
    document_id = route(session, directory, recipients=[HA_LONG])
    deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="03")
    with pytest.raises(DomainError) as other_text:
        deliveries.post_status(
            session=session, document_id=document_id, actor_code=HA_LONG, code="03", description="khác"
        )
    assert other_text.value.kind is ErrorKind.CONFLICT
    deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="05")
    with pytest.raises(DomainError) as older:
        deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="03")
    assert older.value.message == f"delivery to {HA_LONG} is 'in_progress'; status 03 cannot follow it"


@pytest.mark.parametrize(("outcome", "state"), [("fail", "failed"), ("processing", "processing")])
def test_fail_and_processing_keep_it_pending(
    session: Session, directory: FakeDirectory, outcome: str, state: str
) -> None:
    document_id = route(session, directory, recipients=[HA_LONG])
    [message_id] = deliveries.post_status(
        session=session, document_id=document_id, actor_code=HA_LONG, code="01"
    ).status_message_ids

    assert ack(session, message_id, outcome.upper(), SENDER).state == state
    listed = pending(session, SENDER)
    assert [(i.id, i.state) for i in listed.items] == [(message_id, state)]
    assert listed.total == 1
    assert ack(session, message_id, "done", SENDER).state == "done"
    with pytest.raises(DomainError) as reopened:
        ack(session, message_id, outcome, SENDER)
    assert reopened.value.kind is ErrorKind.CONFLICT
    assert "already acknowledged done" in reopened.value.message


def test_an_unknown_outcome_is_invalid(session: Session, directory: FakeDirectory) -> None:
    document_id = route(session, directory, recipients=[HA_LONG])
    [message_id] = deliveries.post_status(
        session=session, document_id=document_id, actor_code=HA_LONG, code="01"
    ).status_message_ids
    with pytest.raises(DomainError) as raised:
        ack(session, message_id, "received", SENDER)
    assert raised.value.kind is ErrorKind.INVALID
    assert raised.value.message == "outcome 'received' is not one of done, fail, processing"


def test_someone_elses_message_is_not_found(session: Session, directory: FakeDirectory) -> None:
    document_id = route(session, directory, recipients=[HA_LONG])
    [message_id] = deliveries.post_status(
        session=session, document_id=document_id, actor_code=HA_LONG, code="01"
    ).status_message_ids
    for attempt in (
        lambda: vdxp_pending.status_message(session=session, message_id=message_id, agency_codes=[HA_LONG]),
        lambda: ack(session, message_id, "done", HA_LONG, QUANG_NINH),
        lambda: ack(session, "no-such-message", "done", SENDER),
    ):
        with pytest.raises(DomainError) as raised:
            attempt()
        assert raised.value.kind is ErrorKind.NOT_FOUND
    assert pending(session, SENDER).total == 1  # untouched


def test_pending_merges_documents_and_statuses_over_two_agencies(
    session: Session, directory: FakeDirectory
) -> None:
    start = now_utc() + timedelta(minutes=1)
    to_ha_long = route(session, directory, recipients=[HA_LONG])
    [delivery] = repository.deliveries_of(session=session, document_id=to_ha_long)
    delivery.delivered_at = now_utc() - timedelta(minutes=1)  # the oldest item
    answered = route(session, directory, recipients=[HA_LONG, QUANG_NINH], sender=THIRD)
    deliveries.post_status(
        session=session, document_id=answered, actor_code=HA_LONG, code="03", at=start
    )  # answered leaves HA_LONG's edoc list, and tells THIRD
    recalled = deliveries.post_status(
        session=session,
        document_id=answered,
        actor_code=THIRD,
        code="13",
        at=start + timedelta(seconds=1),
    )  # the recall moves QUANG_NINH's untaken delivery out of its edoc list too
    to_quang_ninh = route(session, directory, recipients=[QUANG_NINH])

    listed = pending(session, HA_LONG, QUANG_NINH)
    assert [(i.kind, i.to_code, i.document_id) for i in listed.items[:2]] == [
        ("edoc", HA_LONG, to_ha_long),
        ("edoc", QUANG_NINH, to_quang_ninh),
    ]
    # The recall request, to each recipient: one instant, so in either order.
    assert {(i.kind, i.to_code, i.document_id) for i in listed.items[2:]} == {
        ("status", HA_LONG, answered),
        ("status", QUANG_NINH, answered),
    }
    assert listed.total == 4
    assert {i.id for i in listed.items if i.kind == "status"} == set(recalled.status_message_ids)
    edoc = listed.items[0]
    assert (edoc.id, edoc.from_code, edoc.state, edoc.subject) == (
        to_ha_long,
        SENDER,
        "pending",
        "Về việc triển khai liên thông văn bản",
    )

    first_two = pending(session, HA_LONG, QUANG_NINH, limit=2)
    assert [i.kind for i in first_two.items] == ["edoc", "edoc"] and first_two.total == 4
    only_status = pending(session, HA_LONG, QUANG_NINH, kind="status", limit=1)
    assert [i.kind for i in only_status.items] == ["status"] and only_status.total == 2
    assert [i.kind for i in pending(session, HA_LONG, kind="edoc").items] == ["edoc"]
    assert [(i.kind, i.to_code) for i in pending(session, THIRD).items] == [("status", THIRD)]


def test_fetching_a_document_takes_it_out_and_tells_the_sender(
    session: Session, directory: FakeDirectory
) -> None:
    document_id = route(session, directory, recipients=[HA_LONG])
    assert [i.id for i in pending(session, HA_LONG).items] == [document_id]
    # What the gateway records when the recipient's system fetches the document.
    deliveries.post_status(
        session=session,
        document_id=document_id,
        actor_code=HA_LONG,
        code="01",
        description="fetched through the gateway",
    )
    assert pending(session, HA_LONG).total == 0
    [item] = pending(session, SENDER).items
    assert (item.status_code, item.from_code) == ("01", HA_LONG)


@pytest.mark.parametrize(
    ("kind", "limit", "codes", "message"),
    [
        ("documents", 0, [HA_LONG], "kind 'documents' is not one of '', 'edoc', 'status'"),
        ("", -1, [HA_LONG], "limit must be between 1 and 1000 (0 means 100)"),
        ("", 0, ["", " "], "agency_codes is required: the agencies the caller acts for"),
    ],
)
def test_bad_pending_requests_are_invalid(
    session: Session, kind: str, limit: int, codes: list[str], message: str
) -> None:
    with pytest.raises(DomainError) as raised:
        pending(session, *codes, kind=kind, limit=limit)
    assert raised.value.kind is ErrorKind.INVALID
    assert raised.value.message == message


def test_the_package_is_vnpts_addressed_to_the_addressee(session: Session, directory: FakeDirectory) -> None:
    document_id = route(session, directory, recipients=[HA_LONG])
    [answer_id] = deliveries.post_status(
        session=session, document_id=document_id, actor_code=HA_LONG, code="03", description="Đã tiếp nhận"
    ).status_message_ids
    [recall_id] = deliveries.post_status(
        session=session, document_id=document_id, actor_code=SENDER, code="13"
    ).status_message_ids

    item, package = vdxp_pending.status_message(session=session, message_id=answer_id, agency_codes=[SENDER])
    assert package.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\r\n<edXML xmlns=')
    parsed = edxml.parse_status_package(package)
    assert (parsed.response_for_organ_id, parsed.sender.organ_id) == (SENDER, HA_LONG)
    assert parsed.response_for_document_id == DOCUMENT_ID
    assert parsed.response_for_code == "7816/VPCP-TTĐT"
    assert parsed.response_for_promulgation_date is not None
    assert parsed.response_for_promulgation_date.isoformat() == "2025-07-15"
    assert (parsed.status_code, parsed.description) == ("03", "Đã tiếp nhận")
    assert parsed.timestamp == item.created_at.replace(microsecond=0)

    _, recall = vdxp_pending.status_message(session=session, message_id=recall_id, agency_codes=[HA_LONG])
    parsed = edxml.parse_status_package(recall)
    # For 13 the addressee is the recipient, while DocumentId still names the sender's document.
    assert (parsed.response_for_organ_id, parsed.sender.organ_id) == (HA_LONG, SENDER)
    assert (parsed.response_for_document_id, parsed.status_code) == (DOCUMENT_ID, "13")


def test_a_document_without_a_standard_id_still_gets_its_package(
    session: Session, directory: FakeDirectory
) -> None:
    document_id = route(session, directory, recipients=[HA_LONG], edxml_document_id="7c0e9a4e-uuid-style")
    [message_id] = deliveries.post_status(
        session=session, document_id=document_id, actor_code=HA_LONG, code="01"
    ).status_message_ids
    _, package = vdxp_pending.status_message(session=session, message_id=message_id, agency_codes=[SENDER])
    parsed = edxml.parse_status_package(package)
    assert (parsed.response_for_document_id, parsed.response_for_code) == ("7c0e9a4e-uuid-style", "")
    assert parsed.response_for_organ_id == SENDER


def test_a_package_the_writer_refuses_is_a_failed_precondition(
    session: Session, directory: FakeDirectory
) -> None:
    document_id = route(session, directory, recipients=[HA_LONG])
    [message_id] = deliveries.post_status(
        session=session, document_id=document_id, actor_code=HA_LONG, code="01"
    ).status_message_ids
    message = session.get(StatusMessage, message_id)
    assert message is not None
    message.status_code = "99"  # not a standard code: the writer refuses it
    session.flush()
    with pytest.raises(DomainError) as raised:
        vdxp_pending.status_message(session=session, message_id=message_id, agency_codes=[SENDER])
    assert raised.value.kind is ErrorKind.CONFLICT
    assert f"status message {message_id} cannot be written as a VNPT status package" in raised.value.message
