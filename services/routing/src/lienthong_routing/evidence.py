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
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from lienthong_routing import repository
from lienthong_routing.models import EvidenceEntry, EvidenceHead

GENESIS = "0" * 64
HEAD_ID = 1


def canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(previous_hash: str, body: str) -> str:
    return hashlib.sha256(f"{previous_hash}\n{body}".encode()).hexdigest()


ENTRIES = cast(Table, EvidenceEntry.__table__)
HEAD = cast(Table, EvidenceHead.__table__)


_HEAD_CACHE = "evidence_head"
_READ_HEAD = select(HEAD.c.sequence, HEAD.c.hash).where(HEAD.c.id == HEAD_ID)
_LOCK_HEAD = _READ_HEAD.with_for_update()
_INSERT_ENTRIES = insert(ENTRIES)
_INSERT_HEAD = insert(HEAD)
_UPDATE_HEAD = (
    update(HEAD)
    .where(HEAD.c.id == HEAD_ID)
    .values(sequence=bindparam("new_sequence"), hash=bindparam("new_hash"))
)


def _locked_head(session: Session) -> tuple[tuple[int, str] | None, dict[Any, Any] | None]:
    """The head's (sequence, hash), row-locked until the transaction ends (None: no entry yet).

    Read with a Core statement (never from the session's identity map) the first time in a
    transaction, then kept in the transaction's cache, which append_many updates with every
    append: the lock is held to the end of the transaction, so no other writer can move the
    head meanwhile, and appends later in the same transaction (another event of a consumer
    batch, say) chain onto the ones before them.
    """
    cache = repository.transaction_cache(session, _HEAD_CACHE)
    if cache is not None and "head" in cache:
        return cache["head"], cache
    row = session.execute(_LOCK_HEAD).first()
    head = None if row is None else (int(row[0]), str(row[1]))
    return head, cache


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
) -> str:
    """Chain one entry onto the log in the caller's transaction; returns its hash."""
    return append_many(session=session, at=at, items=[Fact(kind, document_id, recipient_code, facts or {})])


def append_many(*, session: Session, at: datetime, items: list[Fact]) -> str:
    """Chain several entries at once, in order: one head lock, one INSERT, one head update.

    The hashes are computed here from the locked head, so the entries join the chain exactly
    where it ends in this transaction. Returns the new head hash.
    """
    if not items:
        return ""
    head, cache = _locked_head(session)
    sequence, previous = head if head is not None else (0, GENESIS)
    stamp = at.isoformat()
    rows: list[dict[str, Any]] = []
    for item in items:
        sequence += 1
        body = canonical(
            {
                "sequence": sequence,
                "kind": item.kind,
                "document_id": item.document_id,
                "recipient_code": item.recipient_code,
                "at": stamp,
                "facts": item.facts,
            }
        )
        digest = chain_hash(previous, body)
        rows.append(
            {
                "sequence": sequence,
                "kind": item.kind,
                "document_id": item.document_id,
                "recipient_code": item.recipient_code,
                "body": body,
                "previous_hash": previous,
                "hash": digest,
                "at": at,
            }
        )
        previous = digest
    session.execute(_INSERT_ENTRIES, rows)
    if head is None:
        session.execute(_INSERT_HEAD, [{"id": HEAD_ID, "sequence": sequence, "hash": previous}])
    else:
        session.execute(_UPDATE_HEAD, {"new_sequence": sequence, "new_hash": previous})
    if cache is not None:
        cache["head"] = (sequence, previous)
    return previous


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
    head = session.execute(_READ_HEAD).first()
    head_sequence, head_hash = (int(head[0]), str(head[1])) if head else (0, GENESIS)
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
