"""Entry point of `lienthong-sigverify`: `serve` or `migrate`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import grpc

from lienthong_common.grpcutil import channel_pool
from lienthong_common.outbox import TOPIC_SUBMITTED
from lienthong_common.pades import accelerators
from lienthong_common.service import ServiceRuntime, service_main
from lienthong_sigverify import grpc_api
from lienthong_sigverify.clients import DirectoryBindings, DocstorePackages
from lienthong_sigverify.events import SubmittedDocuments, record_verification
from lienthong_sigverify.held import HeldDocuments, HoldPolicy
from lienthong_sigverify.models import OUTBOX, Base
from lienthong_sigverify.trust import TrustStore
from lienthong_sigverify.verification import VerificationEngine

NAME = "sigverify"
MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


def build(runtime: ServiceRuntime) -> Callable[[grpc.Server], list[str]]:
    """Create the trust store, worker pool and clients, subscribe to submitted documents."""
    settings = runtime.settings
    # sigverify alone speeds pyHanko up (version-guarded, ADR 0081); each worker does the same.
    accelerators.install()
    trust = TrustStore(sessions=runtime.sessions, settings=settings)
    trust.check_usable()
    engine = VerificationEngine.from_settings(settings, trust=trust)
    deadline = settings.grpc.deadline_seconds
    tls = runtime.client_tls()
    # Packages and the PDFs they carry wait on disk while they are verified, never in memory.
    spool = settings.data_dir / "sigverify" / "spool"
    packages = DocstorePackages(
        channel_pool(
            settings.services.docstore, settings.grpc.client_connections, tls=tls, peer="docstore"
        ),
        deadline_seconds=deadline,
        max_bytes=settings.docstore.max_package_bytes,
        spool_dir=spool,
    )
    bindings = (
        DirectoryBindings(
            channel_pool(
                settings.services.directory, settings.grpc.client_connections, tls=tls, peer="directory"
            ),
            deadline_seconds=deadline,
        )
        if settings.sigverify.require_binding
        else None
    )
    # TRY_LATER verdicts are held and re-verified, never emitted as they are (docs/adr/0075).
    hold_policy = HoldPolicy.from_settings(settings.sigverify)
    documents = SubmittedDocuments(
        fetch_package=packages,
        verifier=engine,
        binding_check=bindings,
        sessions=runtime.sessions,
        envelope_policy=settings.sigverify.envelope_signature,
        allow_rsa_sha1=settings.sigverify.allow_rsa_sha1,
        spool_dir=spool,
        max_package_bytes=settings.docstore.max_package_bytes,
        hold_policy=hold_policy,
    )
    runtime.consume([TOPIC_SUBMITTED], documents.handle, before_batch=documents.prefetch)
    runtime.workers.append(
        HeldDocuments(
            sessions=runtime.sessions,
            reverify=documents.reverify,
            emit=record_verification,
            policy=hold_policy,
            poll_seconds=settings.sigverify.held_poll_seconds,
            batch=settings.sigverify.held_batch,
        )
    )
    log.info(
        "sigverify: %d verification worker process(es), policy %s, trust store version %d, "
        "PAdES accelerators %s",
        engine.workers,
        engine.policy,
        trust.snapshot().version,
        "installed" if accelerators.installed() else "NOT installed",
    )

    def register(server: grpc.Server) -> list[str]:
        return grpc_api.register(server, sessions=runtime.sessions, trust=trust, hold_policy=hold_policy)

    return register


def main() -> None:
    service_main(NAME, metadata=Base.metadata, outbox=OUTBOX, migrations=MIGRATIONS, build=build)


if __name__ == "__main__":
    main()
