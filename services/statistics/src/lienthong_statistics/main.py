"""Entry point of `lienthong-statistics`: `migrate` or `serve` (the Statistics API plus the consumer)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc

from lienthong.statistics.v1 import statistics_pb2_grpc
from lienthong_common.service import ServiceRuntime, service_main
from lienthong_statistics import events
from lienthong_statistics.directory import AgencyDirectory, CachedAgencyDirectory, GrpcAgencyDirectory
from lienthong_statistics.grpc_api import SERVICE_NAME, StatisticsServicer
from lienthong_statistics.models import OUTBOX, Base
from lienthong_statistics.rebuild import GatedConsumer, Rebuilder, kafka_replay_opener

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DIRECTORY_CACHE_SECONDS = 60.0


def build(
    runtime: ServiceRuntime, *, directory: AgencyDirectory | None = None
) -> Callable[[grpc.Server], list[str]]:
    """Wire the consumer and the servicer into the runtime; returns the server registrar."""
    agencies = directory or CachedAgencyDirectory(
        GrpcAgencyDirectory(
            runtime.settings.services.directory,
            deadline_seconds=runtime.settings.grpc.deadline_seconds,
            connections=runtime.settings.grpc.client_connections,
        ),
        ttl_seconds=DIRECTORY_CACHE_SECONDS,
    )
    # The runtime starts and stops it like any consumer; a rebuild can pause it between events.
    consumer = GatedConsumer(
        service=runtime.name,
        group=events.CONSUMER_GROUP,
        topics=events.TOPICS,
        settings=runtime.settings.kafka,
        sessions=runtime.sessions,
        outbox=runtime.outbox,
        handler=events.handle_event,
    )
    runtime.consumers.append(consumer)
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
