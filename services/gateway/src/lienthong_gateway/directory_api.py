"""Directory endpoints: agencies as of any date; writes for administrators."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from google.protobuf.json_format import MessageToDict

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
    code: str, body: dict[str, Any], request: Request, caller: Caller = Depends(caller_dependency)
) -> dict[str, Any]:
    if not caller.is_admin:
        raise Problem(403, "only administrators write the directory", kind="admin-only")
    ctx = gateway(request)
    agency = directory_pb2.Agency(code=code)
    for field, value in body.items():
        if field == "code":
            continue
        if field not in directory_pb2.Agency.DESCRIPTOR.fields_by_name:
            raise Problem(422, f"unknown agency field {field!r}", kind="invalid-request")
        setattr(agency, field, value)
    saved = ctx.clients.directory.UpsertAgency(
        directory_pb2.UpsertAgencyRequest(agency=agency), timeout=ctx.deadline
    )
    return agency_view(saved)
