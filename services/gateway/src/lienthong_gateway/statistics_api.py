"""Statistics endpoints: the electronic-exchange report."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from google.protobuf.json_format import MessageToDict

from lienthong.statistics.v1 import statistics_pb2
from lienthong_gateway.auth import Caller
from lienthong_gateway.context import caller_dependency, gateway

router = APIRouter()


@router.get(
    "/v1/statistics/report",
    tags=["statistics"],
    summary="Electronic-exchange report",
    response_model=None,
)
def report(
    request: Request,
    caller: Caller = Depends(caller_dependency),
    province: str = Query(default=""),
    from_: str = Query(default="", alias="from", description="YYYY-MM"),
    to: str = Query(default="", description="YYYY-MM"),
    format: str = Query(default="json", pattern="^(json|csv)$"),
) -> Response | dict[str, Any]:
    ctx = gateway(request)
    reply = ctx.clients.statistics.GetReport(
        statistics_pb2.ReportRequest(province_code=province, from_month=from_, to_month=to),
        timeout=ctx.deadline,
    )
    data = MessageToDict(reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    if format == "csv":
        buffer = io.StringIO()
        fields = list(statistics_pb2.ReportRow.DESCRIPTOR.fields_by_name)
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        for row in data.get("rows", []):
            writer.writerow({f: row.get(f, "") for f in fields})
        return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8")
    return data
