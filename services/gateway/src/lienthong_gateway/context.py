"""What the gateway's handlers share: settings, gRPC clients, token issuer and metrics."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from prometheus_client import CollectorRegistry, Counter, Histogram

from lienthong_common.settings import Settings
from lienthong_gateway.auth import Caller, TokenIssuer, authenticate
from lienthong_gateway.clients import PlatformClients


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

    @property
    def deadline(self) -> float:
        return self.settings.grpc.deadline_seconds


def gateway(request: Request) -> GatewayContext:
    ctx: GatewayContext = request.app.state.gateway
    return ctx


def caller_dependency(request: Request) -> Caller:
    """FastAPI dependency: the authenticated agency (401 problem+json otherwise)."""
    ctx = gateway(request)
    return authenticate(ctx.clients, ctx.issuer, request)
