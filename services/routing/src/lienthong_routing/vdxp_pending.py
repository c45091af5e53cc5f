"""What a VDXP system's agencies have to take: documents not yet fetched, status messages not done.

One system receives for all its agencies (VDXP-WIRE §5), so every read takes the agencies'
codes, and each item says which of them it is for (`to_code`):

- `edoc`: a delivery to one of them still `delivered`: nobody has fetched it yet (fetching
  records 01, any other status from the recipient moves it on too). `id` is the document id,
  `created_at` the delivery time.
- `status`: a status message to one of them not yet acknowledged `done` (status_messages.py).
  `id` is the message id, `document_id` the document it answers.

Oldest first, capped (100 by default), with the total of all pending items of the kind asked;
kind "" merges both. A system polls this every few seconds, so both reads run only over
partial indexes that hold the pending rows alone (models.UNTAKEN, models.NOT_DONE).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, literal_column, select
from sqlalchemy.orm import Session

from lienthong_common.errors import invalid, not_found
from lienthong_routing import status_messages
from lienthong_routing.models import Delivery, RoutedDocument, StatusMessage

KIND_EDOC, KIND_STATUS = "edoc", "status"
KINDS = ("", KIND_EDOC, KIND_STATUS)
DEFAULT_PENDING_LIMIT = 100
MAX_PENDING_LIMIT = 1000


@dataclass(frozen=True)
class PendingItem:
    """A document or a status message one of the agencies has to take."""

    id: str
    kind: str
    from_code: str
    to_code: str
    created_at: datetime
    updated_at: datetime
    state: str
    document_id: str
    subject: str
    edxml_document_id: str
    status_code: str = ""
    description: str = ""


@dataclass(frozen=True)
class PendingList:
    items: list[PendingItem]
    total: int


def agency_codes_given(codes: list[str], *, what: str = "agency_codes") -> list[str]:
    """The codes, blanks dropped and duplicates once; INVALID_ARGUMENT when none is left."""
    cleaned = list(dict.fromkeys(c.strip() for c in codes if c.strip()))
    if not cleaned:
        raise invalid(f"{what} is required: the agencies the caller acts for")
    return cleaned


def edoc_item(delivery: Delivery, document: RoutedDocument) -> PendingItem:
    return PendingItem(
        id=document.id,
        kind=KIND_EDOC,
        from_code=document.sender_code,
        to_code=delivery.recipient_code,
        created_at=delivery.delivered_at,
        updated_at=delivery.updated_at,
        state=status_messages.PENDING,
        document_id=document.id,
        subject=document.subject,
        edxml_document_id=document.edxml_document_id,
    )


def status_item(message: StatusMessage, document: RoutedDocument) -> PendingItem:
    return PendingItem(
        id=message.id,
        kind=KIND_STATUS,
        from_code=message.from_code,
        to_code=message.to_code,
        created_at=message.created_at,
        updated_at=message.updated_at,
        state=message.state,
        document_id=message.document_id,
        subject=document.subject,
        edxml_document_id=document.edxml_document_id,
        status_code=message.status_code,
        description=message.description,
    )


def _untaken(agency_codes: list[str]) -> list[ColumnElement[bool]]:
    # models.UNTAKEN, the partial index's predicate, with the state as a literal: a bound
    # parameter would hide the match from the planner (SQLite, PostgreSQL's generic plans).
    return [Delivery.recipient_code.in_(agency_codes), Delivery.state == literal_column("'delivered'")]


def untaken_deliveries(*, session: Session, agency_codes: list[str], limit: int) -> list[PendingItem]:
    """Deliveries to the agencies nobody has fetched yet, oldest first."""
    query = (
        select(Delivery, RoutedDocument)
        .join(RoutedDocument, RoutedDocument.id == Delivery.document_id)
        .where(*_untaken(agency_codes))
        .order_by(Delivery.delivered_at, Delivery.id)
        .limit(limit)
    )
    return [edoc_item(row[0], row[1]) for row in session.execute(query)]


def count_untaken(*, session: Session, agency_codes: list[str]) -> int:
    query = select(func.count()).select_from(Delivery).where(*_untaken(agency_codes))
    return int(session.scalar(query) or 0)


def pending_status_messages(*, session: Session, agency_codes: list[str], limit: int) -> list[PendingItem]:
    """Status messages to the agencies not yet acknowledged done, oldest first."""
    messages = status_messages.pending_for(session=session, agency_codes=agency_codes, limit=limit)
    documents = _documents(session=session, ids={m.document_id for m in messages})
    return [status_item(m, documents[m.document_id]) for m in messages]


def _documents(*, session: Session, ids: set[str]) -> dict[str, RoutedDocument]:
    if not ids:
        return {}
    return {d.id: d for d in session.scalars(select(RoutedDocument).where(RoutedDocument.id.in_(ids)))}


def list_pending(*, session: Session, agency_codes: list[str], kind: str = "", limit: int = 0) -> PendingList:
    """The agencies' pending items of `kind` ("" both, merged), oldest first; see the module docstring."""
    codes = agency_codes_given(agency_codes)
    if kind not in KINDS:
        raise invalid(f"kind {kind!r} is not one of '', '{KIND_EDOC}', '{KIND_STATUS}'")
    if limit < 0 or limit > MAX_PENDING_LIMIT:
        raise invalid(f"limit must be between 1 and {MAX_PENDING_LIMIT} (0 means {DEFAULT_PENDING_LIMIT})")
    cap = limit or DEFAULT_PENDING_LIMIT
    items: list[PendingItem] = []
    total = 0
    if kind in ("", KIND_EDOC):
        items += untaken_deliveries(session=session, agency_codes=codes, limit=cap)
        total += count_untaken(session=session, agency_codes=codes)
    if kind in ("", KIND_STATUS):
        items += pending_status_messages(session=session, agency_codes=codes, limit=cap)
        total += status_messages.count_pending(session=session, agency_codes=codes)
    items.sort(key=lambda i: (i.created_at, i.id))
    return PendingList(items=items[:cap], total=total)


def status_message(
    *, session: Session, message_id: str, agency_codes: list[str]
) -> tuple[PendingItem, bytes]:
    """A status message to one of the agencies, and its VNPT status package."""
    codes = agency_codes_given(agency_codes)
    message = status_messages.get_for(session=session, message_id=message_id, agency_codes=codes)
    document = _document(session=session, message=message)
    return status_item(message, document), status_messages.package(document=document, message=message)


def acknowledge_status_message(
    *, session: Session, message_id: str, agency_codes: list[str], outcome: str
) -> PendingItem:
    """The addressee's done, fail or processing on a status message; the message as it is now."""
    codes = agency_codes_given(agency_codes)
    message = status_messages.acknowledge(
        session=session, message_id=message_id, agency_codes=codes, outcome=outcome
    )
    return status_item(message, _document(session=session, message=message))


def _document(*, session: Session, message: StatusMessage) -> RoutedDocument:
    document = session.get(RoutedDocument, message.document_id)
    if document is None:  # the foreign key forbids it; say so rather than fail obscurely
        raise not_found(f"document {message.document_id} of status message {message.id} is gone")
    return document
