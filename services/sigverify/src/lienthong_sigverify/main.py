"""Entry point of `lienthong-sigverify`: `serve` or `migrate`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc

from lienthong_common.grpcutil import channel
from lienthong_common.outbox import TOPIC_SUBMITTED
from lienthong_common.pades import PdfVerifier
from lienthong_common.service import ServiceRuntime, service_main
from lienthong_sigverify import grpc_api
from lienthong_sigverify.clients import DirectoryBindings, DocstorePackages
from lienthong_sigverify.events import on_document_submitted
from lienthong_sigverify.models import OUTBOX, Base
from lienthong_sigverify.trust import load_trust_roots

NAME = "sigverify"
MIGRATIONS = Path(__file__).parent / "migrations"


def build(runtime: ServiceRuntime) -> Callable[[grpc.Server], list[str]]:
    """Create the verifier and clients, subscribe to submitted documents; return the registrar."""
    settings = runtime.settings
    verifier = PdfVerifier(load_trust_roots(settings), revocation=settings.sigverify.revocation)
    deadline = settings.grpc.deadline_seconds
    packages = DocstorePackages(
        channel(settings.services.docstore),
        deadline_seconds=deadline,
        max_bytes=settings.docstore.max_package_bytes,
    )
    bindings = (
        DirectoryBindings(channel(settings.services.directory), deadline_seconds=deadline)
        if settings.sigverify.require_binding
        else None
    )
    runtime.consume(
        [TOPIC_SUBMITTED],
        on_document_submitted(fetch_package=packages, verifier=verifier, binding_check=bindings),
    )

    def register(server: grpc.Server) -> list[str]:
        return grpc_api.register(server, sessions=runtime.sessions)

    return register


def main() -> None:
    service_main(NAME, metadata=Base.metadata, outbox=OUTBOX, migrations=MIGRATIONS, build=build)


if __name__ == "__main__":
    main()
