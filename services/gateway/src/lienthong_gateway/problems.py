"""RFC 9457 problem+json errors, and the mapping from gRPC statuses to HTTP."""

from __future__ import annotations

import logging
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lienthong_common.telemetry import current_trace_id

PROBLEM_JSON = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
    504: "Gateway timeout",
}

GRPC_TO_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ALREADY_EXISTS: 422,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class Problem(Exception):
    """An error the caller can act on; rendered as problem+json."""

    def __init__(self, status: int, detail: str, *, kind: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind or _TITLES.get(status, "error").lower().replace(" ", "-")
        self.extra = extra
        self.headers: dict[str, str] = {}


def problem_response(
    request: Request,
    status: int,
    detail: str,
    kind: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://lienthong.gov.vn/problems/{kind}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": str(request.url.path),
    }
    trace_id = current_trace_id()
    if trace_id:
        body["trace_id"] = trace_id
    body.update(extra or {})
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="lienthong"'}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def from_rpc_error(error: grpc.RpcError) -> Problem:
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    detail = error.details() if hasattr(error, "details") else str(error)
    status = GRPC_TO_HTTP.get(code, 502)
    if status == 502:
        # UNKNOWN/INTERNAL carry the servicer's exception text (SQL, paths): keep it in the logs.
        logging.getLogger(__name__).warning("platform service failed: %s %s", code, detail)
        return Problem(
            502, "a platform service failed; the trace id identifies it in the logs", kind="bad-gateway"
        )
    if status == 503:
        detail = f"a platform service is unavailable; try again ({detail})"
    return Problem(status, detail or code.name.lower())


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc.status, exc.detail, exc.kind, exc.extra, exc.headers)

    @app.exception_handler(grpc.RpcError)
    async def _rpc(request: Request, exc: grpc.RpcError) -> JSONResponse:
        p = from_rpc_error(exc)
        return problem_response(request, p.status, p.detail, p.kind)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(
            request,
            exc.status_code,
            str(exc.detail),
            _TITLES.get(exc.status_code, "error").lower().replace(" ", "-"),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"location": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors)
        return problem_response(request, 422, detail, "invalid-request", {"errors": errors})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        import logging

        logging.getLogger(__name__).exception("unhandled error on %s", request.url.path)
        return problem_response(request, 500, "an unexpected error occurred; it has been logged", "internal")
