"""Trust-store endpoints: the CA certificates document signatures must chain to.

Any authenticated caller may read the store (the certificates are public, and agencies'
software verifying offline needs them); only administrators change it. Each change is a new
trust-store version, reported in every reply.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from google.protobuf.json_format import MessageToDict
from pydantic import BaseModel, Field

from lienthong.sigverify.v1 import sigverify_pb2
from lienthong_gateway.auth import Caller
from lienthong_gateway.context import caller_dependency, gateway
from lienthong_gateway.problems import Problem

router = APIRouter()


class NewTrustAnchor(BaseModel):
    """One CA certificate (PEM) to trust."""

    certificate_pem: str = Field(min_length=1, description="exactly one CA certificate, PEM")
    note: str = Field(default="", max_length=1000)


def anchor_view(anchor: sigverify_pb2.TrustAnchor) -> dict[str, Any]:
    return MessageToDict(anchor, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def _admin_only(caller: Caller) -> None:
    if not caller.is_admin:
        raise Problem(403, "only administrators change the trust store", kind="admin-only")


@router.get("/v1/trust/anchors", tags=["trust"], summary="Trusted CA certificates and the store version")
def list_anchors(
    request: Request,
    caller: Caller = Depends(caller_dependency),
    include_removed: bool = Query(default=False, description="also anchors an administrator removed"),
) -> dict[str, Any]:
    ctx = gateway(request)
    reply = ctx.clients.sigverify.ListTrustAnchors(
        sigverify_pb2.ListTrustAnchorsRequest(include_removed=include_removed), timeout=ctx.deadline
    )
    return {"version": reply.version, "anchors": [anchor_view(a) for a in reply.anchors]}


@router.post(
    "/v1/trust/anchors",
    tags=["trust"],
    summary="Trust a root or intermediate CA (admin)",
    status_code=201,
    responses={200: {"description": "already trusted; nothing changed"}},
)
def add_anchor(
    body: NewTrustAnchor, request: Request, response: Response, caller: Caller = Depends(caller_dependency)
) -> dict[str, Any]:
    _admin_only(caller)
    ctx = gateway(request)
    reply = ctx.clients.sigverify.AddTrustAnchor(
        sigverify_pb2.AddTrustAnchorRequest(
            certificate_pem=body.certificate_pem, added_by=caller.code, note=body.note
        ),
        timeout=ctx.deadline,
    )
    if not reply.created:
        response.status_code = 200
    return {"version": reply.version, "created": reply.created, "anchor": anchor_view(reply.anchor)}


@router.delete("/v1/trust/anchors/{fingerprint}", tags=["trust"], summary="Stop trusting a CA (admin)")
def remove_anchor(
    fingerprint: str, request: Request, caller: Caller = Depends(caller_dependency)
) -> dict[str, Any]:
    _admin_only(caller)
    ctx = gateway(request)
    reply = ctx.clients.sigverify.RemoveTrustAnchor(
        sigverify_pb2.RemoveTrustAnchorRequest(fingerprint=fingerprint, removed_by=caller.code),
        timeout=ctx.deadline,
    )
    return {"version": reply.version, "anchor": anchor_view(reply.anchor)}
