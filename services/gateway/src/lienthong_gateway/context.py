"""What the gateway's handlers share: settings, gRPC clients, token issuer and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from prometheus_client import CollectorRegistry, Counter, Histogram

from lienthong.directory.v1 import directory_pb2
from lienthong_common.settings import Settings
from lienthong_gateway.auth import Caller, CredentialVersions, TokenIssuer, authenticate
from lienthong_gateway.clients import PlatformClients
from lienthong_gateway.idempotency import IdempotencyStore
from lienthong_gateway.mtls import require_bound_certificate
from lienthong_gateway.problems import Problem
from lienthong_gateway.ratelimit import RateLimiter, retry_after_header
from lienthong_gateway.signin_guard import SignInGuard


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    documents_submitted: Counter
    statuses_posted: Counter

    @classmethod
    def create(cls) -> GatewayMetrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            requests=Counter(
                "lienthong_gateway_requests",
                "HTTP requests",
                ["route", "method", "status"],
                registry=registry,
            ),
            latency=Histogram(
                "lienthong_gateway_request_seconds",
                "HTTP request latency",
                ["route", "method"],
                registry=registry,
            ),
            documents_submitted=Counter(
                "lienthong_documents_submitted",
                "documents accepted for delivery",
                ["sender"],
                registry=registry,
            ),
            statuses_posted=Counter(
                "lienthong_statuses_posted", "business statuses posted", ["code"], registry=registry
            ),
        )


@dataclass
class GatewayContext:
    settings: Settings
    clients: PlatformClients
    issuer: TokenIssuer
    metrics: GatewayMetrics
    limiter: RateLimiter
    idempotency: IdempotencyStore
    # Credential versions the directory confirmed lately (auth.CredentialVersions; 0 s = none).
    credentials: CredentialVersions = field(default_factory=lambda: CredentialVersions(0))
    # Every secret check goes through it: failure counts, lock-outs, the scrypt pool.
    signin: SignInGuard = field(default_factory=SignInGuard)

    @property
    def deadline(self) -> float:
        return self.settings.grpc.deadline_seconds


def gateway(request: Request) -> GatewayContext:
    ctx: GatewayContext = request.app.state.gateway
    return ctx


def throttle(ctx: GatewayContext, key: str) -> None:
    """429 with Retry-After once `key` (an agency code) has spent its token bucket."""
    wait = ctx.limiter.acquire(key)
    if wait > 0:
        problem = Problem(
            429,
            f"{key} is over its rate limit of {ctx.limiter.rate:g} requests/s "
            f"(burst {ctx.limiter.burst}); retry after the Retry-After seconds",
            kind="rate-limited",
        )
        problem.headers["Retry-After"] = retry_after_header(wait)
        raise problem


def admit(ctx: GatewayContext, request: Request, caller: Caller) -> Caller:
    """Checks every authenticated request passes: certificate binding (mTLS), then rate limit."""
    require_bound_certificate(
        directory=ctx.clients.directory,
        deadline=ctx.deadline,
        request=request,
        agency_code=caller.code,
        required=ctx.settings.gateway.require_client_cert,
    )
    throttle(ctx, caller.code)
    return caller


def caller_dependency(request: Request) -> Caller:
    """FastAPI dependency: the authenticated agency (401 problem+json otherwise)."""
    ctx = gateway(request)
    return admit(ctx, request, authenticate(ctx.clients, ctx.issuer, request, ctx.credentials))


async def verify_client_secret(
    ctx: GatewayContext, request: Request, client_id: str, secret: str, *, fingerprint: str = ""
) -> directory_pb2.VerifyCredentialResponse:
    """The directory's verdict on a client secret, through the sign-in throttle (429 when locked)."""
    message = directory_pb2.VerifyCredentialRequest(
        client_id=client_id, secret=secret, client_cert_fingerprint=fingerprint
    )
    proof = b"\0".join((secret.encode("utf-8", "surrogatepass"), fingerprint.encode()))
    return await ctx.signin.check_credential(
        request,
        client_id,
        proof,
        lambda: ctx.clients.directory.VerifyCredential(message, timeout=ctx.deadline),
    )
