"""What the docstore emits: `DocumentSubmitted` once a package is stored. It consumes nothing."""

from __future__ import annotations

from sqlalchemy.orm import Session

from lienthong.events.v1 import events_pb2
from lienthong_common.outbox import TOPIC_SUBMITTED, new_event
from lienthong_common.telemetry import set_document_attributes
from lienthong_docstore.models import OUTBOX, Document


def submitted_event(document: Document) -> events_pb2.Event:
    """The `DocumentSubmitted` event describing a newly stored document."""
    event = new_event(document.id, at=document.submitted_at)
    event.submitted.CopyFrom(
        events_pb2.DocumentSubmitted(
            sender_code=document.sender_code,
            recipient_codes=document.recipient_codes,
            edxml_document_id=document.edxml_document_id,
            subject=document.subject,
            package_sha256=document.package_sha256,
            package_size=document.package_size,
            attachments=[
                events_pb2.AttachmentRef(
                    content_id=a.content_id,
                    name=a.name,
                    content_type=a.content_type,
                    sha256=a.sha256,
                    size=a.size,
                )
                for a in document.attachments
            ],
            business_doc_type=document.business_doc_type,
            referenced_document_id=document.referenced_document_id,
            priority=document.priority,
        )
    )
    return event


def emit_submitted(*, session: Session, document: Document) -> None:
    """Queue `DocumentSubmitted` in the transaction that stores the document."""
    set_document_attributes(
        document_id=document.id, agency_code=document.sender_code, recipient_codes=document.recipient_codes
    )
    OUTBOX.add(session, topic=TOPIC_SUBMITTED, key=document.id, event=submitted_event(document))
