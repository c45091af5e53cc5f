"""Directory endpoints: agencies as of any date; writes for administrators."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError

from lienthong.directory.v1 import directory_pb2
from lienthong_gateway.auth import Caller
from lienthong_gateway.context import caller_dependency, gateway
from lienthong_gateway.problems import Problem


def agency_view(agency: directory_pb2.Agency) -> dict[str, Any]:
    return MessageToDict(agency, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


router = APIRouter()


@router.get("/v1/agencies", tags=["directory"], summary="Agencies in the directory")
def list_agencies(
    request: Request,
    caller: Caller = Depends(caller_dependency),
    province: str = Query(default=""),
    tier: int = Query(default=0, ge=0, le=4),
    as_of: str = Query(default="", description="ISO date; the structure as it was then"),
) -> dict[str, Any]:
    ctx = gateway(request)
    reply = ctx.clients.directory.ListAgencies(
        directory_pb2.ListAgenciesRequest(province_code=province, tier=tier, as_of=as_of),
        timeout=ctx.deadline,
    )
    return {"agencies": [agency_view(a) for a in reply.agencies]}


def _admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise Problem(403, "only administrators write the directory", kind="admin-only")


def _message_view(message: Any) -> dict[str, Any]:
    view: dict[str, Any] = MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return view


@router.get("/v1/agencies/export", tags=["directory"], summary="Export the directory (admin)")
def export_agencies(
    request: Request,
    caller: Caller = Depends(caller_dependency),
    format: str = Query(default="json", pattern="^(json|csv)$"),
    as_of: str = Query(default=""),
    province: str = Query(default=""),
    history: bool = Query(default=False, description="every version with its dates (JSON)"),
) -> Response:
    _admin(caller)
    ctx = gateway(request)
    reply = ctx.clients.directory.ExportAgencies(
        directory_pb2.ExportAgenciesRequest(
            format=format, as_of=as_of, province_code=province, history=history
        ),
        timeout=ctx.deadline,
    )
    return Response(content=reply.content, media_type=reply.content_type)


@router.post(
    "/v1/agencies/import",
    tags=["directory"],
    summary="Import agencies, reorganisations and groups, all or nothing (admin)",
)
async def import_agencies(
    request: Request,
    caller: Caller = Depends(caller_dependency),
    format: str = Query(default="", pattern="^(|json|csv)$"),
    dry_run: bool = Query(default=False),
    effective_from: str = Query(default="", description="default date for rows without one"),
) -> dict[str, Any]:
    _admin(caller)
    ctx = gateway(request)
    content = await request.body()
    fmt = format or ("csv" if "csv" in request.headers.get("content-type", "") else "json")
    reply = ctx.clients.directory.ImportAgencies(
        directory_pb2.ImportAgenciesRequest(
            format=fmt, content=content, dry_run=dry_run, effective_from=effective_from
        ),
        timeout=max(ctx.deadline, 120.0),
    )
    view = _message_view(reply)
    if reply.rejected:
        raise Problem(
            422,
            f"{len(reply.rejected)} row(s) rejected; nothing was imported",
            kind="import-rejected",
            rejected=view["rejected"],
        )
    return view


@router.post(
    "/v1/agencies/reorganizations",
    tags=["directory"],
    summary="Rename, re-code, merge, split or dissolve agencies from a date (admin)",
)
def reorganize(
    body: dict[str, Any], request: Request, caller: Caller = Depends(caller_dependency)
) -> dict[str, Any]:
    _admin(caller)
    ctx = gateway(request)
    try:
        message = ParseDict(body, directory_pb2.ReorganizeRequest())
    except ParseError as error:
        raise Problem(422, f"not a reorganisation: {error}", kind="invalid-request") from None
    reply = ctx.clients.directory.Reorganize(message, timeout=ctx.deadline)
    return {"changed": [agency_view(a) for a in reply.changed]}


@router.get("/v1/agencies/connections", tags=["directory"], summary="Connection status")
def connection_status(
    request: Request,
    caller: Caller = Depends(caller_dependency),
    province: str = Query(default=""),
    tier: int = Query(default=0, ge=0, le=4),
    as_of: str = Query(default=""),
    window_days: int = Query(default=0, ge=0, le=3650),
) -> dict[str, Any]:
    ctx = gateway(request)
    reply = ctx.clients.directory.GetConnectionStatus(
        directory_pb2.ConnectionStatusRequest(
            province_code=province, tier=tier, as_of=as_of, window_days=window_days
        ),
        timeout=ctx.deadline,
    )
    return _message_view(reply)


@router.get("/v1/groups", tags=["directory"], summary="Recipient groups")
def list_groups(request: Request, caller: Caller = Depends(caller_dependency)) -> dict[str, Any]:
    ctx = gateway(request)
    reply = ctx.clients.directory.ListGroups(directory_pb2.ListGroupsRequest(), timeout=ctx.deadline)
    return _message_view(reply)


@router.get("/v1/groups/{address}/members", tags=["directory"], summary="A group's members")
def group_members(
    address: str,
    request: Request,
    caller: Caller = Depends(caller_dependency),
    as_of: str = Query(default=""),
) -> dict[str, Any]:
    ctx = gateway(request)
    reply = ctx.clients.directory.ExpandGroup(
        directory_pb2.ExpandGroupRequest(address=address, as_of=as_of), timeout=ctx.deadline
    )
    return {"agencies": [agency_view(a) for a in reply.agencies]}


@router.put("/v1/groups/{code}", tags=["directory"], summary="Define a recipient group (admin)")
def define_group(
    code: str, body: dict[str, Any], request: Request, caller: Caller = Depends(caller_dependency)
) -> dict[str, Any]:
    _admin(caller)
    ctx = gateway(request)
    try:
        group = ParseDict({**body, "code": code}, directory_pb2.Group())
    except ParseError as error:
        raise Problem(422, f"not a group: {error}", kind="invalid-request") from None
    return _message_view(ctx.clients.directory.DefineGroup(group, timeout=ctx.deadline))


@router.delete("/v1/groups/{code}", tags=["directory"], summary="Delete a recipient group (admin)")
def delete_group(code: str, request: Request, caller: Caller = Depends(caller_dependency)) -> dict[str, Any]:
    _admin(caller)
    ctx = gateway(request)
    reply = ctx.clients.directory.DeleteGroup(
        directory_pb2.DeleteGroupRequest(code=code), timeout=ctx.deadline
    )
    return _message_view(reply)


def _overlap_seconds(body: dict[str, Any]) -> int | None:
    """`overlap_seconds` from a rotation's body: absent or null = the default (a day), 0 = now."""
    value = body.get("overlap_seconds")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Problem(
            422,
            "overlap_seconds must be a whole number of seconds (0: the old secret stops now)",
            kind="invalid-request",
        )
    return value


@router.post(
    "/v1/credentials/{client_id}/rotate",
    tags=["directory"],
    summary="Rotate a client secret; the old one stays valid for the overlap, or stops now with 0 (admin)",
    description="`{new_secret, overlap_seconds}`. Without `overlap_seconds` the old secret keeps "
    "working a day and tokens already issued live to their expiry. `overlap_seconds: 0` is the "
    "emergency rotation: the old secret stops now and the credential's version is bumped, so every "
    "token issued before is refused too.",
)
def rotate_credential(
    client_id: str,
    body: dict[str, Any],
    request: Request,
    caller: Caller = Depends(caller_dependency),
) -> dict[str, Any]:
    _admin(caller)
    ctx = gateway(request)
    reply = ctx.clients.directory.RotateCredential(
        directory_pb2.RotateCredentialRequest(
            client_id=client_id,
            new_secret=str(body.get("new_secret", "")),
            overlap_seconds=_overlap_seconds(body),
        ),
        timeout=ctx.deadline,
    )
    ctx.credentials.forget(client_id)  # this gateway refuses the old version's tokens at once
    ctx.signin.forget(client_id)  # the new secret is checked afresh, even if just guessed wrong
    return _message_view(reply)


@router.post(
    "/v1/credentials/{client_id}/revoke",
    tags=["directory"],
    summary="Revoke a client's credential: its secret and every token stop now (admin, or the client itself)",
    description="For a stolen secret or token. The credential is deactivated and its version bumped: "
    "the secret (and a rotation's previous one) no longer gets a token, and every token already "
    "issued is refused (at once on this gateway, within `credential_cache_seconds` on the others). "
    "Only an administrator sets a new secret afterwards. VDXP systems acting for the agency have "
    "secrets of their own (`/v1/vdxp/systems`).",
)
def revoke_credential(
    client_id: str, request: Request, caller: Caller = Depends(caller_dependency)
) -> dict[str, Any]:
    if not caller.is_admin and client_id.strip() != caller.code:
        raise Problem(
            403, "an agency may revoke only its own credential; administrators revoke any", kind="admin-only"
        )
    ctx = gateway(request)
    reply = ctx.clients.directory.SetCredential(
        directory_pb2.SetCredentialRequest(client_id=client_id.strip(), secret=""), timeout=ctx.deadline
    )
    ctx.credentials.forget(client_id.strip())  # this gateway refuses its tokens from now
    return {"client_id": client_id.strip(), "active": False, "version": reply.version}


@router.put(
    "/v1/credentials/{client_id}/client-certificate",
    tags=["directory"],
    summary="Bind the mTLS client certificate of a client (admin)",
)
def bind_client_certificate(
    client_id: str,
    body: dict[str, Any],
    request: Request,
    caller: Caller = Depends(caller_dependency),
) -> dict[str, Any]:
    _admin(caller)
    ctx = gateway(request)
    reply = ctx.clients.directory.BindClientCertificate(
        directory_pb2.BindClientCertificateRequest(
            client_id=client_id,
            fingerprint=str(body.get("fingerprint", "")),
            required=bool(body.get("required", False)),
        ),
        timeout=ctx.deadline,
    )
    return _message_view(reply)


@router.get("/v1/agencies/{code}/history", tags=["directory"], summary="Every version of an agency")
def agency_history(
    code: str, request: Request, caller: Caller = Depends(caller_dependency)
) -> dict[str, Any]:
    ctx = gateway(request)
    reply = ctx.clients.directory.GetAgencyHistory(
        directory_pb2.GetAgencyRequest(code=code), timeout=ctx.deadline
    )
    return {"versions": [agency_view(a) for a in reply.versions]}


@router.get("/v1/agencies/{code}", tags=["directory"], summary="One agency")
def get_agency(
    code: str,
    request: Request,
    caller: Caller = Depends(caller_dependency),
    as_of: str = Query(default=""),
) -> dict[str, Any]:
    ctx = gateway(request)
    agency = ctx.clients.directory.GetAgency(
        directory_pb2.GetAgencyRequest(code=code, as_of=as_of), timeout=ctx.deadline
    )
    return agency_view(agency)


@router.put("/v1/agencies/{code}", tags=["directory"], summary="Create or change an agency (admin)")
def put_agency(
    code: str,
    body: dict[str, Any],
    request: Request,
    caller: Caller = Depends(caller_dependency),
    effective_from: str = Query(default="", description="ISO date the change takes effect"),
) -> dict[str, Any]:
    _admin(caller)
    ctx = gateway(request)
    agency = directory_pb2.Agency(code=code)
    for field, value in body.items():
        if field == "code":
            continue
        if field not in directory_pb2.Agency.DESCRIPTOR.fields_by_name:
            raise Problem(422, f"unknown agency field {field!r}", kind="invalid-request")
        setattr(agency, field, value)
    saved = ctx.clients.directory.UpsertAgency(
        directory_pb2.UpsertAgencyRequest(agency=agency, effective_from=effective_from),
        timeout=ctx.deadline,
    )
    return agency_view(saved)
