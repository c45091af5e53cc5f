"""End-to-end harness: a real Kafka broker, a real PostgreSQL, the six services as processes.

Each platform flavour (SQLite defaults, PostgreSQL) gets a freshly reset broker and fresh
databases, and is driven through the gateway and the `lienthong` CLI as an agency would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from otlp_receiver import OtlpReceiver

from lienthong_common.testing import fresh_databases, one_pdf_package
from lienthong_common.testing import run_infra as infra
from lienthong_sdk.client import LienthongClient
from lienthong_sdk.demo import load_credentials, seed
from lienthong_sdk.local import GRPC_SERVICES, LocalPlatform

ROOT = Path(__file__).resolve().parent.parent
KAFKA_PORT = int(os.environ.get("LIENTHONG_TEST_KAFKA_PORT", "19092"))
PGPORT = int(os.environ.get("LIENTHONG_TEST_PGPORT", "55432"))
# gRPC ports of the SQLite flavour start here; PostgreSQL's 1000 higher; the gateway at +100.
# Below the kernel's ephemeral range (32768-60999): a client socket can never hold them.
PORT_BASE = int(os.environ.get("LIENTHONG_TEST_PORT_BASE", "24051"))

# Demo agencies used by the flows (data/directory/demo.json).
PROVINCE = "000.00.00.H49"
DEPARTMENT = "000.00.02.H49"
COMMUNE = "000.01.03.H49"
OUTSIDER = "000.00.00.G22"


KAFKA_ENV = {"KAFKA_PORT": str(KAFKA_PORT), "KAFKA_CONTROLLER_PORT": str(KAFKA_PORT + 1)}
PG_ENV = {"PGPORT": str(PGPORT)}


def fresh_postgres_databases(prefix: str) -> dict[str, str]:
    infra("postgres.sh", "start", env=PG_ENV)
    return fresh_databases(PGPORT, prefix, GRPC_SERVICES)


@dataclass
class RunningPlatform:
    flavour: str
    local: LocalPlatform
    env: dict[str, str]
    # Every service exports its spans here (one receiver for the whole test session).
    receiver: OtlpReceiver | None = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "lienthong"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"lienthong {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def client(self, code: str) -> LienthongClient:
        return LienthongClient(self.local.gateway_url, code, load_credentials(self.local.data_dir)[code])

    def restart(self, service: str) -> None:
        self.local.start_service(service)
        self.local.wait_ready(timeout=60, services=(service,))


def eventually(
    check: Callable[[], Any], *, timeout: float = 45.0, interval: float = 0.3, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


_receiver: list[OtlpReceiver] = []


def session_receiver() -> OtlpReceiver:
    """The OTLP/gRPC receiver all platforms of this session export spans to (started once)."""
    if not _receiver:
        _receiver.append(OtlpReceiver().start())
    return _receiver[0]


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    flavour = request.param
    infra("kafka.sh", "reset", env=KAFKA_ENV)
    infra("kafka.sh", "start", env=KAFKA_ENV)
    data_dir = tmp_path_factory.mktemp(f"platform-{flavour}")
    databases = fresh_postgres_databases(f"e2e_{uuid.uuid4().hex[:8]}") if flavour == "postgres" else {}
    base = PORT_BASE if flavour == "sqlite" else PORT_BASE + 1000
    local = LocalPlatform(
        data_dir=data_dir,
        grpc_port_base=base,
        http_port=base + 100,
        kafka_bootstrap=f"127.0.0.1:{KAFKA_PORT}",
        database_urls=databases,
        extra_env={
            "LIENTHONG_DRAIN_SECONDS": "2",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            # The tests' webhook receivers listen on loopback, which webhooks never reach by
            # default: allowed here as an operator allows an agency's private network.
            # `make run` keeps the secure default (no allow-list).
            "LIENTHONG_ROUTING__WEBHOOKS__ALLOWED_CIDRS": '["127.0.0.0/8"]',
            # CRLs the tests publish are served on loopback too (`lienthong run` allows it as well).
            "LIENTHONG_SIGVERIFY__REVOCATION_ALLOWED_CIDRS": '["127.0.0.0/8"]',
        },
        otlp_endpoint=session_receiver().endpoint,
    )
    try:
        local.start()
        local.wait_ready(timeout=90)
        seed(
            directory_address=local.grpc_address("directory"),
            data_dir=data_dir,
            dataset=ROOT / "data" / "directory" / "demo.json",
        )
        env = {**os.environ, "LIENTHONG_URL": local.gateway_url, "LIENTHONG_DATA_DIR": str(data_dir)}
        yield RunningPlatform(flavour=flavour, local=local, env=env, receiver=session_receiver())
    finally:
        local.stop()
        infra("kafka.sh", "stop", env=KAFKA_ENV)


@pytest.fixture
def signed_pdf(platform: RunningPlatform, tmp_path: Path) -> Callable[[str, str], Path]:
    from lienthong_common.pdfgen import make_pdf

    def make(code: str, title: str) -> Path:
        source = tmp_path / f"{uuid.uuid4().hex}.pdf"
        source.write_bytes(make_pdf(title, ["Kính gửi các cơ quan, đơn vị."]))
        out = tmp_path / f"signed-{source.name}"
        platform.cli("sign", str(source), "--as", code, "-o", str(out))
        return out

    return make


__all__ = ["one_pdf_package"]  # the tests import it from here with the fixtures
