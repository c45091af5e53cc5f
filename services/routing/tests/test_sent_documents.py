"""ListSent (what a system's agencies sent, newest first, cursor-paged) and FindDocuments."""

from __future__ import annotations

from datetime import timedelta

import pytest
from routing_support import HA_LONG, QUANG_NINH, SENDER, FakeDirectory, route
from sqlalchemy.orm import Session

from lienthong_common.clock import now_utc
from lienthong_common.errors import DomainError, ErrorKind
from lienthong_routing import deliveries, sent_documents
from lienthong_routing.models import RoutedDocument

OTHER_SENDER = "000.00.00.G09"
START = now_utc() - timedelta(days=1)


def routed_at(session: Session, document_id: str, minutes: int) -> str:
    """Pin a document's routing time (tests must not depend on the clock's resolution)."""
    document = session.get(RoutedDocument, document_id)
    assert document is not None
    document.created_at = START + timedelta(minutes=minutes)
    session.flush()
    return document_id


def sent(session: Session, *codes: str, cursor: str = "", limit: int = 0) -> sent_documents.SentPage:
    return sent_documents.list_sent(session=session, sender_codes=list(codes), cursor=cursor, limit=limit)


def test_list_sent_pages_newest_first_over_several_senders(
    session: Session, directory: FakeDirectory
) -> None:
    expected = []
    for minute in range(7):
        sender = SENDER if minute % 2 else OTHER_SENDER
        expected.append(
            routed_at(session, route(session, directory, recipients=[HA_LONG], sender=sender), minute)
        )
    route(session, directory, recipients=[HA_LONG], sender=QUANG_NINH)  # someone else's
    expected.reverse()

    seen, cursor, pages = [], "", 0
    while True:
        page = sent(session, SENDER, OTHER_SENDER, cursor=cursor, limit=3)
        seen += [v.document.id for v in page.documents]
        pages += 1
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == expected
    assert pages == 3
    assert [v.document.id for v in sent(session, SENDER).documents] == expected[1::2]


def test_a_page_that_ends_exactly_says_so(session: Session, directory: FakeDirectory) -> None:
    for minute in range(2):
        routed_at(session, route(session, directory, recipients=[HA_LONG]), minute)
    page = sent(session, SENDER, limit=2)
    assert len(page.documents) == 2 and page.next_cursor == ""


def test_documents_at_the_same_instant_are_neither_skipped_nor_repeated(
    session: Session, directory: FakeDirectory
) -> None:
    ids = [routed_at(session, route(session, directory, recipients=[HA_LONG]), 5) for _ in range(5)]
    seen, cursor = [], ""
    while True:
        page = sent(session, SENDER, cursor=cursor, limit=2)
        seen += [v.document.id for v in page.documents]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == sorted(ids, reverse=True)


def test_each_document_comes_with_its_deliveries_and_the_codes_it_named(
    session: Session, directory: FakeDirectory
) -> None:
    routed = route(session, directory, recipients=[HA_LONG, QUANG_NINH])
    deliveries.post_status(session=session, document_id=routed, actor_code=HA_LONG, code="03")
    refused = route(
        session, directory, recipients=[HA_LONG, QUANG_NINH], indication="TOTAL_FAILED", reason="bad seal"
    )
    routed_at(session, routed, 1)
    routed_at(session, refused, 2)

    newest, oldest = sent(session, SENDER).documents
    assert newest.document.id == refused
    assert (newest.document.state, newest.deliveries) == ("refused", [])
    assert newest.document.recipient_codes == [HA_LONG, QUANG_NINH]
    assert oldest.document.id == routed
    assert {(d.recipient_code, d.state, d.last_status_code) for d in oldest.deliveries} == {
        (HA_LONG, "accepted", "03"),
        (QUANG_NINH, "delivered", ""),
    }
    assert [e.code for e in oldest.timeline if e.code] == ["03"]


def test_just_one_document_and_only_the_senders_own(session: Session, directory: FakeDirectory) -> None:
    mine = route(session, directory, recipients=[HA_LONG])
    theirs = route(session, directory, recipients=[HA_LONG], sender=OTHER_SENDER)
    page = sent_documents.list_sent(session=session, sender_codes=[SENDER], document_id=mine)
    assert [v.document.id for v in page.documents] == [mine] and page.next_cursor == ""
    for document_id in (theirs, "no-such-document"):
        with pytest.raises(DomainError) as raised:
            sent_documents.list_sent(session=session, sender_codes=[SENDER], document_id=document_id)
        assert raised.value.kind is ErrorKind.NOT_FOUND
        assert raised.value.message == f"document {document_id} is not one {SENDER} sent"


@pytest.mark.parametrize(
    ("codes", "cursor", "limit", "message"),
    [
        ([], "", 0, "sender_codes is required: the agencies the caller acts for"),
        ([SENDER], "not-a-cursor", 0, "cursor 'not-a-cursor' is not one this list handed out"),
        ([SENDER], "", 501, "limit must be between 1 and 500 (0 means 100)"),
    ],
)
def test_bad_list_sent_requests_are_invalid(
    session: Session, codes: list[str], cursor: str, limit: int, message: str
) -> None:
    with pytest.raises(DomainError) as raised:
        sent(session, *codes, cursor=cursor, limit=limit)
    assert raised.value.kind is ErrorKind.INVALID
    assert raised.value.message == message


def test_find_documents_for_their_parties_only(session: Session, directory: FakeDirectory) -> None:
    edxml_id = f"{SENDER},2025/07/15,7816/VPCP-TTĐT"
    first = routed_at(session, route(session, directory, recipients=[HA_LONG]), 1)
    second = routed_at(session, route(session, directory, recipients=[QUANG_NINH]), 2)
    route(session, directory, recipients=[HA_LONG], edxml_document_id=f"{SENDER},2025/07/16,1/VPCP")

    def found(*codes: str) -> list[str]:
        views = sent_documents.find_documents(
            session=session, edxml_document_id=edxml_id, party_codes=list(codes)
        )
        return [v.document.id for v in views]

    assert found(SENDER) == [first, second]
    assert found(HA_LONG) == [first]
    assert found(QUANG_NINH, HA_LONG) == [first, second]
    assert found(OTHER_SENDER) == []
    with pytest.raises(DomainError) as raised:
        sent_documents.find_documents(session=session, edxml_document_id=" ", party_codes=[SENDER])
    assert raised.value.kind is ErrorKind.INVALID


def test_a_refused_document_is_found_by_its_sender_only(session: Session, directory: FakeDirectory) -> None:
    refused = route(session, directory, recipients=[HA_LONG], indication="TOTAL_FAILED")
    edxml_id = f"{SENDER},2025/07/15,7816/VPCP-TTĐT"
    [view] = sent_documents.find_documents(session=session, edxml_document_id=edxml_id, party_codes=[SENDER])
    assert view.document.id == refused
    assert (
        sent_documents.find_documents(session=session, edxml_document_id=edxml_id, party_codes=[HA_LONG])
        == []
    )
