"""Recall, update and replace (BussinessDocType 1/2/3), and group and successor routing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pytest
from routing_support import HA_LONG, QUANG_NINH, SENDER, FakeDirectory, outbox_events, route
from sqlalchemy.orm import Session

from lienthong_common.errors import DomainError
from lienthong_routing import deliveries, repository
from lienthong_routing.clients import Resolution

OLD_ID = f"{SENDER},2026/11/20,100/VPCP-TTĐT"
NEW_ID = f"{SENDER},2026/11/25,101/VPCP-TTĐT"
COMMUNE = "000.01.03.H49"


def _states(session: Session, document_id: str) -> dict[str, str]:
    return {
        d.recipient_code: d.state for d in repository.deliveries_of(session=session, document_id=document_id)
    }


def _old(
    session: Session, directory: FakeDirectory, recipients: Sequence[str] = (HA_LONG, QUANG_NINH)
) -> str:
    return route(session, directory, recipients=list(recipients), edxml_document_id=OLD_ID)


def test_recall_document_asks_every_recipient_to_cancel(session: Session, directory: FakeDirectory) -> None:
    old = _old(session, directory)
    deliveries.post_status(session=session, document_id=old, actor_code=HA_LONG, code="03")
    recall = route(
        session,
        directory,
        recipients=[HA_LONG, QUANG_NINH],
        edxml_document_id=NEW_ID,
        business_doc_type=1,
        referenced_document_id=OLD_ID,
    )
    assert _states(session, old) == {HA_LONG: "recall_requested", QUANG_NINH: "recall_requested"}
    assert _states(session, recall) == {HA_LONG: "delivered", QUANG_NINH: "delivered"}
    # The recipients answer: one cancels (15), one keeps it (16).
    deliveries.post_status(session=session, document_id=old, actor_code=HA_LONG, code="15")
    deliveries.post_status(session=session, document_id=old, actor_code=QUANG_NINH, code="16")
    assert _states(session, old) == {HA_LONG: "recalled", QUANG_NINH: "recall_refused"}
    old_notes = [e.description for e in repository.timeline_of(session=session, document_id=old)]
    assert any(f"recall requested by document {NEW_ID}" in n for n in old_notes)
    new_notes = [e.description for e in repository.timeline_of(session=session, document_id=recall)]
    assert any(f"recall of {OLD_ID}" in n and "2 recipient(s)" in n for n in new_notes)


def test_recall_leaves_finished_deliveries_alone(session: Session, directory: FakeDirectory) -> None:
    old = _old(session, directory)
    deliveries.post_status(session=session, document_id=old, actor_code=HA_LONG, code="02")
    route(
        session,
        directory,
        recipients=[HA_LONG, QUANG_NINH],
        edxml_document_id=NEW_ID,
        business_doc_type=1,
        referenced_document_id=OLD_ID,
    )
    assert _states(session, old) == {HA_LONG: "refused", QUANG_NINH: "recall_requested"}
    with pytest.raises(DomainError):
        deliveries.post_status(session=session, document_id=old, actor_code=HA_LONG, code="15")


@pytest.mark.parametrize(("doc_type", "state"), [(2, "superseded"), (3, "replaced")])
def test_update_and_replace_supersede_the_old_document(
    session: Session, directory: FakeDirectory, doc_type: int, state: str
) -> None:
    old = _old(session, directory, [HA_LONG, QUANG_NINH, COMMUNE])
    deliveries.post_status(session=session, document_id=old, actor_code=QUANG_NINH, code="02")
    new = route(
        session,
        directory,
        recipients=[HA_LONG, QUANG_NINH],
        edxml_document_id=NEW_ID,
        business_doc_type=doc_type,
        referenced_document_id=OLD_ID,
    )
    # HA_LONG's copy is superseded; QUANG_NINH had refused it; COMMUNE does not get the new one.
    assert _states(session, old) == {HA_LONG: state, QUANG_NINH: "refused", COMMUNE: "delivered"}
    [superseded] = [
        d for d in repository.deliveries_of(session=session, document_id=old) if d.recipient_code == HA_LONG
    ]
    assert superseded.superseded_by == new
    # In HA_LONG's inbox the old one shows as superseded and the new one follows it.
    items = deliveries.inbox(session=session, agency_code=HA_LONG).items
    assert [(doc.id, d.state) for d, doc in items] == [(old, state), (new, "delivered")]
    changed = [
        e.delivery_updated
        for _topic, _key, e in outbox_events(session)
        if e.document_id == old and e.delivery_updated.state == state
    ]
    assert [(u.recipient_code, u.previous_state) for u in changed] == [(HA_LONG, "delivered")]
    notes = [e.description for e in repository.timeline_of(session=session, document_id=new)]
    assert any("for 1 recipient(s)" in n and COMMUNE in n for n in notes)
    # A superseded delivery takes no further status.
    with pytest.raises(DomainError):
        deliveries.post_status(session=session, document_id=old, actor_code=HA_LONG, code="03")


def test_reference_to_an_unknown_document_is_noted(session: Session, directory: FakeDirectory) -> None:
    new = route(
        session,
        directory,
        recipients=[HA_LONG],
        edxml_document_id=NEW_ID,
        business_doc_type=3,
        referenced_document_id=f"{SENDER},2020/01/01,1/NONE",
    )
    assert _states(session, new) == {HA_LONG: "delivered"}
    notes = [e.description for e in repository.timeline_of(session=session, document_id=new)]
    assert any("no routed document" in n for n in notes)


def test_only_the_same_senders_document_is_acted_on(session: Session, directory: FakeDirectory) -> None:
    old = _old(session, directory)
    route(
        session,
        directory,
        sender=QUANG_NINH,
        recipients=[HA_LONG],
        edxml_document_id=NEW_ID,
        business_doc_type=1,
        referenced_document_id=OLD_ID,
    )
    assert _states(session, old) == {HA_LONG: "delivered", QUANG_NINH: "delivered"}


class GroupDirectory(FakeDirectory):
    """A group address resolves to its members, as the directory's ResolveRecipients answers."""

    def resolve_recipients(self, codes: Sequence[str], *, as_of: date) -> list[Resolution]:
        out: list[Resolution] = []
        for code in codes:
            if code == "GROUP.H49":
                out += [Resolution(code, m, True, "", group_code=code) for m in (HA_LONG, COMMUNE)]
            else:
                out += super().resolve_recipients([code], as_of=as_of)
        return out


def test_group_and_successor_routing(session: Session) -> None:
    directory = GroupDirectory(successors={"000.00.09.H49": QUANG_NINH})
    document_id = route(session, directory, recipients=["GROUP.H49", "000.00.09.H49", HA_LONG])
    found = repository.deliveries_of(session=session, document_id=document_id)
    assert sorted(d.recipient_code for d in found) == sorted([HA_LONG, COMMUNE, QUANG_NINH])
    successor = next(d for d in found if d.recipient_code == QUANG_NINH)
    assert successor.requested_code == "000.00.09.H49"
    timeline = repository.timeline_of(session=session, document_id=document_id)
    texts = [(e.recipient_code, e.description) for e in timeline]
    assert (COMMUNE, "delivered as a member of group GROUP.H49") in texts
    assert any(r == QUANG_NINH and "redirected from 000.00.09.H49" in t for r, t in texts)
    # HA_LONG is both a member and addressed directly: one delivery, the duplicate noted.
    assert sum(1 for d in found if d.recipient_code == HA_LONG) == 1
    assert any(r == HA_LONG and "listed twice" in t for r, t in texts)
