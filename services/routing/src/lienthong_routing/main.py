"""Entry point of `lienthong-routing`: `migrate` or `serve` (gRPC API plus the verified consumer)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc

from lienthong.routing.v1 import routing_pb2_grpc
from lienthong_common.service import ServiceRuntime, service_main
from lienthong_common.settings import RoutingSettings
from lienthong_routing.clients import GrpcRecipientDirectory, RecipientDirectory
from lienthong_routing.consumers import VerifiedDocuments
from lienthong_routing.deadlines import WorkingCalendar
from lienthong_routing.grpc_api import SERVICE_NAME, RoutingServicer
from lienthong_routing.models import OUTBOX, Base
from lienthong_routing.webhooks import WebhookDispatcher, policy_from

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def build(
    runtime: ServiceRuntime,
    *,
    directory: RecipientDirectory | None = None,
    settings: RoutingSettings | None = None,
) -> Callable[[grpc.Server], list[str]]:
    """Wire the consumer, the webhook dispatcher and the servicer; returns the server registrar."""
    own = settings or runtime.settings.routing
    resolver = directory or GrpcRecipientDirectory(
        runtime.settings.services.directory,
        tls=runtime.client_tls(),
        deadline_seconds=runtime.settings.grpc.deadline_seconds,
        connections=runtime.settings.grpc.client_connections,
    )
    calendar = WorkingCalendar.from_settings(own.deadlines)
    verified = VerifiedDocuments(directory=resolver, calendar=calendar)
    runtime.consume(verified.topics, verified.handle)
    outbound = policy_from(own.webhooks)
    if own.webhooks.enabled:
        runtime.workers.append(WebhookDispatcher(runtime.sessions, own.webhooks, policy=outbound))

    def register(server: grpc.Server) -> list[str]:
        servicer = RoutingServicer(runtime.sessions, outbound=outbound)
        routing_pb2_grpc.add_RoutingServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    return register


def main() -> None:
    service_main("routing", metadata=Base.metadata, outbox=OUTBOX, migrations=MIGRATIONS_DIR, build=build)


if __name__ == "__main__":
    main()
