"""Entry point of `lienthong-docstore`: `migrate` or `serve`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc

from lienthong_common.service import ServiceRuntime, service_main
from lienthong_docstore.blobstore import FilesystemBlobStore
from lienthong_docstore.grpc_api import SERVICE_NAME, DocumentStoreServicer, add_to_server
from lienthong_docstore.models import OUTBOX, Base

MIGRATIONS = Path(__file__).parent / "migrations"


def build(runtime: ServiceRuntime) -> Callable[[grpc.Server], list[str]]:
    """Wire the servicer to the runtime's database and the configured blob store."""
    settings = runtime.settings
    servicer = DocumentStoreServicer(
        sessions=runtime.sessions,
        blobs=FilesystemBlobStore(
            settings.blob_dir(), cache_new_blobs=settings.docstore.cache_new_blobs
        ),
        settings=settings.docstore,
        spool_dir=settings.data_dir / "spool",
    )

    def register(server: grpc.Server) -> list[str]:
        add_to_server(servicer, server)
        return [SERVICE_NAME]

    return register


def main() -> None:
    service_main("docstore", metadata=Base.metadata, outbox=OUTBOX, migrations=MIGRATIONS, build=build)


if __name__ == "__main__":
    main()
