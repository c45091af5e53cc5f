"""Documents: submit, read, content, inbox and statuses (REST /v1)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC
from typing import Any

import grpc
from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from google.protobuf.timestamp_pb2 import Timestamp

from lienthong.directory.v1 import directory_pb2
from lienthong.docstore.v1 import docstore_pb2
from lienthong.routing.v1 import routing_pb2
from lienthong.sigverify.v1 import sigverify_pb2
from lienthong_common import edxml
from lienthong_common.ids import new_id
from lienthong_common.package_limits import ENVELOPE_BYTES, describe_limit, max_attachment_bytes
from lienthong_common.telemetry import link_to_trace, set_document_attributes, trace_id_of
from lienthong_gateway.auth import Caller
from lienthong_gateway.context import GatewayContext, caller_dependency, gateway
from lienthong_gateway.idempotency import Remembered, fingerprint
from lienthong_gateway.problems import Problem
from lienthong_gateway.schemas import (
    DocumentView,
    InboxPage,
    PackageLimits,
    StatusBody,
    StatusReply,
    SubmitReply,
    problem_responses,
)
from lienthong_gateway.uploads import PackageBody, body_chunks, body_size, received_package, spool_dir

router = APIRouter(prefix="/v1", tags=["documents"])
BLANK = re.compile(rb"\s*")

EDXML_EXAMPLE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<edXML:edXMLEnvelope xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">'
    "<edXML:edXMLHeader><edXML:MessageHeader><edXML:From><edXML:OrganId>000.00.00.H49</edXML:OrganId>"
    "</edXML:From><edXML:To><edXML:OrganId>000.00.02.H49</edXML:OrganId></edXML:To>…"
    "</edXML:MessageHeader></edXML:edXMLHeader><edXML:edXMLBody>…</edXML:edXMLBody></edXML:edXMLEnvelope>"
)


def iso(ts: Timestamp) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime(tzinfo=UTC).isoformat()


async def read_body_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Problem(
            413, f"package is {int(declared)} bytes; the limit is {limit} bytes", kind="package-too-large"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, f"package exceeds the limit of {limit} bytes", kind="package-too-large")
        chunks.append(chunk)
    return b"".join(chunks)


def edxml_problem(error: edxml.EdxmlError, what: str) -> Problem:
    """A package the reader refused, as the 422 that names why and where."""
    if isinstance(error, edxml.XmlSecurityError):
        return Problem(422, f"{what} refused: {error}", kind="unsafe-xml", path=error.path)
    return Problem(422, f"{what} is not valid: {error}", kind="invalid-edxml", path=error.path)


def submit_package(
    ctx: GatewayContext,
    caller: Caller,
    body: PackageBody,
    idempotency_key: str,
    *,
    expected_recipients: Sequence[str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Check the package (in memory, or spooled to disk when large), then stream it to docstore.
    With `expected_recipients` (VDXP's `to`), the package must be addressed to exactly those."""
    if isinstance(body, bytes) and BLANK.fullmatch(body):  # (strip() would copy a large body)
        raise Problem(
            422, "request body is empty: send an edXML package (application/xml)", kind="invalid-edxml"
        )
    try:
        # Checked whole (attachments decoded as they stream past), kept without its attachments.
        package = edxml.read_package_metadata(body)
    except edxml.EdxmlError as error:
        raise edxml_problem(error, "edXML package") from error
    sender = package.header.sender.organ_id
    if sender != caller.code:
        raise Problem(
            403,
            f"From/OrganId is {sender} but the caller is {caller.code}: an agency sends only in its own name",
            kind="sender-mismatch",
        )
    requested = [org.organ_id for org in package.header.recipients]
    if expected_recipients is not None and set(expected_recipients) != set(requested):
        raise Problem(
            422,
            f"to lists {sorted(set(expected_recipients))} "
            f"but the package is addressed to {sorted(set(requested))}",
            kind="recipients-mismatch",
        )
    resolved = ctx.clients.directory.ResolveRecipients(
        directory_pb2.ResolveRecipientsRequest(codes=requested), timeout=ctx.deadline
    )
    unknown = [r for r in resolved.resolutions if not r.found]
    if unknown:
        raise Problem(
            422,
            "; ".join(r.reason or f"recipient {r.requested_code} is not in the directory" for r in unknown),
            kind="unknown-recipient",
            recipients=[r.requested_code for r in unknown],
        )

    document_id = new_id()

    def requests() -> Iterator[docstore_pb2.PutPackageRequest]:
        yield docstore_pb2.PutPackageRequest(
            header=docstore_pb2.PackageHeader(
                id=document_id,
                sender_code=caller.code,
                recipient_codes=requested,
                declared_size=body_size(body),
                idempotency_key=idempotency_key,
            )
        )
        for chunk in body_chunks(body):
            yield docstore_pb2.PutPackageRequest(chunk=chunk)

    try:
        stored = ctx.clients.docstore.PutPackage(requests(), timeout=ctx.deadline * 3)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.ALREADY_EXISTS and idempotency_key:
            raise Problem(
                422,
                f"Idempotency-Key {idempotency_key!r} was already used by {caller.code} for a different "
                "package; use a new key for a new package",
                kind="idempotency-key-reused",
            ) from error
        raise
    doc = stored.document
    if stored.duplicate or stored.replayed:
        # Submitted before: routing may have delivered it already, so ask.
        recipients = recipient_states(ctx, doc.id, list(doc.recipient_codes))
    else:
        # Just stored: routing learns of it from docstore's event, after this reply. Asking
        # routing here cost a round trip (and a query in routing) per document for "queued".
        recipients = [{"code": c, "state": "queued"} for c in doc.recipient_codes]
    reply = {
        "id": doc.id,
        "document_id": doc.edxml_document_id,
        "recipients": recipients,
        "duplicate": stored.duplicate,
        "warnings": list(doc.warnings),
    }
    return 202, reply


def recipient_states(ctx: GatewayContext, document_id: str, codes: list[str]) -> list[dict[str, Any]]:
    try:
        state = ctx.clients.routing.GetDocumentState(
            routing_pb2.GetDocumentStateRequest(document_id=document_id), timeout=ctx.deadline
        )
    except grpc.RpcError:
        # Not routed yet, or routing is briefly away: the package is safely stored either way.
        return [{"code": c, "state": "queued"} for c in codes]
    if state.state == "refused":
        return [{"code": c, "state": "refused"} for c in codes]
    return [{"code": d.recipient_code, "state": d.state} for d in state.deliveries]


IDEMPOTENCY_KEY_DOC = (
    "Any string up to 255 characters, unique per intended operation. Retrying with the same key and "
    "the same body returns the first result; the same key with another body is refused (422)."
)


@router.post(
    "/documents",
    status_code=202,
    response_model=SubmitReply,
    summary="Submit an edXML package",
    description="Stores the package (QCVN 102:2016 edXML), then verifies its signatures and delivers it "
    "to every recipient. `From/OrganId` must be the caller. Replies 202 at once: follow the document "
    "with GET /v1/documents/{id}. A package may be at most `max_request_bytes` (50 MiB by default: "
    "the largest attachment that fits is 37.5 MiB, as base64 takes 4 bytes for every 3 and the "
    "envelope up to 64 KiB); GET /v1/limits gives this gateway's figures, and a larger package is "
    "refused with 413 `package-too-large` saying the same.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/xml": {
                    "schema": {"type": "string"},
                    "example": EDXML_EXAMPLE,
                }
            },
        }
    },
    responses=problem_responses(413),
)
async def submit_document(
    request: Request,
    caller: Caller = Depends(caller_dependency),
    idempotency_key: str | None = Header(
        default=None, alias="Idempotency-Key", max_length=255, description=IDEMPOTENCY_KEY_DOC
    ),
) -> JSONResponse:
    """Store the package, then verify its signatures and deliver it to every recipient."""
    ctx = gateway(request)
    limit = ctx.settings.gateway.max_request_bytes
    async with received_package(request, limit=limit, spool=spool_dir(ctx.settings.data_dir)) as body:
        status, reply = await asyncio.to_thread(submit_package, ctx, caller, body, idempotency_key or "")
    ctx.metrics.documents_submitted.labels(sender=caller.code).inc()
    return JSONResponse(reply, status_code=status)


@router.get(
    "/limits",
    summary="How large a package may be",
    description="The package limit and what it means for an agency: the largest attachment (or "
    "attachments together) that fits, base64 and envelope counted. `lienthong send` asks for it and "
    "refuses larger files before uploading.",
    response_model=PackageLimits,
    responses=problem_responses(),
)
def package_limits(request: Request, caller: Caller = Depends(caller_dependency)) -> dict[str, Any]:
    limit = gateway(request).settings.gateway.max_request_bytes
    return {
        "max_package_bytes": limit,
        "max_attachment_bytes": max_attachment_bytes(limit),
        "envelope_bytes": ENVELOPE_BYTES,
        "detail": describe_limit(limit),
    }


def document_parties(ctx: GatewayContext, caller: Caller, document_id: str) -> docstore_pb2.DocumentMetadata:
    """The document's metadata if the caller may see it; 404 alike for absent and not yours."""
    return document_party(ctx, [caller.code], document_id)[1]


def document_party(
    ctx: GatewayContext, codes: Sequence[str], document_id: str
) -> tuple[str, docstore_pb2.DocumentMetadata]:
    """The first of `codes` that is a party to the document, with its metadata (one read for
    all of them: a VDXP system acts for several agencies); 404 alike for absent and not theirs."""
    not_found = Problem(404, f"document {document_id} was not found", kind="document-not-found")
    try:
        meta = ctx.clients.docstore.GetMetadata(
            docstore_pb2.GetDocumentRequest(id=document_id), timeout=ctx.deadline
        )
    except grpc.RpcError as error:
        if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            raise not_found from error
        raise
    link_to_trace(meta.traceparent)  # this request's trace points at the document's journey
    set_document_attributes(document_id=document_id, agency_code=codes[0] if codes else "")
    parties = {meta.sender_code, *meta.recipient_codes}
    found = next((code for code in codes if code in parties), None)
    if found is None:
        # A successor of a dissolved recipient is a party too once routing redirected to it.
        try:
            state = ctx.clients.routing.GetDocumentState(
                routing_pb2.GetDocumentStateRequest(document_id=document_id), timeout=ctx.deadline
            )
            redirected = {d.recipient_code for d in state.deliveries}
            found = next((code for code in codes if code in redirected), None)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
    if found is None:
        raise not_found
    if found != codes[0]:
        set_document_attributes(document_id=document_id, agency_code=found)
    return found, meta


def document_view(ctx: GatewayContext, meta: docstore_pb2.DocumentMetadata) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": meta.id,
        "document_id": meta.edxml_document_id,
        "sender": meta.sender_code,
        "subject": meta.subject,
        "submitted_at": iso(meta.submitted_at),
        "package": {"sha256": meta.package_sha256, "size": meta.package_size},
        "attachments": [
            {"name": a.name, "content_type": a.content_type, "sha256": a.sha256, "size": a.size}
            for a in meta.attachments
        ],
        "warnings": list(meta.warnings),
        "trace_id": trace_id_of(meta.traceparent) or None,
        "state": "verifying",
        "validation": None,
        "recipients": [{"code": c, "state": "queued"} for c in meta.recipient_codes],
        "timeline": [],
    }
    # Routing first, then the report: routing's state follows sigverify's verdict event, which
    # is committed with the report, so a state past verification ("refused", "delivered") is
    # always shown with its validation (read the other way round, a report committed between
    # the two calls left a refused document without one).
    try:
        state: routing_pb2.DocumentState | None = ctx.clients.routing.GetDocumentState(
            routing_pb2.GetDocumentStateRequest(document_id=meta.id), timeout=ctx.deadline
        )
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
        state = None
    try:
        report = ctx.clients.sigverify.GetReport(
            sigverify_pb2.GetReportRequest(document_id=meta.id), timeout=ctx.deadline
        )
        view["validation"] = {
            "indication": report.indication,
            "sub_indication": report.sub_indication or None,
            "reason": report.reason or None,
            "verified_at": iso(report.verified_at),
            "signatures": [
                {
                    "attachment": s.attachment_name,
                    "field": s.field_name,
                    "indication": s.indication,
                    "sub_indication": s.sub_indication or None,
                    "signer": s.signer_subject,
                    "signer_agency": s.signer_agency_code or None,
                    "signing_time": iso(s.signing_time),
                    "chain": list(s.chain),
                    "message": s.message,
                }
                for s in report.signatures
            ],
        }
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
    if state is None:
        if view["validation"] is None:
            view.update(verification_hold(ctx, meta.id))
        return view
    view["state"] = state.state
    if state.refusal_reason:
        view["refusal_reason"] = state.refusal_reason
    if state.state == "refused":
        view["recipients"] = [{"code": c, "state": "refused"} for c in meta.recipient_codes]
    else:
        view["recipients"] = [
            {
                "code": d.recipient_code,
                "state": d.state,
                "last_status_code": d.last_status_code or None,
                "updated_at": iso(d.updated_at),
                **({"requested_code": d.requested_code} if d.requested_code else {}),
            }
            for d in state.deliveries
        ]
    view["timeline"] = [
        {
            "recipient": t.recipient_code,
            "code": t.code or None,
            "state": t.state,
            "description": t.description,
            "actor": t.actor_code,
            "at": iso(t.at),
        }
        for t in state.timeline
    ]
    return view


def verification_hold(ctx: GatewayContext, document_id: str) -> dict[str, Any]:
    """{"hold": ...} while sigverify holds the document for revocation data (docs/adr/0075), else {}:
    the document is still being verified, not failed, and the sender sees what it waits for."""
    try:
        hold = ctx.clients.sigverify.GetHold(
            sigverify_pb2.GetReportRequest(document_id=document_id), timeout=ctx.deadline
        )
    except grpc.RpcError as error:
        if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED):
            return {}  # not held (UNIMPLEMENTED: a sigverify from before holds existed)
        raise
    return {
        "hold": {
            "waiting_for": "revocation data",
            "reason": hold.reason,
            "held_since": iso(hold.held_since),
            "next_attempt_at": iso(hold.next_attempt_at),
            "attempts": hold.attempts,
            "deadline": iso(hold.deadline),
        }
    }


@router.get(
    "/documents/{document_id}",
    summary="A document's validation, deliveries and statuses",
    response_model=DocumentView,
    response_model_exclude_unset=True,
    responses=problem_responses(404),
)
def get_document(
    document_id: str, request: Request, caller: Caller = Depends(caller_dependency)
) -> dict[str, Any]:
    """Metadata, signature report, per-recipient states and the status timeline."""
    ctx = gateway(request)
    meta = document_parties(ctx, caller, document_id)
    return document_view(ctx, meta)


@router.get(
    "/documents/{document_id}/content",
    summary="The edXML package as stored",
    description="Streams the package byte for byte as stored (ETag is its SHA-256). A recipient's first "
    "fetch records status 01 (arrived).",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/xml": {"schema": {"type": "string"}, "example": EDXML_EXAMPLE}}},
        **problem_responses(404, 409),
    },
)
def get_content(
    document_id: str, request: Request, caller: Caller = Depends(caller_dependency)
) -> StreamingResponse:
    """Streams the stored package; a recipient's first fetch records status 01 (arrived)."""
    ctx = gateway(request)
    meta = document_parties(ctx, caller, document_id)
    if caller.code != meta.sender_code:
        mark_arrived(ctx, caller, document_id)
    stream = ctx.clients.docstore.GetPackage(
        docstore_pb2.GetDocumentRequest(id=document_id), timeout=ctx.deadline * 6
    )
    return StreamingResponse(
        (chunk.data for chunk in stream),
        media_type="application/xml",
        headers={"Content-Length": str(meta.package_size), "ETag": f'"{meta.package_sha256}"'},
    )


def routed_state(ctx: GatewayContext, document_id: str) -> routing_pb2.DocumentState:
    """Routing's state of the document; 409 while it is still being verified."""
    try:
        return ctx.clients.routing.GetDocumentState(
            routing_pb2.GetDocumentStateRequest(document_id=document_id), timeout=ctx.deadline
        )
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            raise Problem(
                409, f"document {document_id} is not delivered yet", kind="not-delivered"
            ) from error
        raise


def mark_arrived(
    ctx: GatewayContext,
    caller: Caller,
    document_id: str,
    state: routing_pb2.DocumentState | None = None,
) -> None:
    """Record 01 (arrived) for the caller's delivery if it is still only delivered."""
    state = state or routed_state(ctx, document_id)
    mine = [d for d in state.deliveries if d.recipient_code == caller.code]
    if not mine:
        raise Problem(409, f"document {document_id} is not delivered to {caller.code}", kind="not-delivered")
    if mine[0].state == "delivered":
        ctx.clients.routing.PostStatus(
            routing_pb2.PostStatusRequest(
                document_id=document_id,
                actor_code=caller.code,
                code="01",
                description="fetched through the gateway",
            ),
            timeout=ctx.deadline,
        )


@router.get(
    "/inbox",
    summary="Documents delivered to the caller, oldest first",
    description="Cursor-paged: pass the reply's next_cursor as ?cursor= until it is null.",
    response_model=InboxPage,
    responses=problem_responses(),
)
def inbox(
    request: Request,
    caller: Caller = Depends(caller_dependency),
    cursor: str = Query(default="", max_length=512, description="next_cursor of the previous page"),
    limit: int = Query(default=50, ge=1, le=500),
) -> dict[str, Any]:
    ctx = gateway(request)
    page = ctx.clients.routing.ListInbox(
        routing_pb2.InboxRequest(agency_code=caller.code, cursor=cursor, limit=limit),
        timeout=ctx.deadline,
    )
    return {
        "items": [
            {
                "id": i.document_id,
                "document_id": i.edxml_document_id,
                "sender": i.sender_code,
                "subject": i.subject,
                "state": i.state,
                "delivered_at": iso(i.delivered_at),
            }
            for i in page.items
        ],
        "next_cursor": page.next_cursor or None,
    }


RECIPIENT_CODES = frozenset({"01", "02", "03", "04", "05", "06", "15", "16"})
SENDER_CODES = frozenset({"13"})


def check_status_party(
    ctx: GatewayContext, caller: Caller, meta: docstore_pb2.DocumentMetadata, code: str
) -> None:
    """Only recipients post 01-06 (and answer a recall with 15/16); only the sender posts 13."""
    is_sender = caller.code == meta.sender_code
    if code in SENDER_CODES:
        if not is_sender:
            raise Problem(
                403,
                f"only the sender ({meta.sender_code}) posts {code} (recall); {caller.code} is a recipient",
                kind="status-not-allowed",
            )
        return
    is_recipient = caller.code in meta.recipient_codes or caller.code in delivered_to(ctx, meta.id)
    if not is_recipient:
        raise Problem(
            403,
            f"only a recipient posts {code}; {caller.code} is the sender of this document",
            kind="status-not-allowed",
        )


def delivered_to(ctx: GatewayContext, document_id: str) -> set[str]:
    try:
        state = ctx.clients.routing.GetDocumentState(
            routing_pb2.GetDocumentStateRequest(document_id=document_id), timeout=ctx.deadline
        )
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return set()
    return {d.recipient_code for d in state.deliveries}


def status_reply(document_id: str, deliveries: Any) -> dict[str, Any]:
    return {
        "id": document_id,
        "recipients": [
            {"code": d.recipient_code, "state": d.state, "last_status_code": d.last_status_code or None}
            for d in deliveries
        ],
    }


def record_status(
    ctx: GatewayContext,
    caller: Caller,
    document_id: str,
    code: str,
    description: str,
    idempotency_key: str,
) -> dict[str, Any]:
    """Post a business status once per Idempotency-Key (see idempotency.py for the design)."""
    request_print = fingerprint(document_id, code, description)
    if idempotency_key:
        seen = ctx.idempotency.get("status", caller.code, idempotency_key)
        if seen is not None:
            if seen.request != request_print:
                raise Problem(
                    422,
                    f"Idempotency-Key {idempotency_key!r} was already used by {caller.code} for another "
                    "status request; use a new key",
                    kind="idempotency-key-reused",
                )
            return seen.reply
    meta = document_parties(ctx, caller, document_id)
    check_status_party(ctx, caller, meta, code)
    try:
        reply = ctx.clients.routing.PostStatus(
            routing_pb2.PostStatusRequest(
                document_id=document_id, actor_code=caller.code, code=code, description=description
            ),
            timeout=ctx.deadline,
        )
        result = status_reply(document_id, reply.deliveries)
        result["status_message_ids"] = list(reply.status_message_ids)
    except grpc.RpcError as error:
        # A retry after a lost reply: routing refuses the repeated transition, but the effect is
        # there; answer as the first time did.
        if not (idempotency_key and error.code() == grpc.StatusCode.FAILED_PRECONDITION):
            raise
        state = ctx.clients.routing.GetDocumentState(
            routing_pb2.GetDocumentStateRequest(document_id=document_id), timeout=ctx.deadline
        )
        already = any(
            (d.recipient_code == caller.code or caller.code == meta.sender_code)
            and d.last_status_code == code
            for d in state.deliveries
        )
        if not already:
            raise
        result = status_reply(document_id, state.deliveries)
    if idempotency_key:
        ctx.idempotency.put(
            "status",
            caller.code,
            idempotency_key,
            Remembered(request=request_print, status=200, reply=result),
        )
    ctx.metrics.statuses_posted.labels(code=code).inc()
    return result


@router.post(
    "/documents/{document_id}/status",
    summary="Post a business status",
    description="A recipient posts 01-06 (arrived … done) and answers a recall with 15/16; the sender "
    "posts 13 to ask for a recall. Illegal transitions are 409.",
    response_model=StatusReply,
    responses=problem_responses(404, 409),
)
def post_status(
    document_id: str,
    request: Request,
    body: StatusBody = Body(...),
    caller: Caller = Depends(caller_dependency),
    idempotency_key: str | None = Header(
        default=None, alias="Idempotency-Key", max_length=255, description=IDEMPOTENCY_KEY_DOC
    ),
) -> dict[str, Any]:
    ctx = gateway(request)
    return record_status(ctx, caller, document_id, body.code, body.description, idempotency_key or "")


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)
