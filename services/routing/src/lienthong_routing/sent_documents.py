"""What a system's agencies sent (VDXP getSentEdocList) and finding documents by their edXML id.

Both answer with full document views (deliveries, timeline, the codes the package named), for
the parties only: ListSent for the senders, FindDocuments for anyone who sent or received a
document with that DocumentId (one DocumentId may name several platform documents: a package
sent twice, or by two agencies that chose the same number).

ListSent pages newest first by (routing time, id) with an opaque cursor. Each sender's
documents are read separately over (sender_code, created_at), each at most one page, and
merged: every read is an index range however many documents a sender has. A document routed
while someone pages is on the first page of a new listing, not inside the pages already
being read.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import itertools
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from lienthong_common.errors import invalid, not_found
from lienthong_routing.deliveries import DocumentView, document_views
from lienthong_routing.models import Delivery, RoutedDocument
from lienthong_routing.vdxp_pending import agency_codes_given

DEFAULT_SENT_LIMIT = 100
MAX_SENT_LIMIT = 500
MAX_FOUND = 100
_CURSOR_PREFIX = "sent:"


@dataclass(frozen=True)
class SentPage:
    documents: list[DocumentView]
    next_cursor: str  # "" after the last page


def find_documents(*, session: Session, edxml_document_id: str, party_codes: list[str]) -> list[DocumentView]:
    """Documents with this edXML DocumentId that one of the parties sent or received, oldest first."""
    if not edxml_document_id.strip():
        raise invalid("edxml_document_id is required")
    codes = agency_codes_given(party_codes, what="party_codes")
    received = exists().where(Delivery.document_id == RoutedDocument.id, Delivery.recipient_code.in_(codes))
    query = (
        select(RoutedDocument)
        .where(
            RoutedDocument.edxml_document_id == edxml_document_id.strip(),
            or_(RoutedDocument.sender_code.in_(codes), received),
        )
        .order_by(RoutedDocument.created_at, RoutedDocument.id)
        .limit(MAX_FOUND)
    )
    return document_views(session=session, documents=list(session.scalars(query)))


def encode_cursor(document: RoutedDocument) -> str:
    text = f"{_CURSOR_PREFIX}{document.created_at.isoformat()}|{document.id}"
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str] | None:
    """(routing time, id) of the last document a cursor's page held; None for the first page."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError(text)
        when, document_id = text.removeprefix(_CURSOR_PREFIX).split("|", 1)
        at = datetime.fromisoformat(when)
        if at.tzinfo is None or not document_id:
            raise ValueError(text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid(f"cursor {cursor!r} is not one this list handed out") from None
    return at, document_id


def list_sent(
    *,
    session: Session,
    sender_codes: list[str],
    document_id: str = "",
    cursor: str = "",
    limit: int = 0,
) -> SentPage:
    """The senders' documents newest first, or with `document_id` just that one (if theirs)."""
    codes = agency_codes_given(sender_codes, what="sender_codes")
    if document_id:
        document = session.get(RoutedDocument, document_id)
        if document is None or document.sender_code not in codes:
            raise not_found(f"document {document_id} is not one {', '.join(codes)} sent")
        return SentPage(documents=document_views(session=session, documents=[document]), next_cursor="")
    if limit < 0 or limit > MAX_SENT_LIMIT:
        raise invalid(f"limit must be between 1 and {MAX_SENT_LIMIT} (0 means {DEFAULT_SENT_LIMIT})")
    size = limit or DEFAULT_SENT_LIMIT
    after = decode_cursor(cursor)
    # One page plus one per sender, merged newest first; the extra row says whether more follow.
    newest_first = heapq.merge(
        *(_sent_by(session=session, sender_code=code, after=after, limit=size + 1) for code in codes),
        key=lambda d: (d.created_at, d.id),
        reverse=True,
    )
    found = list(itertools.islice(newest_first, size + 1))
    page = found[:size]
    more = len(found) > size
    return SentPage(
        documents=document_views(session=session, documents=page),
        next_cursor=encode_cursor(page[-1]) if more else "",
    )


def _sent_by(
    *, session: Session, sender_code: str, after: tuple[datetime, str] | None, limit: int
) -> list[RoutedDocument]:
    query = select(RoutedDocument).where(RoutedDocument.sender_code == sender_code)
    if after is not None:
        at, last_id = after
        query = query.where(
            or_(
                RoutedDocument.created_at < at,
                and_(RoutedDocument.created_at == at, RoutedDocument.id < last_id),
            )
        )
    query = query.order_by(RoutedDocument.created_at.desc(), RoutedDocument.id.desc()).limit(limit)
    return list(session.scalars(query))
