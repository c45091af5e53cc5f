"""The gateway's FastAPI application: agencies' REST API over the platform's gRPC services."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf.json_format import MessageToDict
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lienthong.directory.v1 import directory_pb2
from lienthong.statistics.v1 import statistics_pb2
from lienthong_common.grpcutil import health_status
from lienthong_common.ids import new_id
from lienthong_common.settings import Settings
from lienthong_common.telemetry import current_trace_id
from lienthong_gateway import documents, problems
from lienthong_gateway.auth import Caller, TokenIssuer, client_credentials_from
from lienthong_gateway.clients import PlatformClients
from lienthong_gateway.context import GatewayContext, GatewayMetrics, caller_dependency, gateway
from lienthong_gateway.problems import Problem

PEERS = ("directory", "docstore", "sigverify", "routing", "statistics")


def agency_view(agency: directory_pb2.Agency) -> dict[str, Any]:
    return MessageToDict(agency, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def build_router() -> APIRouter:
    router = APIRouter()

    @router.post(
        "/v1/oauth/token",
        tags=["auth"],
        summary="OAuth2 client credentials grant",
        responses={
            200: {
                "content": {
                    "application/json": {
                        "example": {"access_token": "eyJ…", "token_type": "Bearer", "expires_in": 900}
                    }
                }
            }
        },
    )
    async def token(request: Request) -> dict[str, Any]:
        form: dict[str, str] = {}
        content_type = request.headers.get("content-type", "")
        if "json" in content_type:
            data = await request.json()
            form = {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        elif content_type:
            raw = await request.form()
            form = {k: str(v) for k, v in raw.items()}
        grant = form.get("grant_type", "client_credentials")
        if grant != "client_credentials":
            raise Problem(
                400,
                f"grant_type {grant!r} is not supported; use client_credentials",
                kind="unsupported-grant-type",
            )
        client_id, secret = client_credentials_from(request, form)
        ctx = gateway(request)
        import asyncio

        reply = await asyncio.to_thread(
            ctx.clients.directory.VerifyCredential,
            directory_pb2.VerifyCredentialRequest(client_id=client_id, secret=secret),
            timeout=ctx.deadline,
        )
        if not reply.valid:
            raise Problem(401, f"client credentials for {client_id} are not valid", kind="invalid-client")
        access, ttl = ctx.issuer.issue(
            subject=reply.agency_code or client_id, roles=list(reply.roles), version=reply.version
        )
        return {"access_token": access, "token_type": "Bearer", "expires_in": ttl}

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
        data = MessageToDict(
            reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        if format == "csv":
            buffer = io.StringIO()
            fields = list(statistics_pb2.ReportRow.DESCRIPTOR.fields_by_name)
            writer = csv.DictWriter(buffer, fieldnames=fields)
            writer.writeheader()
            for row in data.get("rows", []):
                writer.writerow({f: row.get(f, "") for f in fields})
            return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8")
        return data

    @router.get("/healthz", tags=["operations"], summary="Liveness: the process answers")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", tags=["operations"], summary="Readiness: every platform service is SERVING")
    def readyz(request: Request) -> JSONResponse:
        ctx = gateway(request)
        peers = {name: health_status(getattr(ctx.settings.services, name), timeout=1.0) for name in PEERS}
        ready = all(v == "SERVING" for v in peers.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "services": peers},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    def metrics(request: Request) -> Response:
        return Response(generate_latest(gateway(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def create_app(settings: Settings, clients: PlatformClients | None = None) -> FastAPI:
    """The application; the lifespan owns the gRPC clients (nothing created at import)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = clients is None
        platform = clients or PlatformClients.connect(settings.services)
        secrets = [
            settings.gateway.jwt_secret.get_secret_value(),
            *[s.get_secret_value() for s in settings.gateway.previous_jwt_secrets],
        ]
        app.state.gateway = GatewayContext(
            settings=settings,
            clients=platform,
            issuer=TokenIssuer(
                secrets=secrets,
                ttl_seconds=settings.gateway.token_ttl_seconds,
                deadline=settings.grpc.deadline_seconds,
            ),
            metrics=GatewayMetrics.create(),
        )
        yield
        if owned:
            platform.close()

    app = FastAPI(
        title="lienthong gateway",
        version="1.0",
        description="The national e-document interconnection axis: agencies send each other "
        "signed edXML packages, follow each one until it is handled, and read the "
        "electronic-exchange report. Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
        docs_url="/docs",
    )
    problems.install(app)

    @app.middleware("http")
    async def request_ids(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request_id = request.headers.get("x-request-id") or new_id()
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        ctx: GatewayContext | None = getattr(request.app.state, "gateway", None)
        if ctx is not None:
            ctx.metrics.requests.labels(template, request.method, str(response.status_code)).inc()
            ctx.metrics.latency.labels(template, request.method).observe(time.perf_counter() - started)
        response.headers["X-Request-Id"] = request_id
        trace_id = current_trace_id()
        if trace_id:
            response.headers["X-Trace-Id"] = trace_id
        return response

    app.include_router(build_router())
    app.include_router(documents.router)
    return app


__all__ = ["create_app", "grpc"]
