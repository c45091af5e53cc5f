"""Status messages: each recorded status, waiting for the addressee's system to take it (VDXP pull).

VDXP systems do not receive pushes: they poll for what their agencies have to take, documents
and status packages alike, fetch each item and acknowledge it. So every status routing records
on a document becomes, in the same transaction, one message per addressee:

- a recipient's status (01..06, 15, 16) → the document's sender;
- the sender's 13 (posted, or implied by a recall document, BussinessDocType 1) → every
  recipient whose delivery it moved to `recall_requested`.

The 01 the gateway records when a recipient's system fetches a document (getEdoc, or
updateStatus done) is such a status and notifies the sender like any other: VNPT's axis sends
01 status packages too (`status_inbox_01`), and the sender is owed word of receipt the same day
(NĐ 30/2020). Routing cannot tell it from a 01 the recipient posted itself, and need not.

A message is `pending` until its addressee acknowledges it: `done` takes it out of the pending
list for good (acknowledging done again is a no-op; nothing brings it back), `fail` (`failed`)
and `processing` keep it listed. A repeated post of a status (same actor, code and
description as the actor's latest status on the document, now an illegal transition) is
answered with the first post's messages instead of a conflict: see `repeat_of`.

The package a message is fetched as is built when fetched, as VNPT's EdXML builder writes it:
`ResponseFor/OrganId` is always the addressee (for 13 the recipient, while `DocumentId` still
names the sender's document), `From` the agency that posted the status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, literal_column, select
from sqlalchemy.orm import Session

from lienthong_common import edxml
from lienthong_common.clock import now_utc
from lienthong_common.errors import conflict, invalid, not_found
from lienthong_common.ids import new_id
from lienthong_routing.models import RoutedDocument, StatusMessage
from lienthong_routing.status_packages import response_for

PENDING, PROCESSING, FAILED, DONE = "pending", "processing", "failed", "done"
# What an addressee's acknowledgement moves a message to.
OUTCOMES = {"done": DONE, "fail": FAILED, "processing": PROCESSING}


@dataclass(frozen=True)
class Repeat:
    """The messages of the post a repeated post repeats, and whom they went to."""

    ids: list[str]
    addressees: set[str]


def create(
    *,
    session: Session,
    document: RoutedDocument,
    from_code: str,
    to_codes: list[str],
    status_code: str,
    description: str,
    at: datetime,
    status_package_id: int | None = None,
) -> list[str]:
    """One pending message per addressee (in `to_codes` order, duplicates once); their ids."""
    status_id = new_id()
    messages = [
        StatusMessage(
            id=new_id(),
            document_id=document.id,
            status_id=status_id,
            status_package_id=status_package_id,
            from_code=from_code,
            to_code=code,
            status_code=status_code,
            description=description,
            state=PENDING,
            created_at=at,
            updated_at=at,
        )
        for code in dict.fromkeys(to_codes)
    ]
    session.add_all(messages)
    session.flush()
    return [m.id for m in messages]


def repeat_of(
    *, session: Session, document_id: str, actor_code: str, status_code: str, description: str
) -> Repeat | None:
    """The messages of `actor_code`'s latest status on the document, if it is this very status.

    Called only for a post the state machine refuses: no status code can follow itself, so a
    refused post whose code and description equal the actor's latest status is that status
    posted again (a retry after a lost reply), not a new one.
    """
    latest = session.scalars(
        select(StatusMessage)
        .where(StatusMessage.document_id == document_id, StatusMessage.from_code == actor_code)
        .order_by(StatusMessage.created_at.desc(), StatusMessage.id.desc())
        .limit(1)
    ).first()
    if latest is None or latest.status_code != status_code or latest.description != description:
        return None
    same = list(
        session.scalars(
            select(StatusMessage)
            .where(StatusMessage.document_id == document_id, StatusMessage.status_id == latest.status_id)
            .order_by(StatusMessage.to_code)
        )
    )
    return Repeat(ids=[m.id for m in same], addressees={m.to_code for m in same})


# -- the addressee's side ----------------------------------------------------------------------
# models.NOT_DONE, the partial index's predicate, with the state as a literal so that the
# planner matches it (a bound parameter would hide it: SQLite, PostgreSQL's generic plans).
_NOT_DONE = StatusMessage.state != literal_column(f"'{DONE}'")


def pending_for(*, session: Session, agency_codes: list[str], limit: int) -> list[StatusMessage]:
    """Messages to any of `agency_codes` not yet done, oldest first (the partial index's rows)."""
    query = (
        select(StatusMessage)
        .where(StatusMessage.to_code.in_(agency_codes), _NOT_DONE)
        .order_by(StatusMessage.created_at, StatusMessage.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def count_pending(*, session: Session, agency_codes: list[str]) -> int:
    query = select(func.count()).where(StatusMessage.to_code.in_(agency_codes), _NOT_DONE)
    return int(session.scalar(query.select_from(StatusMessage)) or 0)


def get_for(
    *, session: Session, message_id: str, agency_codes: list[str], for_update: bool = False
) -> StatusMessage:
    """The message if it is addressed to one of `agency_codes`; NOT_FOUND otherwise."""
    if not message_id:
        raise invalid("the status message id is required")
    query = select(StatusMessage).where(StatusMessage.id == message_id)
    if for_update:
        query = query.with_for_update()
    message = session.scalars(query).first()
    if message is None or message.to_code not in agency_codes:
        # The same answer whether it does not exist or is someone else's: ids are not probed.
        raise not_found(f"no status message {message_id} is addressed to {', '.join(agency_codes) or 'you'}")
    return message


def acknowledge(
    *, session: Session, message_id: str, agency_codes: list[str], outcome: str, at: datetime | None = None
) -> StatusMessage:
    """The addressee's word on a message: done (taken), fail (retry later) or processing."""
    state = OUTCOMES.get(outcome.strip().lower())
    if state is None:
        raise invalid(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    message = get_for(session=session, message_id=message_id, agency_codes=agency_codes, for_update=True)
    if message.state == DONE:
        if state == DONE:
            return message  # acknowledged twice: the first one stands
        raise conflict(
            f"status message {message_id} was already acknowledged done; it cannot become '{state}'"
        )
    message.state = state
    message.updated_at = at or now_utc()
    session.flush()
    return message


def package(*, document: RoutedDocument, message: StatusMessage) -> bytes:
    """The status as VNPT's EdXML builder writes it, addressed to the message's addressee.

    `Code` and `PromulgationDate` of ResponseFor come from a standard DocumentId; any other
    DocumentId (a UUID, say) is written as the sender gave it, without them, since a status must
    name its document the sender's way. Should the writer still refuse (no DocumentId at all),
    FAILED_PRECONDITION gives its reason.
    """
    _organ, code, day = response_for(document.edxml_document_id)
    try:
        return edxml.build_vnpt_status_package(
            edxml.StatusPackage(
                response_for_organ_id=message.to_code,
                response_for_document_id=document.edxml_document_id,
                response_for_code=code,
                response_for_promulgation_date=day,
                sender=edxml.Organization(organ_id=message.from_code),
                status_code=message.status_code,
                description=message.description,
                timestamp=message.created_at,
            )
        )
    except edxml.EdxmlError as error:
        raise conflict(
            f"status message {message.id} cannot be written as a VNPT status package: {error} "
            f"(document {document.id}, DocumentId {document.edxml_document_id!r})"
        ) from None
