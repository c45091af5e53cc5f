"""The gateway's FastAPI application: agencies' REST API over the platform's gRPC services."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server

from lienthong_common.grpcutil import health_status
from lienthong_common.ids import new_id
from lienthong_common.mtls import client_tls
from lienthong_common.settings import Settings
from lienthong_common.telemetry import current_trace_id
from lienthong_gateway import (
    directory_api,
    documents,
    problems,
    reports_page,
    statistics_api,
    status_packages_api,
    trust_api,
    vdxp,
    vdxp_systems_api,
    webhooks_api,
)
from lienthong_gateway.auth import (
    Caller,
    CredentialVersions,
    TokenIssuer,
    client_credentials_from,
    signing_keys,
)
from lienthong_gateway.body_limits import BodyLimitMiddleware
from lienthong_gateway.clients import PlatformClients
from lienthong_gateway.context import (
    GatewayContext,
    GatewayMetrics,
    caller_dependency,
    gateway,
    throttle,
    verify_client_secret,
)
from lienthong_gateway.idempotency import IdempotencyStore
from lienthong_gateway.mtls import client_certificate_fingerprint
from lienthong_gateway.problems import PROBLEM_JSON, Problem, problem_response
from lienthong_gateway.ratelimit import RateLimiter
from lienthong_gateway.schemas import (
    HealthReply,
    ProblemModel,
    ReadinessReply,
    TokenReply,
    problem_responses,
)
from lienthong_gateway.signin_guard import SignInGuard, SignInPolicy, source_address

OPENAPI_TAGS = [
    {"name": "auth", "description": "OAuth2 client credentials (client id = agency code); optional mTLS."},
    {
        "name": "documents",
        "description": "Submit edXML packages, read them and their state, the inbox, business statuses. "
        "Only the sender and the recipients see a document; to anyone else it does not exist (404).",
    },
    {"name": "directory", "description": "Agencies, as of any date; writes for administrators."},
    {"name": "statistics", "description": "The electronic-exchange report."},
    {"name": "trust", "description": "The trust store of signature verification (administrators)."},
    {
        "name": "vdxp",
        "description": "The VDXP-compatible facade: existing document-management software switches "
        "to this platform without code changes (docs/vdxp.md).",
    },
    {"name": "operations", "description": "Liveness, readiness and metrics."},
]

PEERS = ("directory", "docstore", "sigverify", "routing", "statistics")


TOKEN_FORM_SCHEMA = {
    "type": "object",
    "required": ["client_id", "client_secret"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["client_credentials"]},
        "client_id": {"type": "string", "description": "the agency code"},
        "client_secret": {"type": "string"},
    },
}
TOKEN_EXAMPLE = {
    "grant_type": "client_credentials",
    "client_id": "000.00.00.H49",
    "client_secret": "s3cr3t-from-the-directory",
}

TOKEN_BODY = {"schema": TOKEN_FORM_SCHEMA, "example": TOKEN_EXAMPLE}
METRICS_EXAMPLE = 'lienthong_gateway_requests_total{route="/v1/inbox",method="GET",status="200"} 12.0\n'


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/v1/oauth/token",
        tags=["auth"],
        summary="OAuth2 client credentials grant",
        description="Exchange the agency's client id (its code) and secret for a short-lived bearer "
        "token (HS256 JWT with a `kid`). The credentials may also come as HTTP Basic. A token stops "
        "working at once when its credential is revoked or rotated. With mTLS, the presented client "
        "certificate must be bound to the credential. Failed attempts are throttled per (client id, "
        "source address) and per source address (429 with Retry-After); the body is at most 64 KiB.",
        response_model=TokenReply,
        responses=problem_responses(400, 401, 413, 429),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": TOKEN_FORM_SCHEMA,
                        "example": TOKEN_EXAMPLE,
                    },
                    "application/json": {"schema": TOKEN_FORM_SCHEMA, "example": TOKEN_EXAMPLE},
                },
            }
        },
    )
    async def token(request: Request) -> dict[str, Any]:
        form: dict[str, str] = {}
        content_type = request.headers.get("content-type", "")
        try:
            if "json" in content_type:
                data = await request.json()
                form = {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
            elif content_type:
                raw = await request.form()
                form = {k: str(v) for k, v in raw.items()}
        except (ValueError, UnicodeDecodeError) as error:
            raise Problem(
                400, f"request body is not a valid form or JSON object: {error}", kind="invalid-request"
            ) from error
        grant = form.get("grant_type", "client_credentials")
        if grant != "client_credentials":
            raise Problem(
                400,
                f"grant_type {grant!r} is not supported; use client_credentials",
                kind="unsupported-grant-type",
            )
        client_id, secret = client_credentials_from(request, form)
        ctx = gateway(request)
        # Requests per source address (never per client id as typed: someone else's guessing
        # must not spend the owner's allowance); wrong secrets are counted by ctx.signin.
        throttle(ctx, f"token requests from {source_address(request)}")
        reply = await verify_client_secret(
            ctx, request, client_id, secret, fingerprint=client_certificate_fingerprint(request) or ""
        )
        if not reply.valid:
            raise Problem(401, f"client credentials for {client_id} are not valid", kind="invalid-client")
        subject = reply.agency_code or client_id
        access, ttl = ctx.issuer.issue(subject=subject, roles=list(reply.roles), version=reply.version)
        if subject == client_id:  # the directory just confirmed this version
            ctx.credentials.remember(subject, reply.version)
        return {"access_token": access, "token_type": "Bearer", "expires_in": ttl}

    @router.get(
        "/healthz", tags=["operations"], summary="Liveness: the process answers", response_model=HealthReply
    )
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: every platform service is SERVING",
        response_model=ReadinessReply,
        responses={503: {"model": ReadinessReply, "description": "a platform service is not serving"}},
    )
    def readyz(request: Request) -> JSONResponse:
        ctx = gateway(request)
        peers = {
            name: health_status(
                getattr(ctx.settings.services, name), tls=ctx.clients.tls, peer=name, timeout=1.0
            )
            for name in PEERS
        }
        ready = all(v == "SERVING" for v in peers.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "services": peers},
            status_code=200 if ready else 503,
        )

    if settings.metrics.port:
        return router  # /metrics is served on the metrics port only (serve_gateway_metrics)

    @router.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics (administrators; set LIENTHONG_METRICS__PORT to scrape)",
        description="Per-sender counters are not for everyone: without a metrics port of its own "
        "(`LIENTHONG_METRICS__PORT`, where Prometheus scrapes without credentials) the gateway "
        "answers /metrics only to an administrator's bearer token.",
        response_class=Response,
        responses={
            200: {
                "content": {
                    CONTENT_TYPE_LATEST: {
                        "schema": {"type": "string"},
                        "example": METRICS_EXAMPLE,
                    }
                }
            }
        },
    )
    def metrics(request: Request, caller: Caller = Depends(caller_dependency)) -> Response:
        if not caller.is_admin:
            raise Problem(403, "metrics are for administrators (or the metrics port)", kind="admin-only")
        return Response(generate_latest(gateway(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def install_problem_schema(app: FastAPI) -> None:
    """Every error reply is problem+json: say so in the OpenAPI document for every operation,
    including FastAPI's automatic 422 (which it would otherwise document as application/json)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ProblemModel", ProblemModel.model_json_schema())
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemModel"}}}
        for path, operations in schema.get("paths", {}).items():
            if path.startswith("/vdxp/"):
                continue  # the facade answers in its own JSON envelope (docs/vdxp.md)
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status, response in responses.items():
                    if status.startswith(("4", "5")):
                        content = response.setdefault("content", {})
                        content.pop("application/json", None)
                        content.setdefault(PROBLEM_JSON, problem[PROBLEM_JSON])
                # What any authenticated operation can answer: no or bad credentials, a client
                # certificate not bound (403), rate limits, platform services away; and 404 for
                # whatever a path parameter names.
                statuses = ["400", "401", "403", "422", "429", "502", "503", "504"]
                statuses += ["404"] if "{" in path else []
                for status in statuses:
                    responses.setdefault(status, {"description": "problem", "content": dict(problem)})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def serve_gateway_metrics(settings: Settings, metrics: GatewayMetrics) -> WSGIServer | None:
    """The gateway's metrics on `metrics.host:metrics.port` (Prometheus scrapes there, a port
    the gateway's Service does not expose); None when the port is 0 (then /metrics on the API
    port, administrators only)."""
    if not settings.metrics.port:
        return None
    server, _thread = start_http_server(
        settings.metrics.port, addr=settings.metrics.host, registry=metrics.registry
    )
    return server


def create_app(settings: Settings, clients: PlatformClients | None = None) -> FastAPI:
    """The application; the lifespan owns the gRPC clients (nothing created at import)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = clients is None
        platform = clients or PlatformClients.connect(
            settings.services,
            tls=client_tls(settings, "gateway"),
            connections=settings.grpc.client_connections,
        )
        app.state.gateway = GatewayContext(
            settings=settings,
            clients=platform,
            issuer=TokenIssuer(
                keys=signing_keys(settings.gateway),
                ttl_seconds=settings.gateway.token_ttl_seconds,
                deadline=settings.grpc.deadline_seconds,
            ),
            metrics=GatewayMetrics.create(),
            limiter=RateLimiter(
                rate=settings.gateway.rate_limit_per_second, burst=settings.gateway.rate_limit_burst
            ),
            idempotency=IdempotencyStore(ttl=settings.gateway.idempotency_ttl_seconds),
            credentials=CredentialVersions(settings.gateway.credential_cache_seconds),
            signin=SignInGuard(SignInPolicy.from_settings(settings.gateway)),
        )
        statistics_api.register_metrics(app.state.gateway)  # live exchange metrics, asked on scrape
        scrape_server = serve_gateway_metrics(settings, app.state.gateway.metrics)
        yield
        if scrape_server is not None:
            scrape_server.shutdown()
            scrape_server.server_close()
        app.state.gateway.signin.close()
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
        openapi_tags=OPENAPI_TAGS,
    )
    problems.install(app)

    @app.middleware("http")
    async def refuse_nul(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # No identifier, code or text of this platform contains NUL, and PostgreSQL text cannot
        # store it: refuse it at the edge instead of letting it reach a service's database.
        raw_path = request.scope.get("raw_path") or b""
        query = request.scope.get("query_string") or b""
        suspicious = b"%00" in raw_path.lower() or b"%00" in query.lower() or b"\x00" in query
        json_body = "json" in request.headers.get("content-type", "")
        if not suspicious and json_body and not request.url.path.startswith("/vdxp/"):
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) <= 1024 * 1024:
                body = await request.body()
                suspicious = b"\\u0000" in body or b"\x00" in body
        if suspicious:
            return problem_response(
                request,
                400,
                "the request contains a NUL character, which no field accepts",
                "invalid-request",
            )
        return await call_next(request)

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

    # Outermost of the application's own middleware: no body is read past its endpoint's limit.
    app.add_middleware(BodyLimitMiddleware, settings=settings)

    install_problem_schema(app)
    app.include_router(build_router(settings))
    # One router per area; each module owns its endpoints.
    areas = (documents, directory_api, statistics_api, reports_page, trust_api, vdxp, webhooks_api)
    for area in (*areas, status_packages_api, vdxp_systems_api):
        app.include_router(area.router)
    return app


__all__ = ["create_app", "grpc"]
