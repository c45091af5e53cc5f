"""The gateway's FastAPI application: agencies' REST API over the platform's gRPC services."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lienthong.directory.v1 import directory_pb2
from lienthong_common.grpcutil import health_status
from lienthong_common.ids import new_id
from lienthong_common.settings import Settings
from lienthong_common.telemetry import current_trace_id
from lienthong_gateway import directory_api, documents, problems, statistics_api, trust_api, vdxp
from lienthong_gateway.auth import TokenIssuer, client_credentials_from
from lienthong_gateway.clients import PlatformClients
from lienthong_gateway.context import GatewayContext, GatewayMetrics, gateway
from lienthong_gateway.problems import Problem

PEERS = ("directory", "docstore", "sigverify", "routing", "statistics")


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
    # One router per area; each module owns its endpoints.
    for area in (documents, directory_api, statistics_api, trust_api, vdxp):
        app.include_router(area.router)
    return app


__all__ = ["create_app", "grpc"]
