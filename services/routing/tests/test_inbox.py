"""ListInbox: oldest first, opaque cursors stable while new documents arrive."""

from __future__ import annotations

import pytest
from routing_support import HA_LONG, QUANG_NINH, SENDER, FakeDirectory, route
from sqlalchemy.orm import Session

from lienthong_common.errors import DomainError, ErrorKind
from lienthong_routing import deliveries


def _ids(page: deliveries.InboxPage) -> list[str]:
    return [document.id for _, document in page.items]


def test_paging_is_stable_across_inserts(session: Session, directory: FakeDirectory) -> None:
    sent = [route(session, directory, recipients=[HA_LONG, QUANG_NINH]) for _ in range(5)]
    route(session, directory, recipients=[QUANG_NINH])  # not for HA_LONG

    first = deliveries.inbox(session=session, agency_code=HA_LONG, limit=2)
    assert _ids(first) == sent[:2]

    sent += [route(session, directory, recipients=[HA_LONG]) for _ in range(3)]

    seen = _ids(first)
    cursor = first.next_cursor
    while True:
        page = deliveries.inbox(session=session, agency_code=HA_LONG, cursor=cursor, limit=2)
        if not page.items:
            assert page.next_cursor == cursor  # an empty page keeps the caller's place
            break
        seen += _ids(page)
        cursor = page.next_cursor
    assert seen == sent

    later = route(session, directory, recipients=[HA_LONG])
    assert _ids(deliveries.inbox(session=session, agency_code=HA_LONG, cursor=cursor)) == [later]


def test_items_carry_the_document_and_delivery_state(session: Session, directory: FakeDirectory) -> None:
    document_id = route(session, directory, recipients=[HA_LONG])
    deliveries.post_status(session=session, document_id=document_id, actor_code=SENDER, code="13")
    deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="15")

    [(delivery, document)] = deliveries.inbox(session=session, agency_code=HA_LONG).items
    # Recalled deliveries stay listed, with their state.
    assert delivery.state == "recalled"
    assert document.sender_code == SENDER
    assert delivery.delivered_at.tzinfo is not None


def test_default_limit_is_50(session: Session, directory: FakeDirectory) -> None:
    for _ in range(51):
        route(session, directory, recipients=[HA_LONG])
    assert len(deliveries.inbox(session=session, agency_code=HA_LONG).items) == 50
    assert len(deliveries.inbox(session=session, agency_code=HA_LONG, limit=500).items) == 51


@pytest.mark.parametrize("limit", [-1, 501])
def test_limit_out_of_range_is_invalid(session: Session, limit: int) -> None:
    with pytest.raises(DomainError) as raised:
        deliveries.inbox(session=session, agency_code=HA_LONG, limit=limit)
    assert raised.value.kind is ErrorKind.INVALID


@pytest.mark.parametrize("cursor", ["garbage!", "c2VxOng=", deliveries.encode_cursor(-3)])
def test_foreign_cursor_is_invalid(session: Session, cursor: str) -> None:
    with pytest.raises(DomainError) as raised:
        deliveries.inbox(session=session, agency_code=HA_LONG, cursor=cursor)
    assert raised.value.kind is ErrorKind.INVALID
    assert "cursor" in raised.value.message


def test_cursor_round_trip() -> None:
    assert deliveries.decode_cursor(deliveries.encode_cursor(12345)) == 12345
    assert deliveries.decode_cursor("") == 0
