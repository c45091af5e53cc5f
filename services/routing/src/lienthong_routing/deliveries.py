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

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from lienthong_common.clock import now_utc
from lienthong_common.errors import DomainError, ErrorKind, conflict, forbidden, invalid, not_found
from lienthong_routing import ledger, repository, status_messages, webhooks
from lienthong_routing.deadlines import AWAITING_ACK_STATES, is_overdue
from lienthong_routing.domain import (
    DESCRIPTIONS,
    POSTED_BY,
    REFUSED,
    DeliveryState,
    Party,
    StatusCode,
    can_follow,
    next_state,
    parse_status_code,
)
from lienthong_routing.models import Delivery, RoutedDocument, StatusEntry, WebhookDelivery

DEFAULT_INBOX_LIMIT = 50
MAX_INBOX_LIMIT = 500
_CURSOR_PREFIX = "seq:"
OVERDUE = "overdue"


@dataclass(frozen=True)
class DocumentView:
    document: RoutedDocument
    deliveries: list[Delivery]
    timeline: list[StatusEntry]
    # Latest webhook payload per delivery id (deliveries to agencies with a webhook).
    pushes: dict[str, WebhookDelivery]
    now: datetime

    def overdue(self, delivery: Delivery) -> bool:
        return is_overdue(
            state=delivery.state,
            acknowledged_at=delivery.acknowledged_at,
            ack_deadline=delivery.ack_deadline,
            now=self.now,
        )


@dataclass(frozen=True)
class InboxPage:
    items: list[tuple[Delivery, RoutedDocument]]
    next_cursor: str


def _document_or_not_found(*, session: Session, document_id: str) -> RoutedDocument:
    document = repository.get_document(session=session, document_id=document_id)
    if document is None:
        raise not_found(f"document {document_id} is not known to routing")
    return document


@dataclass(frozen=True)
class PostedStatus:
    """The deliveries a status moved and the status messages it created, one per addressee."""

    deliveries: list[Delivery]
    status_message_ids: list[str]


def post_status(
    *,
    session: Session,
    document_id: str,
    actor_code: str,
    code: str,
    description: str = "",
    at: datetime | None = None,
) -> PostedStatus:
    """Apply a QCVN status from a recipient (01..06, 15, 16) or the sender (13).

    A post that repeats the actor's latest status (same code and description) is answered as
    the first one was, with its status messages, and changes nothing (see status_messages).
    """
    status = parse_status_code(code)
    document = _document_or_not_found(session=session, document_id=document_id)
    if document.state == REFUSED:
        raise conflict(
            f"document {document_id} was refused before delivery ({document.refusal_reason}); "
            "it takes no statuses"
        )
    deliveries = repository.deliveries_of(session=session, document_id=document_id, for_update=True)
    text = description or DESCRIPTIONS[status]
    by_sender = POSTED_BY[status] is Party.SENDER
    try:
        targets = _status_targets(
            document=document, deliveries=deliveries, status=status, actor_code=actor_code
        )
    except DomainError as error:
        if error.kind is not ErrorKind.CONFLICT:
            raise
        repeat = status_messages.repeat_of(
            session=session,
            document_id=document_id,
            actor_code=actor_code,
            status_code=status.value,
            description=text,
        )
        if repeat is None:
            raise
        return PostedStatus(
            deliveries=[
                d
                for d in deliveries
                if (d.recipient_code in repeat.addressees if by_sender else d.recipient_code == actor_code)
            ],
            status_message_ids=repeat.ids,
        )
    when = at or now_utc()
    for delivery in targets:
        ledger.apply_status(
            session=session,
            document=document,
            delivery=delivery,
            status=status,
            description=text,
            actor_code=actor_code,
            at=when,
        )
    # The other party hears of it as an edXML status package and a status message: the sender
    # of a recipient's status, the recipients of the sender's recall request.
    message_ids = ledger.send_status_package(
        session=session,
        document=document,
        from_code=actor_code,
        to_codes=[d.recipient_code for d in targets] if by_sender else [document.sender_code],
        status=status,
        description=text,
        at=when,
    )
    return PostedStatus(deliveries=targets, status_message_ids=message_ids)


def _status_targets(
    *, document: RoutedDocument, deliveries: list[Delivery], status: StatusCode, actor_code: str
) -> list[Delivery]:
    """The deliveries `status` from `actor_code` moves; PERMISSION_DENIED or FAILED_PRECONDITION."""
    if POSTED_BY[status] is Party.SENDER:
        if actor_code != document.sender_code:
            raise forbidden(
                f"only the sender {document.sender_code} may post status {status.value} "
                f"for document {document.id}"
            )
        targets = [d for d in deliveries if can_follow(DeliveryState(d.state), status)]
        if not targets:
            states = ", ".join(f"{d.recipient_code} '{d.state}'" for d in deliveries) or "none"
            raise conflict(
                f"no delivery of document {document.id} can take status {status.value}; deliveries: {states}"
            )
        return targets
    own = [d for d in deliveries if d.recipient_code == actor_code]
    if not own:
        raise forbidden(f"agency {actor_code} is not a recipient of document {document.id}")
    for delivery in own:
        next_state(
            recipient_code=delivery.recipient_code,
            current=DeliveryState(delivery.state),
            code=status,
        )
    return own


def document_state(*, session: Session, document_id: str, now: datetime | None = None) -> DocumentView:
    """A document's deliveries and timeline (and its refusal reason, if refused)."""
    document = _document_or_not_found(session=session, document_id=document_id)
    [view] = document_views(session=session, documents=[document], now=now)
    return view


def document_views(
    *, session: Session, documents: list[RoutedDocument], now: datetime | None = None
) -> list[DocumentView]:
    """Each document's view (as document_state gives it), read with one query per table.

    An overdue delivery adds a line to the timeline as read (state `overdue`, at its
    deadline), so `track` shows it; nothing is stored, since overdue depends on the clock.
    """
    ids = [d.id for d in documents]
    deliveries = repository.deliveries_of_many(session=session, document_ids=ids)
    timelines = repository.timelines_of(session=session, document_ids=ids)
    pushes = webhooks.push_states_of(session=session, document_ids=ids)
    when = now or now_utc()
    views = []
    for document in documents:
        view = DocumentView(
            document=document,
            deliveries=deliveries[document.id],
            timeline=timelines[document.id],
            pushes=pushes.get(document.id, {}),
            now=when,
        )
        for delivery in view.deliveries:
            if view.overdue(delivery) and delivery.ack_deadline is not None:
                view.timeline.append(
                    StatusEntry(
                        document_id=document.id,
                        recipient_code=delivery.recipient_code,
                        code="",
                        state=OVERDUE,
                        description="not acknowledged (01, 02 or 03) by the end of the working day "
                        f"it was delivered: due {delivery.ack_deadline.isoformat()}",
                        actor_code="",
                        at=delivery.ack_deadline,
                    )
                )
        view.timeline.sort(key=lambda e: e.at)
        views.append(view)
    return views


def overdue_deliveries(
    *,
    session: Session,
    recipient_code: str = "",
    sender_code: str = "",
    limit: int = 500,
    now: datetime | None = None,
) -> list[tuple[Delivery, RoutedDocument]]:
    """Unacknowledged deliveries past their deadline, oldest deadline first."""
    query = (
        select(Delivery, RoutedDocument)
        .join(RoutedDocument, RoutedDocument.id == Delivery.document_id)
        .where(*_overdue_filter(now or now_utc()))
        .order_by(Delivery.ack_deadline)
        .limit(min(max(limit, 1), 5000))
    )
    if recipient_code:
        query = query.where(Delivery.recipient_code == recipient_code)
    if sender_code:
        query = query.where(RoutedDocument.sender_code == sender_code)
    return [(row[0], row[1]) for row in session.execute(query)]


def count_overdue(*, session: Session, now: datetime | None = None) -> dict[str, int]:
    """Overdue deliveries per recipient (the metric's labels)."""
    query = (
        select(Delivery.recipient_code, func.count())
        .where(*_overdue_filter(now or now_utc()))
        .group_by(Delivery.recipient_code)
        .order_by(Delivery.recipient_code)
    )
    return {str(code): int(n) for code, n in session.execute(query).all()}


def _overdue_filter(now: datetime) -> list[ColumnElement[bool]]:
    return [
        Delivery.ack_deadline.is_not(None),
        Delivery.ack_deadline <= now,
        Delivery.acknowledged_at.is_(None),
        Delivery.state.in_(sorted(AWAITING_ACK_STATES)),
    ]


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
