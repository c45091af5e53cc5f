"""The VDXP-compatible facade under /vdxp/: what agencies' existing software already speaks.

Every operation is `POST /vdxp/{operation}`; the caller authenticates with its system id (its
agency code) and secret in headers; replies are `{status: OK|FAIL, ErrorCode, ErrorDesc,
data|DocId}`. Domain failures are HTTP 200 with status FAIL (what VDXP clients read); only
rate limiting (429), an oversized body (413) and unavailable platform services (5xx) use HTTP
statuses too, so generic HTTP retry logic still works. docs/vdxp.md has the full mapping.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from lienthong.directory.v1 import directory_pb2
from lienthong.docstore.v1 import docstore_pb2
from lienthong.routing.v1 import routing_pb2
from lienthong_common import edxml
from lienthong_gateway.auth import Caller, checked_credentials
from lienthong_gateway.context import GatewayContext, admit, gateway
from lienthong_gateway.documents import (
    document_parties,
    iso,
    mark_arrived,
    read_body_limited,
    record_status,
    submit_package,
)
from lienthong_gateway.problems import Problem, from_rpc_error

router = APIRouter(prefix="/vdxp", tags=["vdxp"])

SYSTEM_ID_HEADERS = ("systemid", "system-id", "systemId", "x-system-id")
SECRET_HEADERS = ("secret", "secretkey", "secret-key", "x-secret")
# HTTP statuses that stay HTTP statuses on the facade; everything else is 200 + FAIL.
TRANSPORT_STATUSES = frozenset({413, 429, 502, 503, 504})
MAX_LISTED = 2000


class VdxpReply(BaseModel):
    """The VDXP reply envelope."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "status": "OK",
                    "ErrorCode": "0",
                    "ErrorDesc": "",
                    "DocId": "6f1c2f0e-8a0b-4f5e-9d3c-1b2a3c4d5e6f",
                },
                {"status": "FAIL", "ErrorCode": "404", "ErrorDesc": "document 6f1c… was not found"},
            ]
        },
    )
    status: str
    ErrorCode: str
    ErrorDesc: str
    data: Any = None
    DocId: str | None = None


def ok(**fields: Any) -> JSONResponse:
    return JSONResponse({"status": "OK", "ErrorCode": "0", "ErrorDesc": "", **fields})


def fail(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"status": "FAIL", "ErrorCode": str(status), "ErrorDesc": detail},
        status_code=status if status in TRANSPORT_STATUSES else 200,
        headers=headers,
    )


async def answer(
    request: Request, operation: Callable[[GatewayContext, Caller], Awaitable[JSONResponse]]
) -> JSONResponse:
    """Authenticate, run the operation, and fold every problem into the VDXP envelope."""
    try:
        ctx = gateway(request)
        caller = await asyncio.to_thread(system_caller, ctx, request)
        return await operation(ctx, caller)
    except Problem as problem:
        return fail(problem.status, problem.detail, problem.headers or None)
    except grpc.RpcError as error:
        p = from_rpc_error(error)
        return fail(p.status, p.detail)


def system_caller(ctx: GatewayContext, request: Request) -> Caller:
    """The agency behind the system id and secret headers (or HTTP Basic), checked now."""
    headers = request.headers
    system_id = next((headers[h] for h in SYSTEM_ID_HEADERS if h in headers), "")
    secret = next((headers[h] for h in SECRET_HEADERS if h in headers), "")
    auth = headers.get("authorization", "")
    if not system_id and auth.lower().startswith("basic "):
        try:
            system_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            system_id = ""
    if not system_id or not secret:
        raise Problem(401, "missing credentials: send the systemid and secret headers", kind="invalid-client")
    system_id, secret = checked_credentials(system_id, secret)
    reply = ctx.clients.directory.VerifyCredential(
        directory_pb2.VerifyCredentialRequest(client_id=system_id, secret=secret), timeout=ctx.deadline
    )
    if not reply.valid:
        raise Problem(401, f"system id {system_id} or its secret is not valid", kind="invalid-client")
    caller = Caller(code=reply.agency_code or system_id, roles=tuple(reply.roles))
    return admit(ctx, request, caller)


def header(request: Request, *names: str) -> str:
    return next((request.headers[n] for n in names if n in request.headers), "").strip()


AUTH_HEADERS = {
    "systemid": Header(default=None, alias="systemid", description="system id: the agency code"),
    "secret": Header(default=None, alias="secret", description="the agency's secret"),
}


def send_edoc_sync(ctx: GatewayContext, caller: Caller, request: Request, body: bytes) -> JSONResponse:
    service_type = header(request, "servicetype") or "eDoc"
    if service_type.lower() != "edoc":
        raise Problem(422, f"servicetype {service_type!r} is not supported; use eDoc")
    declared_hash = header(request, "hash-file", "hashfile").lower()
    if declared_hash and declared_hash != hashlib.sha256(body).hexdigest():
        raise Problem(422, "hash-file does not match the SHA-256 of the body", kind="hash-mismatch")
    sender = header(request, "from")
    if sender and sender != caller.code:
        raise Problem(403, f"from is {sender} but the system is {caller.code}", kind="sender-mismatch")
    key = header(request, "idempotency-key") or f"vdxp:{hashlib.sha256(body).hexdigest()}"
    message_type = (header(request, "messagetype") or "edoc").lower()
    if message_type == "status":
        return send_status(ctx, caller, body, key)
    if message_type != "edoc":
        raise Problem(422, f"messagetype {message_type!r} is not supported; use edoc or status")
    to = header(request, "to")
    if to:
        check_to_header(to, body)
    _, reply = submit_package(ctx, caller, body, key)
    return ok(DocId=reply["id"])


def check_to_header(to: str, body: bytes) -> None:
    try:
        listed = json.loads(to)
    except ValueError:
        listed = [c.strip() for c in to.split(",")]
    codes = {str(c) for c in (listed if isinstance(listed, list) else [listed]) if str(c).strip()}
    try:
        package = edxml.parse_package(body)
    except edxml.EdxmlError as error:
        raise Problem(422, f"edXML package is not valid: {error}", kind="invalid-edxml") from error
    addressed = {org.organ_id for org in package.header.recipients}
    if codes != addressed:
        raise Problem(
            422,
            f"the to header lists {sorted(codes)} but the package is addressed to {sorted(addressed)}",
            kind="recipients-mismatch",
        )


def send_status(ctx: GatewayContext, caller: Caller, body: bytes, key: str) -> JSONResponse:
    """A status package (messagetype=status) becomes the business status of the document it answers."""
    try:
        status = edxml.parse_status_package(body)
    except edxml.EdxmlError as error:
        raise Problem(422, f"edXML status package is not valid: {error}", kind="invalid-edxml") from error
    if status.sender.organ_id and status.sender.organ_id != caller.code:
        raise Problem(403, f"From is {status.sender.organ_id} but the system is {caller.code}")
    document_id = find_received(ctx, caller, status.response_for_document_id, status.response_for_organ_id)
    record_status(ctx, caller, document_id, status.status_code, status.description, key)
    return ok(DocId=document_id)


def find_received(ctx: GatewayContext, caller: Caller, edxml_id: str, sender: str) -> str:
    for item in inbox_items(ctx, caller):
        if item.edxml_document_id == edxml_id and (not sender or item.sender_code == sender):
            return str(item.document_id)
    raise Problem(404, f"no document {edxml_id} from {sender or 'any sender'} was delivered to {caller.code}")


def inbox_items(ctx: GatewayContext, caller: Caller) -> list[routing_pb2.InboxItem]:
    items: list[routing_pb2.InboxItem] = []
    cursor = ""
    while len(items) < MAX_LISTED:
        page = ctx.clients.routing.ListInbox(
            routing_pb2.InboxRequest(agency_code=caller.code, cursor=cursor, limit=500), timeout=ctx.deadline
        )
        items.extend(page.items)
        cursor = page.next_cursor
        if not cursor or not page.items:
            break
    return items


def received_list(ctx: GatewayContext, caller: Caller, request: Request) -> JSONResponse:
    message_type = (header(request, "messagetype") or "edoc").lower()
    if message_type == "status":
        return ok(data=statuses_for_sender(ctx, caller))
    pending = [i for i in inbox_items(ctx, caller) if i.state == "delivered"]
    return ok(
        data=[
            {
                "id": i.document_id,
                "from": i.sender_code,
                "code": i.edxml_document_id,
                "subject": i.subject,
                "created_time": iso(i.delivered_at),
                "status": "pending",
            }
            for i in pending
        ]
    )


def sent_documents(ctx: GatewayContext, caller: Caller) -> list[docstore_pb2.DocumentMetadata]:
    documents: list[docstore_pb2.DocumentMetadata] = []
    cursor = ""
    while len(documents) < MAX_LISTED:
        page = ctx.clients.docstore.ListSentDocuments(
            docstore_pb2.ListSentRequest(sender_code=caller.code, cursor=cursor, limit=500),
            timeout=ctx.deadline,
        )
        documents.extend(page.documents)
        cursor = page.next_cursor
        if not cursor or not page.documents:
            break
    return documents


def document_state(ctx: GatewayContext, document_id: str) -> routing_pb2.DocumentState | None:
    try:
        return ctx.clients.routing.GetDocumentState(
            routing_pb2.GetDocumentStateRequest(document_id=document_id), timeout=ctx.deadline
        )
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


def statuses_for_sender(ctx: GatewayContext, caller: Caller) -> list[dict[str, Any]]:
    """Business statuses recipients posted on the caller's documents (messagetype=status)."""
    out: list[dict[str, Any]] = []
    for doc in sent_documents(ctx, caller):
        state = document_state(ctx, doc.id)
        for n, entry in enumerate(state.timeline if state else [], start=1):
            if entry.code and entry.actor_code != caller.code:
                out.append(
                    {
                        "id": f"{doc.id}:{n}",
                        "docId": doc.id,
                        "code": doc.edxml_document_id,
                        "from": entry.actor_code,
                        "statusCode": entry.code,
                        "description": entry.description,
                        "time": iso(entry.at),
                    }
                )
    return out


def deliveries_view(ctx: GatewayContext, doc: docstore_pb2.DocumentMetadata) -> list[dict[str, Any]]:
    state = document_state(ctx, doc.id)
    if state is None:
        return [
            {"toCode": c, "status": "queued", "statusCode": None, "updatedTime": None}
            for c in doc.recipient_codes
        ]
    if state.state == "refused":
        return [
            {"toCode": c, "status": "refused", "statusCode": None, "updatedTime": None}
            for c in doc.recipient_codes
        ]
    return [
        {
            "toCode": d.recipient_code,
            "status": d.state,
            "statusCode": d.last_status_code or None,
            "updatedTime": iso(d.updated_at),
        }
        for d in state.deliveries
    ]


def sent_list(ctx: GatewayContext, caller: Caller, request: Request) -> JSONResponse:
    doc_id = header(request, "docid", "docId", "doc-id")
    if doc_id:
        meta = document_parties(ctx, caller, doc_id)
        if meta.sender_code != caller.code:
            raise Problem(404, f"document {doc_id} was not found among the documents {caller.code} sent")
        return ok(data=deliveries_view(ctx, meta))
    cursor = header(request, "cursor")
    limit_raw = header(request, "limit") or "50"
    if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= 500:
        raise Problem(422, f"limit must be a number from 1 to 500, not {limit_raw!r}")
    page = ctx.clients.docstore.ListSentDocuments(
        docstore_pb2.ListSentRequest(sender_code=caller.code, cursor=cursor, limit=int(limit_raw)),
        timeout=ctx.deadline,
    )
    data = [
        {
            "id": d.id,
            "code": d.edxml_document_id,
            "subject": d.subject,
            "created_time": iso(d.submitted_at),
            "to": list(d.recipient_codes),
            "statuses": deliveries_view(ctx, d),
        }
        for d in page.documents
    ]
    return ok(data=data, nextCursor=page.next_cursor or None)


def get_edoc_sync(ctx: GatewayContext, caller: Caller, request: Request) -> JSONResponse:
    doc_id = header(request, "docid", "docId", "doc-id")
    if not doc_id:
        raise Problem(422, "the docId header is required")
    meta = document_parties(ctx, caller, doc_id)
    if caller.code != meta.sender_code:
        mark_arrived(ctx, caller, doc_id)
    stream = ctx.clients.docstore.GetPackage(
        docstore_pb2.GetDocumentRequest(id=doc_id), timeout=ctx.deadline * 6
    )
    package = b"".join(chunk.data for chunk in stream)
    return ok(data=base64.b64encode(package).decode(), DocId=doc_id)


TRANSPORT_STATUS = {"done": "01"}  # the receiving system took the document: arrived


def update_status_sync(ctx: GatewayContext, caller: Caller, request: Request) -> JSONResponse:
    doc_id = header(request, "docid", "docId", "doc-id")
    status = header(request, "status").lower()
    if not doc_id or not status:
        raise Problem(422, "the docId and status headers are required")
    key = header(request, "idempotency-key")
    if status in ("fail", "processing"):
        # The receiving system could not take the document yet: it stays in getReceivedEdocList.
        document_parties(ctx, caller, doc_id)
        return ok(DocId=doc_id)
    if status == "done":
        meta = document_parties(ctx, caller, doc_id)
        if caller.code == meta.sender_code:
            raise Problem(
                403, "only a recipient acknowledges a document with status done", kind="status-not-allowed"
            )
        mark_arrived(ctx, caller, doc_id)
        return ok(DocId=doc_id)
    if len(status) == 2 and status.isdigit():
        record_status(ctx, caller, doc_id, status, header(request, "description"), key)
        return ok(DocId=doc_id)
    raise Problem(422, f"status {status!r} is not one of done, fail, processing or a QCVN code 01..16")


def agencies_list(ctx: GatewayContext, caller: Caller) -> JSONResponse:
    reply = ctx.clients.directory.ListAgencies(directory_pb2.ListAgenciesRequest(), timeout=ctx.deadline)
    return ok(
        data=[
            {
                "id": a.code,
                "code": a.code,
                "name": a.name,
                "pcode": a.parent_code,
                "mail": a.email,
                "mobile": a.telephone,
                "fax": "",
                "tier": a.tier,
                "status": a.status,
            }
            for a in reply.agencies
        ]
    )


def register_agency_sync(ctx: GatewayContext, caller: Caller, body: bytes) -> JSONResponse:
    if not caller.is_admin:
        raise Problem(403, "only administrators write the directory", kind="admin-only")
    try:
        record = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as error:
        raise Problem(422, f"body is not JSON: {error}") from error
    if not isinstance(record, dict) or not record.get("code") or not record.get("name"):
        raise Problem(422, "body must be a JSON object with at least code and name")
    agency = directory_pb2.Agency(
        code=str(record["code"]),
        name=str(record["name"]),
        parent_code=str(record.get("pcode") or ""),
        email=str(record.get("mail") or ""),
        telephone=str(record.get("mobile") or ""),
    )
    saved = ctx.clients.directory.UpsertAgency(
        directory_pb2.UpsertAgencyRequest(agency=agency), timeout=ctx.deadline
    )
    return ok(data={"id": saved.code, "code": saved.code, "name": saved.name})


REPLY: dict[int | str, dict[str, Any]] = {
    200: {"model": VdxpReply, "description": "status OK, or FAIL with ErrorCode and ErrorDesc"}
}
TRANSPORT: dict[int | str, dict[str, Any]] = {
    413: {"model": VdxpReply, "description": "body too large (status FAIL)"},
    429: {"model": VdxpReply, "description": "rate limited (status FAIL, Retry-After)"},
    503: {"model": VdxpReply, "description": "a platform service is unavailable (status FAIL)"},
    502: {"model": VdxpReply, "description": "a platform service failed (status FAIL)"},
    504: {"model": VdxpReply, "description": "a platform service timed out (status FAIL)"},
}
SEND_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/xml": {"schema": {"type": "string"}, "example": "<edXML:edXMLEnvelope …/>"}},
    }
}


@router.post(
    "/sendEdoc",
    summary="Send an edXML document or status package",
    description="Headers: from (the caller), to (JSON array of recipient codes), servicetype=eDoc, "
    "messagetype=edoc|status, hash-file (SHA-256 hex of the body). Reply DocId is the platform id.",
    response_model=VdxpReply,
    responses={**REPLY, **TRANSPORT},
    openapi_extra=SEND_BODY,
)
async def send_edoc(
    request: Request,
    systemid: str | None = AUTH_HEADERS["systemid"],
    secret: str | None = AUTH_HEADERS["secret"],
    messagetype: str | None = Header(default=None, description="edoc | status"),
    hash_file: str | None = Header(default=None, alias="hash-file", description="SHA-256 hex of the body"),
) -> JSONResponse:
    async def run(ctx: GatewayContext, caller: Caller) -> JSONResponse:
        body = await read_body_limited(request, ctx.settings.gateway.max_request_bytes)
        return await asyncio.to_thread(send_edoc_sync, ctx, caller, request, body)

    return await answer(request, run)


@router.post(
    "/getReceivedEdocList",
    summary="Documents waiting for the caller (messagetype=edoc) or statuses on its documents (status)",
    response_model=VdxpReply,
    responses={**REPLY, **TRANSPORT},
)
async def get_received_edoc_list(
    request: Request,
    systemid: str | None = AUTH_HEADERS["systemid"],
    secret: str | None = AUTH_HEADERS["secret"],
    messagetype: str | None = Header(default=None, description="edoc | status"),
) -> JSONResponse:
    return await answer(request, lambda ctx, caller: asyncio.to_thread(received_list, ctx, caller, request))


@router.post(
    "/getEdoc",
    summary="One document's package, base64 in data (header docId)",
    response_model=VdxpReply,
    responses={**REPLY, **TRANSPORT},
)
async def get_edoc(
    request: Request,
    systemid: str | None = AUTH_HEADERS["systemid"],
    secret: str | None = AUTH_HEADERS["secret"],
    docid: str | None = Header(default=None, alias="docId", description="the platform id"),
) -> JSONResponse:
    return await answer(request, lambda ctx, caller: asyncio.to_thread(get_edoc_sync, ctx, caller, request))


@router.post(
    "/updateStatus",
    summary="Acknowledge a received document (status done|fail|processing) or post a QCVN code",
    response_model=VdxpReply,
    responses={**REPLY, **TRANSPORT},
)
async def update_status(
    request: Request,
    systemid: str | None = AUTH_HEADERS["systemid"],
    secret: str | None = AUTH_HEADERS["secret"],
    docid: str | None = Header(default=None, alias="docId"),
    status: str | None = Header(default=None, description="done | fail | processing | 01..06 | 13 | 15 | 16"),
) -> JSONResponse:
    return await answer(
        request, lambda ctx, caller: asyncio.to_thread(update_status_sync, ctx, caller, request)
    )


@router.post(
    "/getSentEdocList",
    summary="The caller's sent documents with per-recipient states (or one, header docId)",
    response_model=VdxpReply,
    responses={**REPLY, **TRANSPORT},
)
async def get_sent_edoc_list(
    request: Request,
    systemid: str | None = AUTH_HEADERS["systemid"],
    secret: str | None = AUTH_HEADERS["secret"],
    docid: str | None = Header(default=None, alias="docId"),
    cursor: str | None = Header(default=None, description="nextCursor of the previous reply"),
) -> JSONResponse:
    return await answer(request, lambda ctx, caller: asyncio.to_thread(sent_list, ctx, caller, request))


@router.post(
    "/getAgenciesList",
    summary="Every agency in the directory",
    response_model=VdxpReply,
    responses={**REPLY, **TRANSPORT},
)
async def get_agencies_list(
    request: Request,
    systemid: str | None = AUTH_HEADERS["systemid"],
    secret: str | None = AUTH_HEADERS["secret"],
) -> JSONResponse:
    return await answer(request, lambda ctx, caller: asyncio.to_thread(agencies_list, ctx, caller))


@router.post(
    "/registerAgency",
    summary="Register or change an agency (administrators)",
    description='Body: {"code", "name", "pcode", "mail", "mobile", "fax"} as the VDXP SDK sends it.',
    response_model=VdxpReply,
    responses={**REPLY, **TRANSPORT},
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "example": {"code": "000.00.30.H49", "name": "Sở Thử nghiệm", "pcode": "000.00.00.H49"},
                }
            }
        }
    },
)
async def register_agency(
    request: Request,
    systemid: str | None = AUTH_HEADERS["systemid"],
    secret: str | None = AUTH_HEADERS["secret"],
) -> JSONResponse:
    async def run(ctx: GatewayContext, caller: Caller) -> JSONResponse:
        body = await read_body_limited(request, 1024 * 1024)
        return await asyncio.to_thread(register_agency_sync, ctx, caller, body)

    return await answer(request, run)


__all__ = ["router"]
