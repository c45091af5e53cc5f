"""Recall, update and replace (BussinessDocType 1, 2, 3) as QĐ 28/2018 and QCVN 102 describe.

A business document names, by its edXML DocumentId, an earlier document of the same sender;
routing finds the latest routed one and acts on its deliveries once the new document has
been delivered:

- recall (1): every delivery of the old document still in play moves to `recall_requested`,
  exactly as the sender's status 13 would; each recipient cancels it and answers 15
  (`recalled`) or keeps it and answers 16 (`recall_refused`).
- update (2) / replace (3): for each recipient that receives the new document, the old
  delivery becomes `superseded` / `replaced` (terminal, `superseded_by` naming the new
  document): the new document takes its place in the recipient's inbox. Recipients of the old
  document that the new one does not reach keep the old one unchanged, and the new document's
  timeline says so.

Both documents' timelines carry a note naming the other. A reference that matches no routed
document of the sender is noted on the new document's timeline; the new document is still
delivered (it is a document in its own right).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from lienthong_common.edxml import BUSINESS_RECALL, BUSINESS_REPLACE, BUSINESS_UPDATE
from lienthong_routing import ledger, repository
from lienthong_routing.domain import NOT_SUPERSEDABLE, DeliveryState, StatusCode, can_follow
from lienthong_routing.models import Delivery, RoutedDocument

ROUTED = "routed"
ACTIONS = {BUSINESS_RECALL: "recall", BUSINESS_UPDATE: "update", BUSINESS_REPLACE: "replacement"}


def referenced_document(*, session: Session, document: RoutedDocument) -> RoutedDocument | None:
    """The latest routed document of the same sender with the referenced edXML DocumentId."""
    query = (
        select(RoutedDocument)
        .where(
            RoutedDocument.sender_code == document.sender_code,
            RoutedDocument.edxml_document_id == document.referenced_document_id,
            RoutedDocument.state == ROUTED,
            RoutedDocument.id != document.id,
        )
        .order_by(RoutedDocument.created_at.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def _note(
    *, session: Session, document: RoutedDocument, text: str, at: datetime, recipient: str = ""
) -> None:
    repository.add_status_entry(
        session=session,
        document_id=document.id,
        recipient_code=recipient,
        code="",
        state=f"business_{ACTIONS.get(document.business_doc_type, 'reference')}",
        description=text,
        actor_code=document.sender_code,
        at=at,
    )


def apply(*, session: Session, document: RoutedDocument, new_recipients: set[str], at: datetime) -> None:
    """Act on the document `document` refers to (see the module docstring)."""
    action = ACTIONS.get(document.business_doc_type)
    if action is None:
        return
    old = referenced_document(session=session, document=document)
    if old is None:
        _note(
            session=session,
            document=document,
            at=at,
            text=f"{action} of {document.referenced_document_id}: no routed document of "
            f"{document.sender_code} has that DocumentId; nothing else changed",
        )
        return
    old_deliveries = repository.deliveries_of(session=session, document_id=old.id, for_update=True)
    if document.business_doc_type == BUSINESS_RECALL:
        _recall(session=session, document=document, old=old, old_deliveries=old_deliveries, at=at)
    else:
        _supersede(
            session=session,
            document=document,
            old=old,
            old_deliveries=old_deliveries,
            new_recipients=new_recipients,
            at=at,
        )


def _recall(
    *,
    session: Session,
    document: RoutedDocument,
    old: RoutedDocument,
    old_deliveries: list[Delivery],
    at: datetime,
) -> None:
    reason = f"recall requested by document {document.edxml_document_id} ({document.id})"
    targets = [d for d in old_deliveries if can_follow(DeliveryState(d.state), StatusCode.RECALL_REQUESTED)]
    for delivery in targets:
        ledger.apply_status(
            session=session,
            document=old,
            delivery=delivery,
            status=StatusCode.RECALL_REQUESTED,
            description=reason,
            actor_code=old.sender_code,
            at=at,
        )
    if targets:
        ledger.send_status_package(
            session=session,
            document=old,
            from_code=old.sender_code,
            to_codes=[d.recipient_code for d in targets],
            status=StatusCode.RECALL_REQUESTED,
            description=reason,
            at=at,
        )
    untouched = [f"{d.recipient_code} '{d.state}'" for d in old_deliveries if d not in targets]
    _note(
        session=session,
        document=document,
        at=at,
        text=f"recall of {old.edxml_document_id} ({old.id}) requested from "
        f"{len(targets)} recipient(s)" + (f"; not recallable: {', '.join(untouched)}" if untouched else ""),
    )


def _supersede(
    *,
    session: Session,
    document: RoutedDocument,
    old: RoutedDocument,
    old_deliveries: list[Delivery],
    new_recipients: set[str],
    at: datetime,
) -> None:
    action = ACTIONS[document.business_doc_type]
    state = (
        DeliveryState.SUPERSEDED if document.business_doc_type == BUSINESS_UPDATE else DeliveryState.REPLACED
    )
    text = (
        f"{'updated' if state is DeliveryState.SUPERSEDED else 'replaced'} by document "
        f"{document.edxml_document_id} ({document.id})"
    )
    changed, kept = [], []
    for delivery in old_deliveries:
        if delivery.recipient_code not in new_recipients:
            kept.append(f"{delivery.recipient_code} (not a recipient of the {action})")
            continue
        if DeliveryState(delivery.state) in NOT_SUPERSEDABLE:
            kept.append(f"{delivery.recipient_code} ('{delivery.state}')")
            continue
        previous = delivery.state
        delivery.state = state.value
        delivery.superseded_by = document.id
        delivery.updated_at = at
        ledger.record_change(
            session=session,
            document=old,
            delivery=delivery,
            previous_state=previous,
            status_code="",
            description=text,
            actor_code=old.sender_code,
            at=at,
            kind="superseded",
            extra={"superseded_by": document.id},
        )
        changed.append(delivery.recipient_code)
    _note(
        session=session,
        document=document,
        at=at,
        text=f"{action} of {old.edxml_document_id} ({old.id}) for {len(changed)} recipient(s)"
        + (f"; unchanged: {', '.join(kept)}" if kept else ""),
    )
