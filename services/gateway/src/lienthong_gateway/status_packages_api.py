"""Status packages posted as packages: `POST /v1/status-packages` and VDXP's messagetype=status.

Agencies' software writes a business status as an edXML status package — VNPT's builder in the
`edXML > edXMLEnvelope > … > MessageHeader … StatusCode` shape, others as `edXML:Status`.
Either is read, its author (`From/OrganId`) must be the caller, and the document it answers is
the one named by `ResponseFor/DocumentId` that the author sent or received; several documents
can share that id (a corrected resend), and then the latest one exchanged with the
`ResponseFor/OrganId` named wins. The status is then recorded exactly as a JSON status post is.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from fastapi import APIRouter, Depends, Header, Request

from lienthong.routing.v1 import routing_pb2
from lienthong_common import edxml
from lienthong_gateway.auth import Caller
from lienthong_gateway.context import GatewayContext, caller_dependency, gateway
from lienthong_gateway.documents import edxml_problem, read_body_limited, record_status
from lienthong_gateway.problems import Problem
from lienthong_gateway.schemas import problem_responses

router = APIRouter(prefix="/v1", tags=["documents"])

STATUS_PACKAGE_BYTES = 1024 * 1024  # a status package is a header: a few KB


def post_status_package(
    ctx: GatewayContext, caller: Caller, package: bytes, idempotency_key: str
) -> dict[str, Any]:
    """Record the status a package carries; the reply of a status post plus the document's id."""
    try:
        status = edxml.parse_status_package(package)
    except edxml.EdxmlError as error:
        raise edxml_problem(error, "edXML status package") from error
    author = status.sender.organ_id
    if author != caller.code:
        raise Problem(
            403,
            f"From/OrganId is {author} but the caller is {caller.code}: "
            "an agency posts only its own statuses",
            kind="sender-mismatch",
        )
    found = ctx.clients.routing.FindDocuments(
        routing_pb2.FindDocumentsRequest(
            edxml_document_id=status.response_for_document_id, party_codes=[caller.code]
        ),
        timeout=ctx.deadline,
    ).documents
    if not found:
        raise Problem(
            404,
            f"no document {status.response_for_document_id} was exchanged by {caller.code}",
            kind="document-not-found",
        )
    addressee = status.response_for_organ_id
    named = [d for d in found if addressee in (d.sender_code, *d.addressed_codes)] or list(found)
    document = max(named, key=lambda d: (d.routed_at.seconds, d.routed_at.nanos))
    key = idempotency_key or "package:" + hashlib.sha256(package).hexdigest()
    result = record_status(ctx, caller, document.document_id, status.status_code, status.description, key)
    return {**result, "warnings": list(status.warnings)}


@router.post(
    "/status-packages",
    status_code=200,
    summary="Post a business status as an edXML status package",
    description="Body: a status package (application/xml), VNPT's shape or edXML:Status. Its From must be "
    "the caller; it answers the document its ResponseFor/DocumentId names. Same rules as "
    "POST /v1/documents/{id}/status; an identical package posted again changes nothing.",
    responses={
        200: {
            "description": "recorded",
            "content": {
                "application/json": {
                    "example": {
                        "id": "8af226c8-7cde-4fbe-88fe-e15a768b49cb",
                        "recipients": [
                            {"code": "000.00.02.H49", "state": "accepted", "last_status_code": "03"}
                        ],
                        "status_message_ids": ["5b0c1e0e-0a51-4c0f-9e8f-5d1f6b2f1a77"],
                        "warnings": [],
                    }
                }
            },
        },
        **problem_responses(403, 404, 409, 422),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/xml": {"schema": {"type": "string"}, "example": "<edXML …StatusCode…/>"}
            },
        }
    },
)
async def post_status_package_endpoint(
    request: Request,
    caller: Caller = Depends(caller_dependency),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=255),
) -> dict[str, Any]:
    ctx = gateway(request)
    package = await read_body_limited(request, STATUS_PACKAGE_BYTES)
    return await asyncio.to_thread(post_status_package, ctx, caller, package, idempotency_key or "")
