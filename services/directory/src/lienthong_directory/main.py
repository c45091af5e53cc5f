"""Entry point of `lienthong-directory`: `migrate`, `serve`, `dead-letters` or `vdxp-rewrap`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
from sqlalchemy.exc import DBAPIError

from lienthong.directory.v1 import directory_pb2_grpc
from lienthong_common.db import make_engine, make_session_factory, transaction
from lienthong_common.service import ServiceRuntime, service_main
from lienthong_common.settings import Settings, load_settings
from lienthong_directory import vdxp_systems
from lienthong_directory.consumers import DeliveryEvents
from lienthong_directory.envelope import MasterKeyError, MasterKeyRing, load_master_keys
from lienthong_directory.grpc_api import SERVICE_NAME, DirectoryServicer
from lienthong_directory.models import OUTBOX, Base

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


def master_keys(settings: Settings) -> MasterKeyRing | None:
    """The VDXP master keys: exit with the reason when they are configured wrong; without any
    (outside development) the directory serves, its VDXP system calls refused with the reason."""
    try:
        keys = load_master_keys(settings)
    except MasterKeyError as error:
        raise SystemExit(f"lienthong-directory: {error}") from None
    if keys is None:
        log.warning("%s (environment=%s)", vdxp_systems.NO_MASTER_KEY, settings.environment)
    else:
        log.info("VDXP master keys: current %s of %d", keys.current.key_id, len(keys.ids))
    return keys


def build(runtime: ServiceRuntime) -> Callable[[grpc.Server], list[str]]:
    """Register the DirectoryService; consume delivery events for connection status."""
    servicer = DirectoryServicer(
        sessions=runtime.sessions,
        connection_window_days=runtime.settings.directory.connection_window_days,
        master_keys=master_keys(runtime.settings),
    )
    deliveries = DeliveryEvents()
    runtime.consume(deliveries.topics, deliveries.handle)

    def register(server: grpc.Server) -> list[str]:
        directory_pb2_grpc.add_DirectoryServiceServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    return register


def rewrap_command(argv: list[str], settings: Settings | None = None) -> int:
    """`lienthong-directory vdxp-rewrap [--json]`: every secret's data key under the current
    master key; exit 0 when none is left under another, 1 when some could not be, 2 unusable keys."""
    parser = argparse.ArgumentParser(
        prog="lienthong-directory vdxp-rewrap",
        description="Re-wrap the data key of every VDXP system secret under the current (first) "
        "master key, so that older master keys can be removed from the settings.",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    settings = settings or load_settings()
    try:
        keys = load_master_keys(settings)
    except MasterKeyError as error:
        print(f"lienthong-directory: {error}", file=sys.stderr)
        return 2
    if keys is None:
        print(f"lienthong-directory: {vdxp_systems.NO_MASTER_KEY}", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url_for("directory"))
    try:
        with transaction(make_session_factory(engine)) as session:
            report = vdxp_systems.rewrap_secrets(session=session, keys=keys)
    except DBAPIError as error:
        print(f"lienthong-directory: cannot re-wrap: {error.orig}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    if args.json:
        print(
            json.dumps(
                {
                    "current_key_id": report.current_key_id,
                    "secrets": report.secrets,
                    "rewrapped": report.rewrapped,
                    "already_current": report.already_current,
                    "failed": list(report.failures),
                }
            )
        )
    else:
        print(
            f"{report.secrets} VDXP secret(s): {report.rewrapped} re-wrapped under master key "
            f"{report.current_key_id}, {report.already_current} already under it, "
            f"{len(report.failures)} failed"
        )
        for failure in report.failures:
            print(f"  {failure}")
    return 1 if report.failures else 0


def main() -> None:
    if sys.argv[1:2] == ["vdxp-rewrap"]:
        # The directory's own command beside the shared runtime's serve/migrate/dead-letters.
        raise SystemExit(rewrap_command(sys.argv[2:]))
    service_main(
        "directory", metadata=Base.metadata, outbox=OUTBOX, migrations=MIGRATIONS, build=build
    )


if __name__ == "__main__":
    main()
