"""Database reads and writes for routing (keyword-only, each taking the caller's session)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Executable, Table, bindparam, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from lienthong_routing.models import Delivery, RoutedDocument, StatusEntry

# The tables themselves, for set-based Core statements on the hot path.
DOCUMENTS = cast(Table, RoutedDocument.__table__)
DELIVERIES = cast(Table, Delivery.__table__)
STATUS_ENTRIES = cast(Table, StatusEntry.__table__)

# Built once: SQLAlchemy then reuses their compiled form and cache key on every execution.
_DOCUMENT_EXISTS = select(DOCUMENTS.c.id).where(DOCUMENTS.c.id == bindparam("document_id"))
_INSERT_DOCUMENT = insert(DOCUMENTS)
_INSERT_DOCUMENT_IF_NEW: dict[str, Executable] = {
    "postgresql": postgresql.insert(DOCUMENTS)
    .on_conflict_do_nothing(index_elements=[DOCUMENTS.c.id])
    .returning(DOCUMENTS.c.id),
    "sqlite": sqlite.insert(DOCUMENTS)
    .on_conflict_do_nothing(index_elements=[DOCUMENTS.c.id])
    .returning(DOCUMENTS.c.id),
}
_INSERT_DELIVERIES = insert(DELIVERIES)
_INSERT_STATUS_ENTRIES = insert(STATUS_ENTRIES)
_LAST_INBOX_SEQUENCES = (
    select(DELIVERIES.c.recipient_code, func.max(DELIVERIES.c.inbox_sequence))
    .where(DELIVERIES.c.recipient_code.in_(bindparam("codes", expanding=True)))
    .group_by(DELIVERIES.c.recipient_code)
)
# One transaction-scoped advisory lock per inbox (PostgreSQL): two routing replicas delivering
# to the same recipient take its next positions one after the other, in commit order.
_LOCK_INBOX = select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("key"), 0)))


def transaction_cache(session: Session, name: str) -> dict[Any, Any] | None:
    """A dict that lives as long as the session's current (innermost) transaction, or None.

    For values read once per transaction and kept up to date by the code that writes them
    (the evidence head, the enabled webhooks). A savepoint gets its own dict, and a new
    transaction a new one, so nothing survives a rollback. The transaction object itself is
    kept (not its id), so a later transaction can never be mistaken for it.
    """
    current = session.get_nested_transaction() or session.get_transaction()
    if current is None:
        return None
    key = f"lienthong_routing.{name}"
    held = session.info.get(key)
    if held is None or held[0] is not current:
        held = (current, {})
        session.info[key] = held
    return cast(dict[Any, Any], held[1])


def forget_transaction_cache(session: Session, name: str) -> None:
    session.info.pop(f"lienthong_routing.{name}", None)


def get_document(*, session: Session, document_id: str) -> RoutedDocument | None:
    return session.get(RoutedDocument, document_id)


def document_exists(*, session: Session, document_id: str) -> bool:
    """Whether routing has the document (a Core read: no ORM object is loaded)."""
    return session.execute(_DOCUMENT_EXISTS, {"document_id": document_id}).first() is not None


def insert_document(*, session: Session, document: RoutedDocument) -> bool:
    """Write a new (transient) document with one Core INSERT; False if its id was there already.

    The object stays out of the session. The INSERT skips an existing id (ON CONFLICT DO
    NOTHING ... RETURNING on PostgreSQL and SQLite) instead of failing, so it is also the
    existence check.
    """
    dialect = session.get_bind().dialect.name
    statement = _INSERT_DOCUMENT_IF_NEW.get(dialect)
    row = {
        "id": document.id,
        "sender_code": document.sender_code,
        "subject": document.subject,
        "edxml_document_id": document.edxml_document_id,
        "business_doc_type": document.business_doc_type,
        "referenced_document_id": document.referenced_document_id,
        "recipient_codes": document.recipient_codes,
        "state": document.state,
        "indication": document.indication,
        "sub_indication": document.sub_indication,
        "refusal_reason": document.refusal_reason,
        "created_at": document.created_at,
    }
    if statement is None:  # another database: check, then insert
        if document_exists(session=session, document_id=document.id):
            return False
        session.execute(_INSERT_DOCUMENT, row)
        return True
    # RETURNING rather than rowcount, which psycopg's dialect does not report here.
    return session.execute(statement, row).first() is not None


def insert_deliveries(*, session: Session, rows: list[dict[str, Any]]) -> None:
    """Write new deliveries (rows of the deliveries table) in one statement."""
    if rows:
        session.execute(_INSERT_DELIVERIES, rows)


def insert_status_entries(*, session: Session, rows: list[dict[str, Any]]) -> None:
    """Write timeline lines (rows of the status_entries table, no id) in one statement."""
    if rows:
        session.execute(_INSERT_STATUS_ENTRIES, rows)


def deliveries_of(*, session: Session, document_id: str, for_update: bool = False) -> list[Delivery]:
    """The document's deliveries in recipient-code order; row-locked when `for_update`."""
    query = select(Delivery).where(Delivery.document_id == document_id).order_by(Delivery.recipient_code)
    if for_update:
        query = query.with_for_update()
    return list(session.scalars(query))


def deliveries_of_many(*, session: Session, document_ids: list[str]) -> dict[str, list[Delivery]]:
    """The deliveries of each of the documents (one query), in recipient-code order."""
    found: dict[str, list[Delivery]] = {i: [] for i in document_ids}
    if document_ids:
        query = (
            select(Delivery)
            .where(Delivery.document_id.in_(document_ids))
            .order_by(Delivery.document_id, Delivery.recipient_code)
        )
        for delivery in session.scalars(query):
            found[delivery.document_id].append(delivery)
    return found


def timelines_of(*, session: Session, document_ids: list[str]) -> dict[str, list[StatusEntry]]:
    """The timeline of each of the documents (one query), in the order written."""
    found: dict[str, list[StatusEntry]] = {i: [] for i in document_ids}
    if document_ids:
        query = select(StatusEntry).where(StatusEntry.document_id.in_(document_ids)).order_by(StatusEntry.id)
        for entry in session.scalars(query):
            found[entry.document_id].append(entry)
    return found


def timeline_of(*, session: Session, document_id: str) -> list[StatusEntry]:
    query = select(StatusEntry).where(StatusEntry.document_id == document_id).order_by(StatusEntry.id)
    return list(session.scalars(query))


_INBOX_CACHE = "inbox_sequences"


def last_inbox_sequences(*, session: Session, recipient_codes: list[str]) -> dict[str, int]:
    """The last inbox position of each recipient (0: an empty inbox).

    Kept for the rest of the transaction (note_inbox_sequences records what it then writes),
    so a consumer batch asks the database only about inboxes it has not yet seen. On
    PostgreSQL each inbox is first locked until commit (in code order), so concurrent routing
    replicas never pick the same position and positions become visible in order (a cursor
    never skips one); two batches locking in opposite orders deadlock, PostgreSQL aborts one,
    and the consumer redelivers it. SQLite has a single writer. (recipient, sequence) is
    unique either way.
    """
    if not recipient_codes:
        return {}
    known = transaction_cache(session, _INBOX_CACHE)
    if known is None:
        known = {}
    unknown = [code for code in recipient_codes if code not in known]
    if unknown:
        if session.get_bind().dialect.name == "postgresql":
            for code in sorted(set(unknown)):
                session.execute(_LOCK_INBOX, {"key": f"lienthong.inbox:{code}"})
        rows = session.execute(_LAST_INBOX_SEQUENCES, {"codes": unknown}).all()
        found = {str(code): int(last or 0) for code, last in rows}
        for code in unknown:
            known[code] = found.get(code, 0)
    return {code: int(known[code]) for code in recipient_codes}


def note_inbox_sequences(*, session: Session, last: dict[str, int]) -> None:
    """Record inbox positions just written in this transaction (see last_inbox_sequences)."""
    known = transaction_cache(session, _INBOX_CACHE)
    if known is not None:
        known.update(last)


def add_status_entry(
    *,
    session: Session,
    document_id: str,
    recipient_code: str,
    code: str,
    state: str,
    description: str,
    actor_code: str,
    at: datetime,
) -> StatusEntry:
    entry = StatusEntry(
        document_id=document_id,
        recipient_code=recipient_code,
        code=code,
        state=state,
        description=description,
        actor_code=actor_code,
        at=at,
    )
    session.add(entry)
    session.flush()
    return entry


def inbox_page(
    *, session: Session, agency_code: str, after_sequence: int, limit: int
) -> list[tuple[Delivery, RoutedDocument]]:
    """Deliveries to `agency_code` after a sequence number, oldest first, with their documents."""
    query = (
        select(Delivery, RoutedDocument)
        .join(RoutedDocument, RoutedDocument.id == Delivery.document_id)
        .where(Delivery.recipient_code == agency_code, Delivery.inbox_sequence > after_sequence)
        .order_by(Delivery.inbox_sequence)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in session.execute(query)]
