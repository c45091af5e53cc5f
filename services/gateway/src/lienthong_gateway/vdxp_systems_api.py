"""VDXP systems (administrators only): the document-management installations that speak the
VDXP protocol (/vdxp/) for agencies, each with one secret and the agencies it acts for.

A secret appears only in the reply that creates it (adding a system, rotating its secret), with
`Cache-Control: no-store`: the directory keeps it encrypted and checks the SDK's HMACs itself
(docs/adr/0002-vdxp-system-secrets.md), so it can never be read back.
"""

from __future__ import annotations

import grpc
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from lienthong.directory.v1 import directory_pb2
from lienthong_gateway.auth import Caller
from lienthong_gateway.context import caller_dependency, gateway
from lienthong_gateway.problems import Problem
from lienthong_gateway.schemas import problem_responses

router = APIRouter()

MAX_OVERLAP_SECONDS = 90 * 86400
_SYSTEM_EXAMPLE: dict[str, JsonValue] = {
    "system_id": "vxp.saas.03",
    "agencies": ["000.00.02.H49", "000.01.03.H49"],
    "admin": False,
    "created_at": "2026-12-07T08:15:30.123456+00:00",
    "active_secrets": 2,
    "previous_valid_until": "2026-12-08T08:15:30.123456+00:00",
}


class VdxpSystemView(BaseModel):
    """A VDXP system; never its secret."""

    model_config = ConfigDict(json_schema_extra={"examples": [_SYSTEM_EXAMPLE]})

    system_id: str
    agencies: list[str]
    admin: bool
    created_at: str
    active_secrets: int = Field(description="2 while a rotation's overlap runs")
    previous_valid_until: str | None = Field(description="when the previous secret stops; null if none")


class VdxpSystemSecretView(BaseModel):
    """A system and its new secret: the only time the secret is shown."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"system": _SYSTEM_EXAMPLE, "secret": "Xq3v0tM1lq2i6o5bS5rJ8vWkzN6fP4uHc7yA9dE2gLk"}]
        }
    )

    system: VdxpSystemView
    secret: str


class VdxpSystemList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"systems": [_SYSTEM_EXAMPLE]}]})

    systems: list[VdxpSystemView]


class NewVdxpSystem(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"system_id": "vxp.saas.03", "agencies": ["000.00.02.H49", "000.01.03.H49"]}]
        },
    )

    system_id: str = Field(
        min_length=1, max_length=64, description="the SDK's systemid: letters, digits, '.', '_', '-'"
    )
    agencies: list[str] = Field(min_length=1, description="codes of the agencies it acts for")
    admin: bool = Field(default=False, description="may write the directory (registerAgency, deleteAgency)")
    secret: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="an existing installation's secret, kept exactly as configured there; "
        "default: a new one of 43 random URL-safe characters",
    )


class VdxpSystemChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"agencies": ["000.00.02.H49"], "admin": True}]}
    )

    agencies: list[str] | None = Field(default=None, min_length=1, description="replaces the set")
    admin: bool | None = None


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"overlap_seconds": 3600}]})

    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_OVERLAP_SECONDS,
        description="how long the previous secret stays valid; default 86400, 0 = it stops now",
    )
    secret: str | None = Field(default=None, min_length=1, max_length=512, description="default: generated")


def admin_caller(caller: Caller = Depends(caller_dependency)) -> Caller:
    """Administrators only (403 before the body is even read)."""
    if not caller.is_admin:
        raise Problem(403, "only administrators manage VDXP systems", kind="admin-only")
    return caller


def system_view(system: directory_pb2.VdxpSystem) -> VdxpSystemView:
    return VdxpSystemView(
        system_id=system.system_id,
        agencies=list(system.agency_codes),
        admin=system.admin,
        created_at=system.created_at,
        active_secrets=system.active_secrets,
        previous_valid_until=system.previous_valid_until or None,
    )


def secret_view(reply: directory_pb2.VdxpSystemSecret, response: Response) -> VdxpSystemSecretView:
    response.headers["Cache-Control"] = "no-store"
    return VdxpSystemSecretView(system=system_view(reply.system), secret=reply.secret)


def _find(request: Request, system_id: str) -> directory_pb2.VdxpSystem:
    ctx = gateway(request)
    reply = ctx.clients.directory.ListVdxpSystems(
        directory_pb2.ListVdxpSystemsRequest(), timeout=ctx.deadline
    )
    for system in reply.systems:
        if system.system_id == system_id:
            return system
    raise Problem(404, f"VDXP system {system_id} is not in the directory")


@router.post(
    "/v1/vdxp/systems",
    tags=["vdxp"],
    summary="Register a VDXP system (admin); the reply holds its secret, shown only once",
    status_code=201,
    response_model=VdxpSystemSecretView,
    responses=problem_responses(403, 404, 409, 422),
)
def add_system(
    body: NewVdxpSystem, request: Request, response: Response, caller: Caller = Depends(admin_caller)
) -> VdxpSystemSecretView:
    ctx = gateway(request)
    try:
        reply = ctx.clients.directory.AddVdxpSystem(
            directory_pb2.AddVdxpSystemRequest(
                system_id=body.system_id,
                agency_codes=body.agencies,
                admin=body.admin,
                secret=body.secret or "",
            ),
            timeout=ctx.deadline,
        )
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.ALREADY_EXISTS:
            raise Problem(409, error.details() or "", kind="already-exists") from None
        raise
    response.headers["Location"] = f"/v1/vdxp/systems/{reply.system.system_id}"
    return secret_view(reply, response)


@router.get(
    "/v1/vdxp/systems",
    tags=["vdxp"],
    summary="VDXP systems, optionally those acting for one agency (admin)",
    response_model=VdxpSystemList,
    responses=problem_responses(403, 422),
)
def list_systems(
    request: Request,
    caller: Caller = Depends(admin_caller),
    agency: str = Query(default="", description="only systems acting for this agency code"),
) -> VdxpSystemList:
    ctx = gateway(request)
    reply = ctx.clients.directory.ListVdxpSystems(
        directory_pb2.ListVdxpSystemsRequest(agency_code=agency), timeout=ctx.deadline
    )
    return VdxpSystemList(systems=[system_view(s) for s in reply.systems])


@router.get(
    "/v1/vdxp/systems/{system_id}",
    tags=["vdxp"],
    summary="One VDXP system (admin)",
    response_model=VdxpSystemView,
    responses=problem_responses(403, 404),
)
def get_system(system_id: str, request: Request, caller: Caller = Depends(admin_caller)) -> VdxpSystemView:
    return system_view(_find(request, system_id))


@router.patch(
    "/v1/vdxp/systems/{system_id}",
    tags=["vdxp"],
    summary="Change a VDXP system's agencies or admin right (admin); its secrets stay",
    response_model=VdxpSystemView,
    responses=problem_responses(403, 404, 422),
)
def update_system(
    system_id: str, body: VdxpSystemChange, request: Request, caller: Caller = Depends(admin_caller)
) -> VdxpSystemView:
    ctx = gateway(request)
    current = _find(request, system_id)
    reply = ctx.clients.directory.UpdateVdxpSystem(
        directory_pb2.UpdateVdxpSystemRequest(
            system_id=system_id,
            agency_codes=body.agencies if body.agencies is not None else list(current.agency_codes),
            admin=body.admin if body.admin is not None else current.admin,
        ),
        timeout=ctx.deadline,
    )
    return system_view(reply)


@router.post(
    "/v1/vdxp/systems/{system_id}/rotate",
    tags=["vdxp"],
    summary="Give a VDXP system a new secret (admin); the old one works for the overlap",
    response_model=VdxpSystemSecretView,
    responses=problem_responses(403, 404, 422),
)
def rotate_secret(
    system_id: str,
    request: Request,
    response: Response,
    body: SecretRotation | None = None,
    caller: Caller = Depends(admin_caller),
) -> VdxpSystemSecretView:
    ctx = gateway(request)
    rotation = body or SecretRotation()
    message = directory_pb2.RotateVdxpSecretRequest(system_id=system_id, new_secret=rotation.secret or "")
    if rotation.overlap_seconds is not None:
        message.overlap_seconds = rotation.overlap_seconds
    reply = ctx.clients.directory.RotateVdxpSecret(message, timeout=ctx.deadline)
    return secret_view(reply, response)


@router.delete(
    "/v1/vdxp/systems/{system_id}",
    tags=["vdxp"],
    summary="Remove a VDXP system and its secrets (admin)",
    response_model=VdxpSystemView,
    responses=problem_responses(403, 404),
)
def remove_system(system_id: str, request: Request, caller: Caller = Depends(admin_caller)) -> VdxpSystemView:
    ctx = gateway(request)
    reply = ctx.clients.directory.RemoveVdxpSystem(
        directory_pb2.VdxpSystemRequest(system_id=system_id), timeout=ctx.deadline
    )
    return system_view(reply)
