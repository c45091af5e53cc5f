"""PostStatus: every legal and illegal transition, and who may post what."""

from __future__ import annotations

import pytest
from routing_support import HA_LONG, QUANG_NINH, SENDER, FakeDirectory, clear_outbox, outbox_events, route
from sqlalchemy.orm import Session

from lienthong_common.errors import DomainError, ErrorKind
from lienthong_common.outbox import TOPIC_DELIVERIES
from lienthong_routing import deliveries, repository
from lienthong_routing.domain import TRANSITIONS, DeliveryState, StatusCode

ALL_STATES = [s.value for s in DeliveryState]
ALL_CODES = [c.value for c in StatusCode]

# Written out independently of domain.TRANSITIONS: the rules as the brief states them.
LEGAL = {
    ("delivered", "01"): "arrived",
    ("delivered", "02"): "refused",
    ("delivered", "03"): "accepted",
    ("arrived", "02"): "refused",
    ("arrived", "03"): "accepted",
    ("accepted", "04"): "assigned",
    ("accepted", "05"): "in_progress",
    ("accepted", "06"): "done",
    ("assigned", "05"): "in_progress",
    ("assigned", "06"): "done",
    ("in_progress", "06"): "done",
    ("delivered", "13"): "recall_requested",
    ("arrived", "13"): "recall_requested",
    ("accepted", "13"): "recall_requested",
    ("assigned", "13"): "recall_requested",
    ("in_progress", "13"): "recall_requested",
    ("recall_requested", "15"): "recalled",
    ("recall_requested", "16"): "recall_refused",
}
CASES = [(state, code) for state in ALL_STATES for code in ALL_CODES]


def _single_delivery(session: Session, directory: FakeDirectory, state: str) -> str:
    document_id = route(session, directory, recipients=[HA_LONG])
    [delivery] = repository.deliveries_of(session=session, document_id=document_id)
    delivery.state = state
    session.flush()
    clear_outbox(session)
    return document_id


def _actor(code: str) -> str:
    return SENDER if code == "13" else HA_LONG


def test_table_matches_the_rules() -> None:
    assert {(s.value, c.value): n.value for (s, c), n in TRANSITIONS.items()} == LEGAL


@pytest.mark.parametrize(("state", "code"), [c for c in CASES if c in LEGAL])
def test_legal_transition(session: Session, directory: FakeDirectory, state: str, code: str) -> None:
    document_id = _single_delivery(session, directory, state)

    [changed] = deliveries.post_status(
        session=session,
        document_id=document_id,
        actor_code=_actor(code),
        code=code,
        description="xử lý",
    ).deliveries

    assert changed.state == LEGAL[(state, code)]
    assert changed.last_status_code == code
    entry = repository.timeline_of(session=session, document_id=document_id)[-1]
    assert (entry.recipient_code, entry.code, entry.state, entry.description, entry.actor_code) == (
        HA_LONG,
        code,
        LEGAL[(state, code)],
        "xử lý",
        _actor(code),
    )
    [(topic, key, event)] = outbox_events(session)
    assert (topic, key) == (TOPIC_DELIVERIES, document_id)
    update = event.delivery_updated
    assert (update.state, update.previous_state, update.status_code, update.actor_code) == (
        LEGAL[(state, code)],
        state,
        code,
        _actor(code),
    )


@pytest.mark.parametrize(("state", "code"), [c for c in CASES if c not in LEGAL])
def test_illegal_transition(session: Session, directory: FakeDirectory, state: str, code: str) -> None:
    document_id = _single_delivery(session, directory, state)

    with pytest.raises(DomainError) as raised:
        deliveries.post_status(session=session, document_id=document_id, actor_code=_actor(code), code=code)

    assert raised.value.kind is ErrorKind.CONFLICT
    if code == "13":
        assert f"no delivery of document {document_id} can take status 13" in raised.value.message
        assert f"'{state}'" in raised.value.message
    else:
        assert raised.value.message == (f"delivery to {HA_LONG} is '{state}'; status {code} cannot follow it")
    assert outbox_events(session) == []
    [delivery] = repository.deliveries_of(session=session, document_id=document_id)
    assert delivery.state == state


def test_description_defaults_to_the_code_meaning(session: Session, directory: FakeDirectory) -> None:
    document_id = _single_delivery(session, directory, "delivered")
    deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="03")
    assert repository.timeline_of(session=session, document_id=document_id)[-1].description == "accepted"


@pytest.mark.parametrize("code", ["01", "02", "03", "04", "05", "06", "15", "16"])
def test_only_a_recipient_may_post_recipient_codes(
    session: Session, directory: FakeDirectory, code: str
) -> None:
    document_id = route(session, directory, recipients=[HA_LONG])
    for outsider in (SENDER, QUANG_NINH):
        with pytest.raises(DomainError) as raised:
            deliveries.post_status(session=session, document_id=document_id, actor_code=outsider, code=code)
        assert raised.value.kind is ErrorKind.FORBIDDEN
        assert raised.value.message == f"agency {outsider} is not a recipient of document {document_id}"


def test_only_the_sender_may_ask_to_recall(session: Session, directory: FakeDirectory) -> None:
    document_id = route(session, directory, recipients=[HA_LONG])
    with pytest.raises(DomainError) as raised:
        deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="13")
    assert raised.value.kind is ErrorKind.FORBIDDEN
    assert raised.value.message == f"only the sender {SENDER} may post status 13 for document {document_id}"


def test_recall_request_moves_every_non_terminal_delivery(session: Session, directory: FakeDirectory) -> None:
    third = "000.00.02.H49"
    document_id = route(session, directory, recipients=[HA_LONG, QUANG_NINH, third])
    deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="03")
    deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="06")
    deliveries.post_status(session=session, document_id=document_id, actor_code=QUANG_NINH, code="03")
    clear_outbox(session)

    changed = deliveries.post_status(
        session=session, document_id=document_id, actor_code=SENDER, code="13"
    ).deliveries

    assert {d.recipient_code for d in changed} == {QUANG_NINH, third}
    states = {
        d.recipient_code: d.state for d in repository.deliveries_of(session=session, document_id=document_id)
    }
    assert states == {HA_LONG: "done", QUANG_NINH: "recall_requested", third: "recall_requested"}
    previous = {
        e.delivery_updated.recipient_code: e.delivery_updated.previous_state
        for _, _, e in outbox_events(session)
    }
    assert previous == {QUANG_NINH: "accepted", third: "delivered"}

    deliveries.post_status(session=session, document_id=document_id, actor_code=QUANG_NINH, code="15")
    deliveries.post_status(session=session, document_id=document_id, actor_code=third, code="16")
    states = {
        d.recipient_code: d.state for d in repository.deliveries_of(session=session, document_id=document_id)
    }
    assert states == {HA_LONG: "done", QUANG_NINH: "recalled", third: "recall_refused"}


def test_unknown_code_lists_the_valid_ones(session: Session, directory: FakeDirectory) -> None:
    document_id = route(session, directory, recipients=[HA_LONG])
    with pytest.raises(DomainError) as raised:
        deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="07")
    assert raised.value.kind is ErrorKind.INVALID
    assert raised.value.message == (
        "unknown status code '07'; valid codes are 01, 02, 03, 04, 05, 06, 13, 15, 16"
    )


def test_unknown_document_is_not_found(session: Session) -> None:
    with pytest.raises(DomainError) as raised:
        deliveries.post_status(session=session, document_id="nope", actor_code=HA_LONG, code="01")
    assert raised.value.kind is ErrorKind.NOT_FOUND
    assert "document nope" in raised.value.message


def test_refused_document_takes_no_status(session: Session, directory: FakeDirectory) -> None:
    document_id = route(
        session, directory, recipients=[HA_LONG], indication="TOTAL_FAILED", reason="bad seal"
    )
    with pytest.raises(DomainError) as raised:
        deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="01")
    assert raised.value.kind is ErrorKind.CONFLICT
    assert "refused before delivery (bad seal)" in raised.value.message
