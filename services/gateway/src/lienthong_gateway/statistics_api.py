"""Statistics endpoints: the electronic-exchange report, paper reports, rebuild, live metrics.

Reading the report takes any authenticated agency (it is aggregate, and the province publishes
it); an agency reports and reads only its own paper traffic; rebuilding is for administrators.
Per-agency paper counts (and the rates computed from them) in the report are shown only to the
agency itself, to its province's reporting role (the provincial People's Committee
`000.00.00.<province>` and the agencies in `gateway.report_reviewers` of that province) and to
administrators; to anyone else those fields are null (empty in CSV).
The live exchange metrics (`lienthong_exchange_*{tier}`) are asked of the statistics service
on every scrape of the gateway's /metrics (see StatisticsCollector).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf.message import Message
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from lienthong.statistics.v1 import statistics_pb2, statistics_pb2_grpc
from lienthong_gateway.auth import Caller
from lienthong_gateway.context import GatewayContext, caller_dependency, gateway
from lienthong_gateway.problems import Problem

log = logging.getLogger(__name__)
router = APIRouter()

REBUILD_TIMEOUT_SECONDS = 900.0
SCRAPE_TIMEOUT_SECONDS = 2.0
ADMIN = "admin"
CSV_COLUMNS = (
    "level",
    "province_code",
    "tier",
    "agency_code",
    "month",
    "agencies",
    "agencies_connected",
    "connected_share",
    "documents_sent",
    "documents_received",
    "send_rate",
    "receive_rate",
    "electronic_share",
    "paper_issued",
    "paper_received",
    "electronic_issued_other",
    "documents_submitted",
    "documents_refused",
    "statuses",
)


def message_dict(message: Message) -> dict[str, Any]:
    """Fields by name, numbers as numbers, an unset optional (a rate over nothing) as None."""
    return {
        f.name: (getattr(message, f.name) if not f.has_presence or message.HasField(f.name) else None)
        for f in message.DESCRIPTOR.fields
    }


def report_dict(reply: statistics_pb2.ReportResponse) -> dict[str, Any]:
    return {
        "months": list(reply.months),
        "rows": [message_dict(r) for r in reply.rows],
        "provinces": [message_dict(r) for r in reply.provinces],
        "agencies": [message_dict(a) for a in reply.agencies],
        "agency_months": [message_dict(a) for a in reply.agency_months],
    }


def report_csv(data: dict[str, Any]) -> str:
    """One table: province totals, then (province, tier) rows, then agencies, month by month."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    levels = (
        ("province", data["provinces"]),
        ("tier", data["rows"]),
        ("agency", data["agency_months"] + data["agencies"]),
    )
    for level, rows in levels:
        for row in rows:
            writer.writerow({"level": level, **{k: ("" if v is None else v) for k, v in row.items()}})
    return buffer.getvalue()


# What an agency's own paper report reveals, directly or through a rate computed from it.
PAPER_FIELDS = (
    "paper_issued",
    "paper_received",
    "electronic_issued_other",
    "send_rate",
    "receive_rate",
    "electronic_share",
)


def level1_unit(code: str) -> str:
    """The level-1 unit (province or central body) of a QCVN 102 code: H49 of 000.00.24.H49."""
    return code.strip().rpartition(".")[2]


def sees_paper_of(caller: Caller, agency_code: str, province_code: str, reviewers: list[str]) -> bool:
    """Whether `caller` may see `agency_code`'s paper counts: the agency itself, its province's
    People's Committee or a configured reviewer of that province, or an administrator."""
    if caller.is_admin or caller.code == agency_code:
        return True
    province = province_code or level1_unit(agency_code)
    if level1_unit(caller.code) != province:
        return False
    return caller.code == f"000.00.00.{province}" or caller.code in reviewers


def hide_others_paper(data: dict[str, Any], caller: Caller, reviewers: list[str]) -> dict[str, Any]:
    """The report as `caller` may see it: other agencies' paper fields set to None."""
    for key in ("agencies", "agency_months"):
        for row in data[key]:
            province = str(row.get("province_code") or "")
            if not sees_paper_of(caller, str(row["agency_code"]), province, reviewers):
                row.update(dict.fromkeys(PAPER_FIELDS))
    return data


def fetch_report(
    ctx: GatewayContext,
    caller: Caller,
    *,
    province: str = "",
    from_month: str = "",
    to_month: str = "",
    tier: int = 0,
    agency_months: bool = False,
) -> dict[str, Any]:
    reply = ctx.clients.statistics.GetReport(
        statistics_pb2.ReportRequest(
            province_code=province,
            from_month=from_month,
            to_month=to_month,
            tier=tier,
            agency_months=agency_months,
        ),
        timeout=ctx.deadline,
    )
    return hide_others_paper(report_dict(reply), caller, ctx.settings.gateway.report_reviewers)


@router.get(
    "/v1/statistics/report",
    tags=["statistics"],
    summary="Electronic-exchange report",
    description="Per province and tier, per province, and per agency; per month and cumulative. "
    "Rates are fractions (0.26 = 26 %), null when nothing was sent or received. An agency's paper "
    "counts and the rates computed from them are null unless the caller is that agency, its "
    "province's People's Committee (or a configured reviewer of the province) or an administrator.",
    response_model=None,
)
def report(
    request: Request,
    caller: Caller = Depends(caller_dependency),
    province: str = Query(default="", description="level-1 unit, e.g. H49; empty = every province"),
    from_: str = Query(default="", alias="from", description="YYYY-MM"),
    to: str = Query(default="", description="YYYY-MM"),
    tier: int = Query(default=0, ge=0, le=4, description="1..4; 0 = every tier"),
    agency_months: bool = Query(default=False, description="also every agency's months"),
    format: str = Query(default="json", pattern="^(json|csv)$"),
) -> Response | dict[str, Any]:
    data = fetch_report(
        gateway(request),
        caller,
        province=province,
        from_month=from_,
        to_month=to,
        tier=tier,
        agency_months=agency_months or format == "csv",
    )
    if format == "csv":
        return Response(
            report_csv(data),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="lienthong-report.csv"'},
        )
    return data


def _count(body: dict[str, Any], name: str, *, required: bool) -> int:
    value = body.get(name)
    if value is None and not required:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise Problem(422, f"{name} must be a whole number of documents", kind="invalid-request")
    return value


@router.post(
    "/v1/statistics/paper",
    tags=["statistics"],
    summary="Report your paper traffic for a month",
    description="Idempotent: the same report again changes nothing (200, changed false). A "
    "different report for the same month replaces it (a correction); every revision is kept.",
    response_model=None,
    responses={
        201: {"description": "first report for the month"},
        200: {"description": "unchanged or corrected"},
    },
)
def report_paper(
    request: Request,
    caller: Caller = Depends(caller_dependency),
    body: dict[str, Any] = Body(
        ...,
        examples=[
            {"period": "2026-10", "paper_issued": 37, "paper_received": 1, "electronic_issued_other": 0}
        ],
    ),
) -> JSONResponse:
    known = {"agency_code", "period", "paper_issued", "paper_received", "electronic_issued_other", "note"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise Problem(422, f"unknown fields {unknown}; expected {sorted(known)}", kind="invalid-request")
    agency_code = str(body.get("agency_code") or caller.code)
    if agency_code != caller.code and not caller.is_admin:
        raise Problem(403, f"{caller.code} may report only its own paper traffic", kind="forbidden")
    ctx = gateway(request)
    reply = ctx.clients.statistics.ReportPaper(
        statistics_pb2.ReportPaperRequest(
            report=statistics_pb2.PaperReport(
                agency_code=agency_code,
                period=str(body.get("period") or ""),
                paper_issued=_count(body, "paper_issued", required=True),
                paper_received=_count(body, "paper_received", required=True),
                electronic_issued_other=_count(body, "electronic_issued_other", required=False),
                note=str(body.get("note") or ""),
            ),
            reported_by=ADMIN if caller.is_admin else caller.code,
        ),
        timeout=ctx.deadline,
    )
    data = {
        **message_dict(reply.current.report),
        "revision": reply.current.revision,
        "reported_by": reply.current.reported_by,
        "reported_at": reply.current.reported_at,
        "changed": reply.changed,
        "created": reply.created,
    }
    return JSONResponse(data, status_code=201 if reply.created else 200)


@router.get("/v1/statistics/paper", tags=["statistics"], summary="Your paper reports and their revisions")
def paper_history(
    request: Request,
    caller: Caller = Depends(caller_dependency),
    agency: str = Query(default="", description="default: the caller"),
    period: str = Query(default="", description="YYYY-MM; empty = every month"),
) -> dict[str, Any]:
    agency_code = agency or caller.code
    if agency_code != caller.code and not caller.is_admin:
        raise Problem(403, f"{caller.code} may read only its own paper reports", kind="forbidden")
    ctx = gateway(request)
    reply = ctx.clients.statistics.GetPaperHistory(
        statistics_pb2.PaperHistoryRequest(agency_code=agency_code, period=period), timeout=ctx.deadline
    )
    return {
        "revisions": [
            {
                **message_dict(r.report),
                "revision": r.revision,
                "reported_by": r.reported_by,
                "reported_at": r.reported_at,
            }
            for r in reply.revisions
        ]
    }


@router.post(
    "/v1/statistics/rebuild",
    tags=["statistics"],
    summary="Replay every event from the beginning into a fresh store and compare (admin)",
    response_model=None,
)
def rebuild(
    request: Request,
    caller: Caller = Depends(caller_dependency),
    apply: bool = Query(default=False, description="replace the live counts when they differ"),
) -> dict[str, Any]:
    if not caller.is_admin:
        raise Problem(403, "only administrators rebuild the statistics", kind="admin-only")
    ctx = gateway(request)
    reply = ctx.clients.statistics.Rebuild(
        statistics_pb2.RebuildRequest(apply=apply), timeout=REBUILD_TIMEOUT_SECONDS
    )
    data = message_dict(reply)
    data["differences"] = list(reply.differences)
    data["end_offsets"] = dict(reply.end_offsets)
    return data


# -- live metrics --------------------------------------------------------------------------
EXCHANGE_METRICS = (
    ("documents_submitted", "counter", "documents submitted, by the sender's tier"),
    ("documents_sent", "counter", "documents that passed verification and were routed, by the sender's tier"),
    ("documents_delivered", "counter", "deliveries, by the recipient's tier"),
    ("documents_refused", "counter", "documents refused by the platform, by the sender's tier"),
    ("acknowledgements_overdue", "gauge", "deliveries still unacknowledged after the day of delivery"),
    ("acknowledgements_late", "counter", "acknowledgements that came after the day of delivery"),
    ("acknowledgements_pending", "gauge", "deliveries not acknowledged yet"),
)
METRIC_PREFIX = "lienthong_exchange_"


class StatisticsCollector(Collector):
    """Asks the statistics service for its live totals per tier on each scrape."""

    def __init__(self, stub: statistics_pb2_grpc.StatisticsStub, timeout: float = SCRAPE_TIMEOUT_SECONDS):
        self._stub = stub
        self._timeout = timeout

    def describe(self) -> Iterable[Metric]:
        return list(self._families([]))

    def collect(self) -> Iterable[Metric]:
        try:
            reply = self._stub.GetLiveMetrics(statistics_pb2.LiveMetricsRequest(), timeout=self._timeout)
        except grpc.RpcError as error:
            log.warning("statistics live metrics unavailable: %s", error)
            yield GaugeMetricFamily(f"{METRIC_PREFIX}up", "1 when the statistics service answered", value=0)
            return
        yield GaugeMetricFamily(f"{METRIC_PREFIX}up", "1 when the statistics service answered", value=1)
        yield from self._families(list(reply.tiers))

    @staticmethod
    def _families(tiers: list[statistics_pb2.TierMetrics]) -> Iterator[Metric]:
        for name, kind, documentation in EXCHANGE_METRICS:
            family: CounterMetricFamily | GaugeMetricFamily
            if kind == "counter":
                family = CounterMetricFamily(f"{METRIC_PREFIX}{name}", documentation, labels=["tier"])
            else:
                family = GaugeMetricFamily(f"{METRIC_PREFIX}{name}", documentation, labels=["tier"])
            for t in tiers:
                family.add_metric([str(t.tier)], float(getattr(t, name)))
            yield family


def register_metrics(ctx: GatewayContext) -> None:
    """Add the live exchange metrics to the gateway's registry (called once, in the lifespan)."""
    registry: CollectorRegistry = ctx.metrics.registry
    registry.register(StatisticsCollector(ctx.clients.statistics))
