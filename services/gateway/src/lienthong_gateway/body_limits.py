"""A body limit for every endpoint, enforced on the byte stream before any handler reads it.

The rule: no request body is read past what its endpoint can use. A declared Content-Length
over the limit is refused (413) before the first byte is read; a body streamed without one is
counted as it arrives and refused the moment it goes over. Uploads of documents keep the
package limit (`gateway.max_request_bytes`); credentials and JSON get small limits. /vdxp/
refusals are VDXP FAIL bodies (downloadEdoc: empty), everything else problem+json.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lienthong_common.package_limits import max_attachment_bytes
from lienthong_common.settings import Settings
from lienthong_gateway import vdxp
from lienthong_gateway.problems import problem_response
from lienthong_gateway.uploads import package_limit_detail

KIB = 1024
MIB = 1024 * KIB
TOKEN_BYTES = 64 * KIB  # POST /v1/oauth/token, POST /reports/login: an id and a secret
JSON_BYTES = 256 * KIB  # every other /v1 body: a status, a webhook, a paper report, an agency
BULK_JSON_BYTES = 1 * MIB  # a recipient group's members, a reorganisation's agencies
IMPORT_BYTES = 8 * MIB  # POST /v1/agencies/import: what one gRPC message to the directory carries


def is_upload(method: str, path: str) -> bool:
    """The two endpoints whose body is an edXML package."""
    if path.startswith("/vdxp/"):
        return path.strip("/").rsplit("/", 1)[-1] == "sendEdoc"
    return method == "POST" and path == "/v1/documents"


def body_limit(method: str, path: str, settings: Settings) -> int:
    """The most bytes of body `method path` may send."""
    if is_upload(method, path):
        # sendEdoc's body is the package plus the CRLF the SDK appends.
        return settings.gateway.max_request_bytes + (2 if path.startswith("/vdxp/") else 0)
    if path.startswith("/vdxp/"):
        return vdxp.SMALL_BODY
    if path == "/v1/oauth/token" or path.startswith("/reports"):
        return TOKEN_BYTES
    if path == "/v1/agencies/import":
        return IMPORT_BYTES
    if path == "/v1/agencies/reorganizations" or path.startswith("/v1/groups/"):
        return BULK_JSON_BYTES
    return JSON_BYTES


class BodyTooLarge(Exception):
    """Raised into the application when the body it is reading goes over its limit."""


def only_body_too_large(error: BaseException) -> bool:
    """Whether `error` is BodyTooLarge, or a group of nothing else."""
    if isinstance(error, BaseExceptionGroup):
        _, rest = error.split(BodyTooLarge)
        return rest is None
    return isinstance(error, BodyTooLarge)


class BodyLimitMiddleware:
    """Refuse (413) bodies over their endpoint's limit: on Content-Length at once, else on the stream."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["method"], scope["path"], self.settings)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > limit:
            await self.refuse(scope, send, limit, int(declared))
            return

        received = 0
        started = refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit and not refused:
                    refused = True
                    if not started:
                        await self.refuse(scope, send, limit, None)
                    raise BodyTooLarge(limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused and not started:
                return  # the 413 already answered; whatever the application makes of the error is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception as error:
            # BaseHTTPMiddleware's task groups may wrap it: swallow only our own refusal.
            if not (refused and only_body_too_large(error)):
                raise

    async def refuse(self, scope: Scope, send: Send, limit: int, declared: int | None) -> None:
        """The 413: problem+json (`package-too-large` for uploads, in the words the upload
        handlers use), or VDXP's FAIL body."""
        path, method = scope["path"], scope["method"]
        headers = {"Connection": "close"}  # the rest of the body is never read
        extra: dict[str, int] = {}
        if is_upload(method, path):
            # In the terms an agency can act on: the largest attachment that fits (uploads.py).
            kind = "package-too-large"
            package_limit = self.settings.gateway.max_request_bytes
            if declared is not None and path.startswith("/vdxp/"):
                declared -= 2  # the CRLF the SDK appends is not part of the package
            detail = package_limit_detail(package_limit, declared)
            extra = {
                "max_package_bytes": package_limit,
                "max_attachment_bytes": max_attachment_bytes(package_limit),
            }
        else:
            kind = "body-too-large"
            size = f"the body is {declared} bytes" if declared is not None else "the body is larger"
            detail = f"{size}; {method} {path} accepts at most {limit} bytes"
        if path.startswith("/vdxp/"):
            operation = path.strip("/").rsplit("/", 1)[-1]
            response = vdxp.failure(operation, 413, detail, headers=headers)
        else:
            response = problem_response(Request(scope), 413, detail, kind, extra, headers=headers)

        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, no_body, send)
