"""Routing's agency and operator surface: webhooks (push), status packages, evidence, deadlines.

- `PUT|GET|DELETE /v1/webhook` — the caller's push endpoint; `PUT` without a secret generates
  one and returns it once. Routing refuses a URL whose host is, or resolves to, a loopback,
  private, link-local, multicast or metadata address (422 `webhook-url-refused`), unless the
  operator allowed that network; payloads carry references (the content's URL), never documents.
- Pushes are listed with each attempt's HTTP status and a fixed reason (`HTTP 500`, `timed
  out`, `refused: …`): what a receiver answered is never kept or shown.
- `GET /v1/webhook/deliveries?state=` and `POST /v1/webhook/redrive` — the caller's pushed,
  pending and dead-lettered payloads (with every attempt), and re-driving its dead letters.
- `GET /v1/admin/webhooks/deliveries`, `POST /v1/admin/webhooks/redrive` — the same for operators,
  across agencies.
- `GET /v1/documents/{id}/statuses` and `/statuses/{n}` — the document's statuses as edXML
  Status packages (parties of the document only).
- `GET /v1/documents/{id}/evidence` — the document's entries of the hash-chained evidence log
  (parties only); `GET /v1/admin/evidence/verify` checks the whole chain (operators).
- `GET /v1/deadlines/overdue` — deliveries not acknowledged the working day they arrived: to the
  caller (`?as=recipient`, default) or from it (`?as=sender`); operators see all.
  `GET /v1/admin/deadlines/count` — the overdue count per recipient (the metric's source).
"""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import Any, Literal

import grpc
from fastapi import APIRouter, Body, Depends, Query, Request, Response
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, Field

from lienthong.routing.v1 import routing_pb2
from lienthong_gateway.auth import Caller
from lienthong_gateway.context import GatewayContext, caller_dependency, gateway
from lienthong_gateway.documents import document_parties
from lienthong_gateway.problems import Problem

router = APIRouter(tags=["routing"])


def iso(ts: Timestamp) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime(tzinfo=UTC).isoformat()


def require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise Problem(403, "only operators (administrators) may do this", kind="admin-only")


def webhook_view(hook: routing_pb2.Webhook) -> dict[str, Any]:
    view: dict[str, Any] = {
        "agency": hook.agency_code,
        "url": hook.url,
        "secret_hint": f"…{hook.secret_hint}",
        "updated_at": iso(hook.updated_at),
        "pending": hook.pending,
        "pushed": hook.pushed,
        "dead_lettered": hook.dead_lettered,
        "signature": "X-Lienthong-Signature: sha256=HMAC-SHA256(secret, X-Lienthong-Timestamp + '.' + body)",
    }
    if hook.secret:
        view["secret"] = hook.secret
    return view


def push_view(item: routing_pb2.WebhookDelivery) -> dict[str, Any]:
    return {
        "id": item.id,
        "agency": item.agency_code,
        "document": item.document_id,
        "kind": item.kind,
        "state": item.state,
        "attempts": item.attempts,
        "last_error": item.last_error or None,
        "next_attempt_at": iso(item.next_attempt_at) if item.state == "pending" else None,
        "created_at": iso(item.created_at),
        "pushed_at": iso(item.pushed_at),
        "history": [
            {
                "attempt": a.number,
                "at": iso(a.at),
                "http_status": a.http_status or None,
                "error": a.error or None,
                "duration_ms": a.duration_ms,
            }
            for a in item.history
        ],
    }


async def call(ctx: GatewayContext, method: Any, request: Any) -> Any:
    return await asyncio.to_thread(method, request, timeout=ctx.deadline)


# -- webhooks ------------------------------------------------------------------------------------
class WebhookBody(BaseModel):
    url: str = Field(
        examples=["https://vanthu.quangninh.gov.vn/lienthong/webhook"],
        max_length=2000,
        description="absolute http(s) URL on a public address (or a network the operator allowed)",
    )
    secret: str = Field(default="", description="at least 16 characters; empty: the platform generates one")


@router.put("/v1/webhook", summary="Register or change the caller's webhook")
async def set_webhook(
    request: Request, body: WebhookBody = Body(...), caller: Caller = Depends(caller_dependency)
) -> dict[str, Any]:
    ctx = gateway(request)
    try:
        hook = await call(
            ctx,
            ctx.clients.routing.SetWebhook,
            routing_pb2.SetWebhookRequest(agency_code=caller.code, url=body.url, secret=body.secret),
        )
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT and (error.details() or "").startswith(
            "webhook url"
        ):
            raise Problem(422, error.details() or "webhook url refused", kind="webhook-url-refused") from None
        raise
    return webhook_view(hook)


@router.get("/v1/webhook", summary="The caller's webhook and its push counts")
async def get_webhook(request: Request, caller: Caller = Depends(caller_dependency)) -> dict[str, Any]:
    ctx = gateway(request)
    hook = await call(
        ctx, ctx.clients.routing.GetWebhook, routing_pb2.WebhookRequest(agency_code=caller.code)
    )
    return webhook_view(hook)


@router.delete("/v1/webhook", summary="Stop pushing to the caller (pull keeps working)")
async def delete_webhook(request: Request, caller: Caller = Depends(caller_dependency)) -> dict[str, Any]:
    ctx = gateway(request)
    hook = await call(
        ctx, ctx.clients.routing.DeleteWebhook, routing_pb2.WebhookRequest(agency_code=caller.code)
    )
    return {**webhook_view(hook), "enabled": False}


PushState = Literal["", "pending", "pushed", "dead_lettered"]


@router.get("/v1/webhook/deliveries", summary="Payloads pushed (or to push) to the caller")
async def my_pushes(
    request: Request,
    caller: Caller = Depends(caller_dependency),
    state: PushState = Query(default=""),
    document: str = Query(default=""),
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    ctx = gateway(request)
    reply = await call(
        ctx,
        ctx.clients.routing.ListWebhookDeliveries,
        routing_pb2.ListWebhookDeliveriesRequest(
            agency_code=caller.code, state=state, document_id=document, limit=limit
        ),
    )
    return {"deliveries": [push_view(d) for d in reply.deliveries]}


class RedriveBody(BaseModel):
    ids: list[str] = Field(default_factory=list, description="empty: every dead-lettered payload")
    agency: str = Field(default="", description="operators only: whose dead letters")


@router.post("/v1/webhook/redrive", summary="Re-drive the caller's dead-lettered payloads")
async def redrive_mine(
    request: Request,
    body: RedriveBody = Body(default=RedriveBody()),
    caller: Caller = Depends(caller_dependency),
) -> dict[str, Any]:
    ctx = gateway(request)
    reply = await call(
        ctx,
        ctx.clients.routing.RedriveWebhookDeliveries,
        routing_pb2.RedriveRequest(agency_code=caller.code, ids=body.ids),
    )
    return {"redriven": list(reply.ids)}


@router.get("/v1/admin/webhooks/deliveries", summary="Operators: webhook payloads of every agency")
async def all_pushes(
    request: Request,
    caller: Caller = Depends(caller_dependency),
    state: PushState = Query(default="dead_lettered"),
    agency: str = Query(default=""),
    document: str = Query(default=""),
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    require_admin(caller)
    ctx = gateway(request)
    reply = await call(
        ctx,
        ctx.clients.routing.ListWebhookDeliveries,
        routing_pb2.ListWebhookDeliveriesRequest(
            agency_code=agency, state=state, document_id=document, limit=limit
        ),
    )
    return {"deliveries": [push_view(d) for d in reply.deliveries]}


@router.post("/v1/admin/webhooks/redrive", summary="Operators: re-drive dead-lettered payloads")
async def redrive_any(
    request: Request, body: RedriveBody = Body(...), caller: Caller = Depends(caller_dependency)
) -> dict[str, Any]:
    require_admin(caller)
    ctx = gateway(request)
    reply = await call(
        ctx,
        ctx.clients.routing.RedriveWebhookDeliveries,
        routing_pb2.RedriveRequest(agency_code=body.agency, ids=body.ids),
    )
    return {"redriven": list(reply.ids)}


# -- status packages and evidence ----------------------------------------------------------------
@router.get("/v1/documents/{document_id}/statuses", tags=["documents"], summary="Statuses as edXML packages")
def list_statuses(
    document_id: str, request: Request, caller: Caller = Depends(caller_dependency)
) -> dict[str, Any]:
    ctx = gateway(request)
    document_parties(ctx, caller, document_id)
    reply = ctx.clients.routing.ListStatusPackages(
        routing_pb2.ListStatusPackagesRequest(document_id=document_id), timeout=ctx.deadline
    )
    return {
        "id": document_id,
        "statuses": [
            {
                "number": p.number,
                "from": p.from_code,
                "code": p.status_code,
                "description": p.description,
                "at": iso(p.at),
                "size": p.size,
                "href": f"/v1/documents/{document_id}/statuses/{p.number}",
            }
            for p in reply.packages
        ],
    }


@router.get(
    "/v1/documents/{document_id}/statuses/{number}",
    tags=["documents"],
    summary="One status as an edXML Status package",
    responses={200: {"content": {"application/xml": {}}}},
)
def get_status(
    document_id: str, number: int, request: Request, caller: Caller = Depends(caller_dependency)
) -> Response:
    ctx = gateway(request)
    document_parties(ctx, caller, document_id)
    reply = ctx.clients.routing.GetStatusPackage(
        routing_pb2.GetStatusPackageRequest(document_id=document_id, number=number), timeout=ctx.deadline
    )
    return Response(reply.package, media_type="application/xml")


@router.get("/v1/documents/{document_id}/evidence", tags=["documents"], summary="The document's evidence")
def document_evidence(
    document_id: str, request: Request, caller: Caller = Depends(caller_dependency)
) -> dict[str, Any]:
    ctx = gateway(request)
    document_parties(ctx, caller, document_id)
    reply = ctx.clients.routing.ListEvidence(
        routing_pb2.ListEvidenceRequest(document_id=document_id), timeout=ctx.deadline
    )
    return {
        "id": document_id,
        "entries": [
            {
                "sequence": e.sequence,
                "kind": e.kind,
                "recipient": e.recipient_code or None,
                "at": iso(e.at),
                "body": e.body,
                "previous_hash": e.previous_hash,
                "hash": e.hash,
            }
            for e in reply.entries
        ],
    }


@router.get("/v1/admin/evidence/verify", summary="Operators: check the whole evidence chain")
async def verify_evidence(request: Request, caller: Caller = Depends(caller_dependency)) -> dict[str, Any]:
    require_admin(caller)
    ctx = gateway(request)
    reply = await asyncio.to_thread(
        ctx.clients.routing.VerifyEvidence, routing_pb2.VerifyEvidenceRequest(), timeout=ctx.deadline * 6
    )
    return {
        "valid": reply.valid,
        "entries": reply.entries,
        "head_hash": reply.head_hash,
        "first_bad_sequence": reply.first_bad_sequence or None,
        "problem": reply.problem or None,
    }


# -- deadlines ---------------------------------------------------------------------------------
@router.get("/v1/deadlines/overdue", summary="Deliveries not acknowledged the working day they arrived")
async def overdue(
    request: Request,
    caller: Caller = Depends(caller_dependency),
    side: Literal["recipient", "sender", "all"] = Query(default="recipient", alias="as"),
    limit: int = Query(default=500, ge=1, le=5000),
) -> dict[str, Any]:
    ctx = gateway(request)
    if side == "all":
        require_admin(caller)
    query = routing_pb2.ListOverdueRequest(
        recipient_code=caller.code if side == "recipient" else "",
        sender_code=caller.code if side == "sender" else "",
        limit=limit,
    )
    reply = await call(ctx, ctx.clients.routing.ListOverdue, query)
    return {
        "overdue": [
            {
                "id": d.document_id,
                "document_id": d.edxml_document_id,
                "sender": d.sender_code,
                "recipient": d.recipient_code,
                "subject": d.subject,
                "state": d.state,
                "delivered_at": iso(d.delivered_at),
                "ack_deadline": iso(d.ack_deadline),
            }
            for d in reply.deliveries
        ]
    }


@router.get("/v1/admin/deadlines/count", summary="Operators: overdue deliveries per recipient")
async def overdue_count(request: Request, caller: Caller = Depends(caller_dependency)) -> dict[str, Any]:
    require_admin(caller)
    ctx = gateway(request)
    reply = await call(ctx, ctx.clients.routing.CountOverdue, routing_pb2.CountOverdueRequest())
    return {"total": reply.total, "by_recipient": {c.recipient_code: c.count for c in reply.by_recipient}}
