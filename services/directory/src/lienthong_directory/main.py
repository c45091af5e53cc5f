"""Entry point of `lienthong-directory`: `migrate` or `serve`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc

from lienthong.directory.v1 import directory_pb2_grpc
from lienthong_common.outbox import TOPIC_DELIVERIES
from lienthong_common.service import ServiceRuntime, service_main
from lienthong_directory.events import handle_delivery_event
from lienthong_directory.grpc_api import SERVICE_NAME, DirectoryServicer
from lienthong_directory.models import OUTBOX, Base

MIGRATIONS = Path(__file__).parent / "migrations"


def build(runtime: ServiceRuntime) -> Callable[[grpc.Server], list[str]]:
    """Register the DirectoryService; consume delivery events for connection status."""
    servicer = DirectoryServicer(
        sessions=runtime.sessions,
        connection_window_days=runtime.settings.directory.connection_window_days,
    )
    runtime.consume([TOPIC_DELIVERIES], handle_delivery_event)

    def register(server: grpc.Server) -> list[str]:
        directory_pb2_grpc.add_DirectoryServiceServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    return register


def main() -> None:
    service_main(
        "directory", metadata=Base.metadata, outbox=OUTBOX, migrations=MIGRATIONS, build=build
    )


if __name__ == "__main__":
    main()
