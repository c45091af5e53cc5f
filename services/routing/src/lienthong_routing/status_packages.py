"""Every business status as the edXML Status package the other side's software expects.

Routing builds one package per status it records (with lienthong_common.edxml), numbered
1, 2, … per document, and keeps it: the sender (and every party of the document) lists them
with ListStatusPackages and fetches one with GetStatusPackage — REST
`GET /v1/documents/{id}/statuses` and `/statuses/{n}` — and an agency with a webhook
receives each one pushed by reference (`type: status`, the URL of the package in the body,
fetched with the agency's token; never the package inline). A document whose
DocumentId is not of the standard form gets no packages (the strict writer refuses it); its
statuses are still on the timeline.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lienthong_common import edxml
from lienthong_common.errors import not_found
from lienthong_routing.models import RoutedDocument, StatusPackageRecord

log = logging.getLogger(__name__)

_DOCUMENT_ID = re.compile(r"(?P<organ>[^,]+),(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2}),(?P<code>.+)")


def response_for(document_id: str) -> tuple[str, str, date | None]:
    """(OrganId, "Number/Notation", promulgation date) read from a standard DocumentId."""
    match = _DOCUMENT_ID.fullmatch(document_id)
    if match is None:
        return "", "", None
    try:
        day = date(int(match["y"]), int(match["m"]), int(match["d"]))
    except ValueError:
        day = None
    return match["organ"], match["code"], day


def record(
    *,
    session: Session,
    document: RoutedDocument,
    from_code: str,
    status_code: str,
    description: str,
    at: datetime,
) -> StatusPackageRecord | None:
    """Build and keep the status package of one status; None when the document has no standard id."""
    organ, code, day = response_for(document.edxml_document_id)
    try:
        package = edxml.build_status_package(
            edxml.StatusPackage(
                response_for_organ_id=organ or document.sender_code,
                response_for_document_id=document.edxml_document_id,
                response_for_code=code,
                response_for_promulgation_date=day,
                sender=edxml.Organization(organ_id=from_code),
                status_code=status_code,
                description=description,
                timestamp=at,
            )
        )
    except edxml.EdxmlError as error:
        log.info("no status package for document %s: %s", document.id, error)
        return None
    number = (
        int(
            session.scalar(
                select(func.max(StatusPackageRecord.number)).where(
                    StatusPackageRecord.document_id == document.id
                )
            )
            or 0
        )
        + 1
    )
    entry = StatusPackageRecord(
        document_id=document.id,
        number=number,
        from_code=from_code,
        status_code=status_code,
        description=description,
        package=package,
        at=at,
    )
    session.add(entry)
    session.flush()
    return entry


def list_for(*, session: Session, document_id: str) -> list[StatusPackageRecord]:
    query = (
        select(StatusPackageRecord)
        .where(StatusPackageRecord.document_id == document_id)
        .order_by(StatusPackageRecord.number)
    )
    return list(session.scalars(query))


def get(*, session: Session, document_id: str, number: int) -> StatusPackageRecord:
    found = session.scalars(
        select(StatusPackageRecord).where(
            StatusPackageRecord.document_id == document_id, StatusPackageRecord.number == number
        )
    ).one_or_none()
    if found is None:
        raise not_found(f"document {document_id} has no status package {number}")
    return found


def webhook_payload(document: RoutedDocument, entry: StatusPackageRecord, payload_id: str) -> dict[str, Any]:
    return {
        "type": "status",
        "id": payload_id,
        "document": {
            "id": document.id,
            "document_id": document.edxml_document_id,
            "sender": document.sender_code,
            "subject": document.subject,
        },
        "status": {
            "number": entry.number,
            "from": entry.from_code,
            "code": entry.status_code,
            "description": entry.description,
            "at": entry.at.isoformat(),
            # The package by reference: GET it with the agency's token (parties only).
            "url": f"/v1/documents/{document.id}/statuses/{entry.number}",
            "content_type": "application/xml",
            "size": len(entry.package),
        },
    }
