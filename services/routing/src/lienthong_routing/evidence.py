"""The append-only, hash-chained evidence log: every submission, delivery and status.

Each entry's body is canonical JSON (sorted keys, no spaces, UTF-8) holding its sequence,
kind, document, recipient, time and facts; its hash is SHA-256 over the previous entry's
hash, a newline and the body. Changing, inserting or deleting any entry breaks every later
hash; removing entries from the end leaves the head row (last sequence and hash) pointing
past the chain. Appends lock the head row, so concurrent writers chain one after another.
A rewrite of the whole chain is detectable only against a head hash kept elsewhere; the
VerifyEvidence reply hands it out for that.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lienthong_routing.models import EvidenceEntry, EvidenceHead

GENESIS = "0" * 64
HEAD_ID = 1


def canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(previous_hash: str, body: str) -> str:
    return hashlib.sha256(f"{previous_hash}\n{body}".encode()).hexdigest()


def _head(session: Session) -> EvidenceHead:
    head = session.scalars(
        select(EvidenceHead).where(EvidenceHead.id == HEAD_ID).with_for_update()
    ).one_or_none()
    if head is None:
        head = EvidenceHead(id=HEAD_ID, sequence=0, hash=GENESIS)
        session.add(head)
    return head


@dataclass(frozen=True)
class Fact:
    """One entry to chain: what happened, to which document and recipient."""

    kind: str
    document_id: str
    recipient_code: str = ""
    facts: dict[str, Any] = field(default_factory=dict)


def append(
    *,
    session: Session,
    kind: str,
    document_id: str,
    at: datetime,
    recipient_code: str = "",
    facts: dict[str, Any] | None = None,
) -> EvidenceEntry:
    """Chain one entry onto the log in the caller's transaction."""
    [entry] = append_many(
        session=session, at=at, items=[Fact(kind, document_id, recipient_code, facts or {})]
    )
    return entry


def append_many(*, session: Session, at: datetime, items: list[Fact]) -> list[EvidenceEntry]:
    """Chain several entries at once (one head lock), in order."""
    head = _head(session)
    entries = []
    for item in items:
        sequence = head.sequence + 1
        body = canonical(
            {
                "sequence": sequence,
                "kind": item.kind,
                "document_id": item.document_id,
                "recipient_code": item.recipient_code,
                "at": at.isoformat(),
                "facts": item.facts,
            }
        )
        entry = EvidenceEntry(
            sequence=sequence,
            kind=item.kind,
            document_id=item.document_id,
            recipient_code=item.recipient_code,
            body=body,
            previous_hash=head.hash,
            hash=chain_hash(head.hash, body),
            at=at,
        )
        head.sequence, head.hash = sequence, entry.hash
        entries.append(entry)
    session.add_all(entries)
    return entries


@dataclass(frozen=True)
class Verification:
    valid: bool
    entries: int
    head_hash: str
    first_bad_sequence: int = 0
    problem: str = ""


def verify(*, session: Session, batch: int = 5000) -> Verification:
    """Walk the whole chain; the first entry modified, inserted or missing makes it invalid."""
    previous_hash, expected, count = GENESIS, 1, 0
    last_seen = 0
    while True:
        rows = list(
            session.scalars(
                select(EvidenceEntry)
                .where(EvidenceEntry.sequence > last_seen)
                .order_by(EvidenceEntry.sequence)
                .limit(batch)
            )
        )
        if not rows:
            break
        for entry in rows:
            problem = _check(entry, expected=expected, previous_hash=previous_hash)
            if problem:
                return Verification(False, count, previous_hash, entry.sequence, problem)
            previous_hash, expected, count = entry.hash, expected + 1, count + 1
        last_seen = rows[-1].sequence
    head = session.get(EvidenceHead, HEAD_ID)
    head_sequence, head_hash = (head.sequence, head.hash) if head else (0, GENESIS)
    if head_sequence != count or head_hash != previous_hash:
        return Verification(
            False,
            count,
            previous_hash,
            count + 1,
            f"the chain ends at entry {count} but its head records entry {head_sequence}: "
            "entries were removed from the end, or the head was altered",
        )
    return Verification(True, count, previous_hash)


def _check(entry: EvidenceEntry, *, expected: int, previous_hash: str) -> str:
    if entry.sequence != expected:
        return f"entry {expected} is missing (the next entry is {entry.sequence})"
    if entry.previous_hash != previous_hash:
        return f"entry {entry.sequence} does not link to entry {expected - 1}'s hash"
    if chain_hash(previous_hash, entry.body) != entry.hash:
        return f"entry {entry.sequence} was modified: its hash does not match its content"
    try:
        body = json.loads(entry.body)
    except ValueError:
        return f"entry {entry.sequence} was modified: its body is not JSON"
    if (
        body.get("sequence") != entry.sequence
        or body.get("kind") != entry.kind
        or body.get("document_id") != entry.document_id
        or body.get("recipient_code") != entry.recipient_code
    ):
        return f"entry {entry.sequence} was modified: its columns disagree with its hashed body"
    return ""


def entries_of(*, session: Session, document_id: str) -> list[EvidenceEntry]:
    query = (
        select(EvidenceEntry).where(EvidenceEntry.document_id == document_id).order_by(EvidenceEntry.sequence)
    )
    return list(session.scalars(query))
