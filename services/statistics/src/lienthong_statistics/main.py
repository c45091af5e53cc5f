"""Entry point of `lienthong-statistics`: `migrate` or `serve` (the Statistics API plus the consumer)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import grpc

from lienthong.statistics.v1 import statistics_pb2_grpc
from lienthong_common.service import ServiceRuntime, service_main
from lienthong_statistics.clients import AgencyDirectory, CachedAgencyDirectory, GrpcAgencyDirectory
from lienthong_statistics.consumers import CONSUMER_GROUP, ExchangeEvents
from lienthong_statistics.grpc_api import SERVICE_NAME, StatisticsServicer
from lienthong_statistics.models import OUTBOX, Base
from lienthong_statistics.rebuild import Rebuilder, kafka_replay_opener

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DIRECTORY_CACHE_SECONDS = 60.0


def build(
    runtime: ServiceRuntime, *, directory: AgencyDirectory | None = None
) -> Callable[[grpc.Server], list[str]]:
    """Wire the consumer and the servicer into the runtime; returns the server registrar."""
    agencies = directory or CachedAgencyDirectory(
        GrpcAgencyDirectory(
            runtime.settings.services.directory,
            tls=runtime.client_tls(),
            deadline_seconds=runtime.settings.grpc.deadline_seconds,
            connections=runtime.settings.grpc.client_connections,
        ),
        ttl_seconds=DIRECTORY_CACHE_SECONDS,
    )
    exchanges = ExchangeEvents()
    # A rebuild holds this lock to pause the live consumer between two transactions (never
    # inside one); re-entrant, since the rebuild then hands the consumer events itself.
    pause = threading.RLock()
    consumer = runtime.consume(exchanges.topics, exchanges.handle, group=CONSUMER_GROUP, guard=pause)
    rebuilder = Rebuilder(
        sessions=runtime.sessions, open_replay=kafka_replay_opener(runtime.settings.kafka), consumer=consumer
    )

    def register(server: grpc.Server) -> list[str]:
        statistics_pb2_grpc.add_StatisticsServicer_to_server(
            StatisticsServicer(runtime.sessions, agencies, rebuilder), server
        )
        return [SERVICE_NAME]

    return register


def main() -> None:
    service_main("statistics", metadata=Base.metadata, outbox=OUTBOX, migrations=MIGRATIONS_DIR, build=build)


if __name__ == "__main__":
    main()
