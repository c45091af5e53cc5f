"""The evidence log: every change chained; any modified, inserted or deleted entry detected."""

from __future__ import annotations

import itertools
import json

from routing_support import HA_LONG, QUANG_NINH, SENDER, FakeDirectory, route
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from lienthong_routing import deliveries, evidence
from lienthong_routing.models import EvidenceEntry, EvidenceHead


def _history(session: Session, directory: FakeDirectory) -> str:
    document_id = route(session, directory, recipients=[HA_LONG, QUANG_NINH])
    deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="01")
    deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="03")
    deliveries.post_status(session=session, document_id=document_id, actor_code=SENDER, code="13")
    deliveries.post_status(session=session, document_id=document_id, actor_code=QUANG_NINH, code="15")
    session.flush()
    return document_id


def test_every_submission_delivery_and_status_is_chained(session: Session, directory: FakeDirectory) -> None:
    document_id = _history(session, directory)
    kinds = [
        (e.kind, e.recipient_code) for e in evidence.entries_of(session=session, document_id=document_id)
    ]
    assert kinds == [
        ("routed", ""),
        ("delivered", HA_LONG),
        ("delivered", QUANG_NINH),
        ("status", HA_LONG),
        ("status", HA_LONG),
        ("status", QUANG_NINH),  # the sender's 13, in recipient-code order
        ("status", HA_LONG),
        ("status", QUANG_NINH),
    ]
    result = evidence.verify(session=session)
    assert result.valid and result.entries == 8 and result.problem == ""
    entries = evidence.entries_of(session=session, document_id=document_id)
    assert entries[0].previous_hash == evidence.GENESIS
    assert all(b.previous_hash == a.hash for a, b in itertools.pairwise(entries))
    assert json.loads(entries[3].body)["facts"]["code"] == "01"
    assert result.head_hash == entries[-1].hash


def test_a_modified_entry_is_detected(session: Session, directory: FakeDirectory) -> None:
    _history(session, directory)
    body = session.scalar(select(EvidenceEntry.body).where(EvidenceEntry.sequence == 4))
    assert body is not None
    forged = body.replace('"code":"01"', '"code":"03"')
    session.execute(update(EvidenceEntry).where(EvidenceEntry.sequence == 4).values(body=forged))
    result = evidence.verify(session=session)
    assert not result.valid
    assert result.first_bad_sequence == 4
    assert "modified" in result.problem


def test_a_recomputed_entry_breaks_the_next_link(session: Session, directory: FakeDirectory) -> None:
    _history(session, directory)
    entry = session.get(EvidenceEntry, 4)
    assert entry is not None
    entry.body = entry.body.replace('"code":"01"', '"code":"03"')
    entry.hash = evidence.chain_hash(entry.previous_hash, entry.body)  # a careful forger
    session.flush()
    result = evidence.verify(session=session)
    assert (result.valid, result.first_bad_sequence) == (False, 5)


def test_a_column_disagreeing_with_the_hashed_body_is_detected(
    session: Session, directory: FakeDirectory
) -> None:
    _history(session, directory)
    session.execute(
        update(EvidenceEntry).where(EvidenceEntry.sequence == 2).values(recipient_code=QUANG_NINH)
    )
    assert evidence.verify(session=session).first_bad_sequence == 2


def test_a_deleted_entry_is_detected(session: Session, directory: FakeDirectory) -> None:
    _history(session, directory)
    session.execute(delete(EvidenceEntry).where(EvidenceEntry.sequence == 3))
    result = evidence.verify(session=session)
    assert (result.valid, result.first_bad_sequence) == (False, 4)
    assert "missing" in result.problem


def test_entries_removed_from_the_end_are_detected(session: Session, directory: FakeDirectory) -> None:
    _history(session, directory)
    session.execute(delete(EvidenceEntry).where(EvidenceEntry.sequence >= 7))
    result = evidence.verify(session=session)
    assert not result.valid and result.entries == 6
    assert "removed from the end" in result.problem


def test_a_rewritten_head_is_detected(session: Session, directory: FakeDirectory) -> None:
    _history(session, directory)
    session.execute(update(EvidenceHead).values(hash="f" * 64))
    assert not evidence.verify(session=session).valid


def test_an_empty_log_is_valid(session: Session) -> None:
    result = evidence.verify(session=session)
    assert (result.valid, result.entries, result.head_hash) == (True, 0, evidence.GENESIS)


def test_verification_pages_through_long_chains(session: Session, directory: FakeDirectory) -> None:
    for _ in range(5):
        route(session, directory, recipients=[HA_LONG, QUANG_NINH])
    assert evidence.verify(session=session, batch=4).entries == 15
    session.execute(delete(EvidenceEntry).where(EvidenceEntry.sequence == 9))
    assert evidence.verify(session=session, batch=4).first_bad_sequence == 10
