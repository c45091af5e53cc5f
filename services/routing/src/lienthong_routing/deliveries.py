"""The use cases behind routing's API: post a status, read a document's state, page an inbox.

The inbox lists every delivery to the agency, oldest first by its inbox sequence, whatever its
state: recalled and refused deliveries stay listed with their state, so a pulling client sees
the change instead of a silent disappearance. Documents the platform refused before delivery
have no delivery and never appear. The cursor is opaque (base64 of the last sequence seen);
with no new items `next_cursor` repeats the cursor given, so a pull loop keeps its place.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from lienthong_common.grpcutil import conflict, forbidden, invalid, not_found
from lienthong_common.outbox import now_utc
from lienthong_routing import repository
from lienthong_routing.domain import (
    DESCRIPTIONS,
    POSTED_BY,
    DeliveryState,
    Party,
    StatusCode,
    can_follow,
    next_state,
    parse_status_code,
)
from lienthong_routing.events import REFUSED, emit_delivery_updated
from lienthong_routing.models import Delivery, RoutedDocument, StatusEntry

DEFAULT_INBOX_LIMIT = 50
MAX_INBOX_LIMIT = 500
_CURSOR_PREFIX = "seq:"


@dataclass(frozen=True)
class DocumentView:
    document: RoutedDocument
    deliveries: list[Delivery]
    timeline: list[StatusEntry]


@dataclass(frozen=True)
class InboxPage:
    items: list[tuple[Delivery, RoutedDocument]]
    next_cursor: str


def _document_or_not_found(*, session: Session, document_id: str) -> RoutedDocument:
    document = repository.get_document(session=session, document_id=document_id)
    if document is None:
        raise not_found(f"document {document_id} is not known to routing")
    return document


def post_status(
    *,
    session: Session,
    document_id: str,
    actor_code: str,
    code: str,
    description: str = "",
    at: datetime | None = None,
) -> list[Delivery]:
    """Apply a QCVN status from a recipient (01..06, 15, 16) or the sender (13); the changed deliveries."""
    status = parse_status_code(code)
    document = _document_or_not_found(session=session, document_id=document_id)
    if document.state == REFUSED:
        raise conflict(
            f"document {document_id} was refused before delivery ({document.refusal_reason}); "
            "it takes no statuses"
        )
    deliveries = repository.deliveries_of(session=session, document_id=document_id, for_update=True)
    if POSTED_BY[status] is Party.SENDER:
        if actor_code != document.sender_code:
            raise forbidden(
                f"only the sender {document.sender_code} may post status {status.value} "
                f"for document {document_id}"
            )
        targets = [d for d in deliveries if can_follow(DeliveryState(d.state), status)]
        if not targets:
            states = ", ".join(f"{d.recipient_code} '{d.state}'" for d in deliveries) or "none"
            raise conflict(
                f"no delivery of document {document_id} can take status {status.value}; deliveries: {states}"
            )
    else:
        own = [d for d in deliveries if d.recipient_code == actor_code]
        if not own:
            raise forbidden(f"agency {actor_code} is not a recipient of document {document_id}")
        targets = own
        for delivery in targets:
            next_state(
                recipient_code=delivery.recipient_code,
                current=DeliveryState(delivery.state),
                code=status,
            )
    when = at or now_utc()
    text = description or DESCRIPTIONS[status]
    for delivery in targets:
        _apply(
            session=session,
            document=document,
            delivery=delivery,
            status=status,
            description=text,
            actor_code=actor_code,
            at=when,
        )
    return targets


def _apply(
    *,
    session: Session,
    document: RoutedDocument,
    delivery: Delivery,
    status: StatusCode,
    description: str,
    actor_code: str,
    at: datetime,
) -> None:
    """Move one delivery, append its timeline entry and queue its DeliveryUpdated."""
    previous = DeliveryState(delivery.state)
    delivery.state = next_state(recipient_code=delivery.recipient_code, current=previous, code=status)
    delivery.last_status_code = status.value
    delivery.updated_at = at
    repository.add_status_entry(
        session=session,
        document_id=document.id,
        recipient_code=delivery.recipient_code,
        code=status.value,
        state=delivery.state,
        description=description,
        actor_code=actor_code,
        at=at,
    )
    emit_delivery_updated(
        session=session,
        document=document,
        delivery=delivery,
        previous_state=previous.value,
        status_code=status.value,
        description=description,
        actor_code=actor_code,
        at=at,
    )


def document_state(*, session: Session, document_id: str) -> DocumentView:
    """A document's deliveries and timeline (and its refusal reason, if refused)."""
    document = _document_or_not_found(session=session, document_id=document_id)
    return DocumentView(
        document=document,
        deliveries=repository.deliveries_of(session=session, document_id=document_id),
        timeline=repository.timeline_of(session=session, document_id=document_id),
    )


def encode_cursor(sequence: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{sequence}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    """The last inbox sequence a cursor stands for (0 for the empty cursor)."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError(text)
        sequence = int(text.removeprefix(_CURSOR_PREFIX))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid(f"cursor {cursor!r} is not one this inbox handed out") from None
    if sequence < 0:
        raise invalid(f"cursor {cursor!r} is not one this inbox handed out")
    return sequence


def inbox(*, session: Session, agency_code: str, cursor: str = "", limit: int = 0) -> InboxPage:
    """Deliveries to `agency_code` after `cursor`, oldest first, at most `limit` (default 50)."""
    if not agency_code:
        raise invalid("agency_code is required")
    if limit < 0 or limit > MAX_INBOX_LIMIT:
        raise invalid(f"limit must be between 1 and {MAX_INBOX_LIMIT} (0 means {DEFAULT_INBOX_LIMIT})")
    after = decode_cursor(cursor)
    items = repository.inbox_page(
        session=session,
        agency_code=agency_code,
        after_sequence=after,
        limit=limit or DEFAULT_INBOX_LIMIT,
    )
    next_cursor = encode_cursor(items[-1][0].inbox_sequence) if items else cursor
    return InboxPage(items=items, next_cursor=next_cursor)
