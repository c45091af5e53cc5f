"""Database reads and writes for routing (keyword-only, each taking the caller's session)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lienthong_common.ids import new_id
from lienthong_routing.models import Delivery, RoutedDocument, StatusEntry


def get_document(*, session: Session, document_id: str) -> RoutedDocument | None:
    return session.get(RoutedDocument, document_id)


def add_document(*, session: Session, document: RoutedDocument) -> RoutedDocument:
    session.add(document)
    session.flush()
    return document


def deliveries_of(*, session: Session, document_id: str, for_update: bool = False) -> list[Delivery]:
    """The document's deliveries in recipient-code order; row-locked when `for_update`."""
    query = select(Delivery).where(Delivery.document_id == document_id).order_by(Delivery.recipient_code)
    if for_update:
        query = query.with_for_update()
    return list(session.scalars(query))


def timeline_of(*, session: Session, document_id: str) -> list[StatusEntry]:
    query = select(StatusEntry).where(StatusEntry.document_id == document_id).order_by(StatusEntry.id)
    return list(session.scalars(query))


def next_inbox_sequence(*, session: Session, recipient_code: str) -> int:
    """The next position in a recipient's inbox (1 for the first document)."""
    last = session.scalar(
        select(func.max(Delivery.inbox_sequence)).where(Delivery.recipient_code == recipient_code)
    )
    return int(last or 0) + 1


def last_inbox_sequences(*, session: Session, recipient_codes: list[str]) -> dict[str, int]:
    """The last inbox position of each recipient (absent: an empty inbox)."""
    if not recipient_codes:
        return {}
    query = (
        select(Delivery.recipient_code, func.max(Delivery.inbox_sequence))
        .where(Delivery.recipient_code.in_(recipient_codes))
        .group_by(Delivery.recipient_code)
    )
    return {str(code): int(last or 0) for code, last in session.execute(query).all()}


def add_delivery(
    *,
    session: Session,
    document_id: str,
    recipient_code: str,
    requested_code: str,
    state: str,
    at: datetime,
) -> Delivery:
    delivery = Delivery(
        id=new_id(),
        document_id=document_id,
        recipient_code=recipient_code,
        requested_code=requested_code,
        state=state,
        last_status_code="",
        inbox_sequence=next_inbox_sequence(session=session, recipient_code=recipient_code),
        delivered_at=at,
        updated_at=at,
    )
    session.add(delivery)
    session.flush()
    return delivery


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
