"""The whole platform on one machine: Kafka, six services, the demo data.

`lienthong run` (what `make run` calls) and the end-to-end tests both start the platform
through `LocalPlatform`, with the same commands the containers run
(`lienthong-<svc> migrate`, `lienthong-<svc> serve`).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx

from lienthong_common.grpcutil import channel, health_status
from lienthong_common.kafka_access import SERVICES as KAFKA_PRINCIPALS
from lienthong_common.mtls import ADMIN_IDENTITY, TLS_DIR, ClientTls, ensure_identities, local_tls

GRPC_SERVICES = ("directory", "docstore", "sigverify", "routing", "statistics")
ALL_SERVICES = (*GRPC_SERVICES, "gateway")
# The services that consume Kafka topics (docstore and the gateway only publish / answer calls):
# the ones `LocalPlatform(replicas=N)` starts N processes of, one consumer group per service.
CONSUMER_SERVICES = ("directory", "sigverify", "routing", "statistics")
# Replica r of a service listens on gRPC port base + 10·r + index and metrics port base + 200 +
# 10·r + index, so replicas 1-9 fit between the services' ports (+0-4) and the gateway's (+100).
MAX_REPLICAS = 10


def process_name(service: str, replica: int = 0) -> str:
    """The name of one process of a service: "sigverify" for replica 0, "sigverify.1" after."""
    return service if replica == 0 else f"{service}.{replica}"


def split_process_name(name: str) -> tuple[str, int]:
    """("sigverify", 1) for "sigverify.1"; (name, 0) for a plain service name."""
    service, _, replica = name.partition(".")
    return service, int(replica) if replica else 0


def repo_root() -> Path:
    """The checkout holding infra/ (LIENTHONG_HOME, else found from here or the cwd)."""
    if os.environ.get("LIENTHONG_HOME"):
        return Path(os.environ["LIENTHONG_HOME"]).resolve()
    for start in (Path.cwd(), Path(__file__).resolve()):
        for candidate in (start, *start.parents):
            if (candidate / "infra" / "kafka.sh").exists():
                return candidate
    raise SystemExit("cannot find the lienthong checkout (infra/kafka.sh); set LIENTHONG_HOME")


GATEWAY_JWT_FILE = "gateway-jwt.json"


def gateway_jwt(data_dir: Path) -> dict[str, str]:
    """The gateway's token-signing secret and key id for this data directory: generated once,
    random, in a file only its owner reads (0600). The development placeholder is public, and
    tokens signed with it could be forged by anyone who reaches the gateway."""
    path = data_dir / GATEWAY_JWT_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        try:
            stored: dict[str, str] = json.loads(path.read_text())
            if stored.get("secret") and stored.get("key_id"):
                return stored
        except ValueError:
            pass
        raise SystemExit(
            f"{path} is damaged: delete it and start again (tokens issued before then end)"
        ) from None
    key = {"secret": secrets.token_urlsafe(48), "key_id": f"local-{secrets.token_hex(4)}"}
    with os.fdopen(fd, "w") as handle:
        json.dump(key, handle)
    return key


def bin_path(name: str) -> str:
    """A console script installed beside this Python (the project's venv)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


@dataclass
class LocalPlatform:
    data_dir: Path
    grpc_port_base: int = 50051
    http_port: int = 8080
    kafka_bootstrap: str = "127.0.0.1:9092"
    database_urls: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Where services send spans (OTLP/gRPC): None = OTEL_EXPORTER_OTLP_ENDPOINT if set, else the
    # local Jaeger when infra/jaeger.sh runs it; "" = nowhere.
    otlp_endpoint: str | None = None
    # Processes per consumer service (`replicated`): each its own gRPC and metrics ports, the
    # same database and the same consumer group, so Kafka spreads the topics' partitions over
    # them. Callers (the gateway, the other services, clients) keep addressing replica 0's gRPC
    # port: the replicas share the event work, not the synchronous calls.
    replicas: int = 1
    replicated: tuple[str, ...] = CONSUMER_SERVICES
    _admin_tls: ClientTls | None = field(default=None, init=False, repr=False)
    # The broker's password files (<service>.password, made by infra/kafka.sh): None = those of
    # the local broker of kafka_bootstrap's port, when it has them (kafka_credentials()).
    kafka_credentials: Path | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= MAX_REPLICAS:
            raise ValueError(f"replicas must be between 1 and {MAX_REPLICAS}, not {self.replicas}")

    def replica_count(self, service: str) -> int:
        return self.replicas if service in self.replicated else 1

    def process_names(self, services: tuple[str, ...] = ALL_SERVICES) -> list[str]:
        """Every process these services run as, replica 0 of each first."""
        names = list(services)
        for replica in range(1, self.replicas):
            names += [process_name(s, replica) for s in services if self.replica_count(s) > replica]
        return names

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def grpc_port(self, name: str) -> int:
        """The gRPC port of a service's process ("routing", or "routing.1" for replica 1)."""
        service, replica = split_process_name(name)
        return self.grpc_port_base + 10 * replica + GRPC_SERVICES.index(service)

    def grpc_address(self, name: str) -> str:
        return f"127.0.0.1:{self.grpc_port(name)}"

    def metrics_port(self, name: str) -> int | None:
        """The Prometheus port of a service's process. The gateway's is base + 205: its metrics
        are not on its API port (that answers /metrics to administrators only)."""
        service, replica = split_process_name(name)
        if service == "gateway":
            return self.grpc_port_base + 200 + len(GRPC_SERVICES)
        if service not in GRPC_SERVICES:
            return None
        return self.grpc_port_base + 200 + 10 * replica + GRPC_SERVICES.index(service)

    def traces_endpoint(self) -> str:
        if self.otlp_endpoint is None:
            self.otlp_endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or running_trace_viewer()
        return self.otlp_endpoint

    def kafka_credentials_dir(self) -> Path | None:
        """Where each service's Kafka password file is: infra/kafka.sh's credentials of the
        broker on kafka_bootstrap's port, unless given; None when there are none (no auth)."""
        if self.kafka_credentials is not None:
            return self.kafka_credentials
        port = self.kafka_bootstrap.split(",")[0].rpartition(":")[2]
        found = repo_root() / ".data" / f"kafka-{port}" / "credentials"
        return found if found.is_dir() else None

    def kafka_env(self, service: str) -> dict[str, str]:
        """A service's Kafka principal (docs/adr/0070): its name and its password file; the
        broker's admin made the topics, so services do not try to."""
        credentials = self.kafka_credentials_dir()
        if credentials is None or service not in KAFKA_PRINCIPALS:
            return {}
        return {
            "LIENTHONG_KAFKA__USERNAME": service,
            "LIENTHONG_KAFKA__PASSWORD_FILE": str(credentials / f"{service}.password"),
            "LIENTHONG_KAFKA__ENSURE_TOPICS": "false",
        }

    def log_path(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def env_for(self, name: str) -> dict[str, str]:
        """The environment of a service's process (a service name, or "routing.1" for a replica)."""
        service, _replica = split_process_name(name)
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update(
            {
                "LIENTHONG_DATA_DIR": str(self.data_dir),
                "LIENTHONG_KAFKA__BOOTSTRAP_SERVERS": self.kafka_bootstrap,
                "LIENTHONG_HTTP__PORT": str(self.http_port),
                "LIENTHONG_SIGVERIFY__TRUST_ROOTS": json.dumps([str(self.data_dir / "pki" / "root.pem")]),
                "LIENTHONG_DRAIN_SECONDS": env.get("LIENTHONG_DRAIN_SECONDS", "3"),
                "OTEL_SERVICE_NAME": f"lienthong-{service}",
            }
        )
        for peer in GRPC_SERVICES:  # callers address replica 0 of every service
            env[f"LIENTHONG_SERVICES__{peer.upper()}"] = self.grpc_address(peer)
        if service in GRPC_SERVICES:
            env["LIENTHONG_GRPC__PORT"] = str(self.grpc_port(name))
        if service == "sigverify":
            # The dev PKI publishes its CRLs on loopback (`lienthong pki init --crl-base-url`),
            # which CRL/OCSP fetches never reach by default: allowed locally, unless the operator
            # set the allow-list (docs/adr/0080). Webhooks keep the secure default.
            env.setdefault("LIENTHONG_SIGVERIFY__REVOCATION_ALLOWED_CIDRS", '["127.0.0.0/8"]')
        env.update(self.kafka_env(service))
        if service == "gateway" and not (
            env.get("LIENTHONG_GATEWAY__JWT_SECRET") or self.extra_env.get("LIENTHONG_GATEWAY__JWT_SECRET")
        ):
            key = gateway_jwt(self.data_dir)  # a secret of the operator's own wins
            env["LIENTHONG_GATEWAY__JWT_SECRET"] = key["secret"]
            env.setdefault("LIENTHONG_GATEWAY__JWT_KEY_ID", key["key_id"])
        if service in self.database_urls:
            env["DATABASE_URL"] = self.database_urls[service]
        metrics_port = self.metrics_port(name)
        if metrics_port:
            env["LIENTHONG_METRICS__PORT"] = str(metrics_port)
        endpoint = self.traces_endpoint()
        if endpoint:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        else:
            env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        env.update(self.extra_env)
        return env

    def prepare_pki(self) -> None:
        """The dev PKI for document signatures, and the service CA with one gRPC identity per
        service and one for the administrators' tooling (data_dir/grpc-tls; kept when present)."""
        from lienthong_common.pki import DevPki

        DevPki.init(self.data_dir / "pki")
        ensure_identities(self.data_dir / TLS_DIR)

    def grpc_channel(self, service: str, identity: str = ADMIN_IDENTITY) -> grpc.Channel:
        """An mTLS channel to a service's replica 0 as `identity` (one issued in data_dir)."""
        tls = self.admin_tls() if identity == ADMIN_IDENTITY else local_tls(self.data_dir, identity)
        return channel(self.grpc_address(service), tls=tls, peer=service)

    def admin_tls(self) -> ClientTls:
        """The administrators' gRPC identity (demo seeder, health checks, tests)."""
        if self._admin_tls is None:
            ensure_identities(self.data_dir / TLS_DIR)
            self._admin_tls = local_tls(self.data_dir)
        return self._admin_tls

    def migrate(self, service: str) -> None:
        result = subprocess.run(
            [bin_path(f"lienthong-{service}"), "migrate"],
            env=self.env_for(service),
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"migrating {service} failed:\n{result.stderr.decode(errors='replace')[-3000:]}")

    def migrate_all(self, services: tuple[str, ...] = GRPC_SERVICES) -> None:
        """Migrate several services at once (each has its own database, so they are
        independent): the slowest migration's time instead of the sum."""
        running = {
            service: subprocess.Popen(
                [bin_path(f"lienthong-{service}"), "migrate"],
                env=self.env_for(service),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for service in services
            if service in GRPC_SERVICES
        }
        failed = []
        for service, process in running.items():
            _, stderr = process.communicate()
            if process.returncode != 0:
                failed.append(f"migrating {service} failed:\n{stderr.decode(errors='replace')[-3000:]}")
        if failed:
            raise SystemExit("\n".join(failed))

    def start_service(self, name: str) -> None:
        """Start one process: a service (replica 0) or one of its replicas ("routing.1")."""
        service, _replica = split_process_name(name)
        self.log_path(name).parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path(name).open("ab")
        self.processes[name] = subprocess.Popen(
            [bin_path(f"lienthong-{service}"), "serve"],
            env=self.env_for(name),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_services(self, services: tuple[str, ...] = ALL_SERVICES) -> None:
        """Start every process of these services (all replicas of the replicated ones)."""
        for name in self.process_names(services):
            self.start_service(name)

    def start(self, services: tuple[str, ...] = ALL_SERVICES) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.prepare_pki()
        for service in services:
            if service in GRPC_SERVICES:
                self.migrate(service)
        self.start_services(services)

    def service_healthy(self, name: str) -> bool:
        if name == "gateway":
            try:
                return httpx.get(f"{self.gateway_url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        service, _replica = split_process_name(name)
        status = health_status(self.grpc_address(name), tls=self.admin_tls(), peer=service, timeout=1.0)
        return status == "SERVING"

    def wait_ready(self, timeout: float = 60.0, services: tuple[str, ...] = ALL_SERVICES) -> None:
        """Wait until every process of these services (replicas included) is healthy."""
        deadline = time.monotonic() + timeout
        pending = self.process_names(services)
        while pending and time.monotonic() < deadline:
            for service in list(pending):
                process = self.processes.get(service)
                if process is not None and process.poll() is not None:
                    raise SystemExit(
                        f"{service} exited with {process.returncode}; log:\n{self.tail_log(service)}"
                    )
                if self.service_healthy(service):
                    pending.remove(service)
            if pending:
                time.sleep(0.3)
        if pending:
            logs = "\n".join(f"--- {s}\n{self.tail_log(s)}" for s in pending)
            raise SystemExit(f"not healthy after {timeout:.0f}s: {', '.join(pending)}\n{logs}")

    def tail_log(self, service: str, lines: int = 30) -> str:
        path = self.log_path(service)
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self, service: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.pop(service)
        process.send_signal(sig)
        process.wait(timeout=30)

    def stop(self, timeout: float = 15.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def kafka_script(verb: str, *, port: int = 9092, env: dict[str, str] | None = None) -> None:
    script = repo_root() / "infra" / "kafka.sh"
    full_env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(port + 1),
        # The broker's users, topics and ACLs are made by lienthong_common, which this Python has.
        "LIENTHONG_PYTHON": os.environ.get("LIENTHONG_PYTHON", sys.executable),
        **(env or {}),
    }
    result = subprocess.run(["bash", str(script), verb], env=full_env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"infra/kafka.sh {verb} failed (exit {result.returncode})")


JAEGER_UI = "http://127.0.0.1:16686"


def running_trace_viewer() -> str:
    """The OTLP endpoint of the local Jaeger (infra/jaeger.sh) when it runs, else ""."""
    try:
        script = repo_root() / "infra" / "jaeger.sh"
    except SystemExit:
        return ""
    if not script.exists():
        return ""
    result = subprocess.run(["bash", str(script), "endpoint"], capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def start_trace_viewer() -> str:
    """Start the local Jaeger when it is built (or OTLP is configured); says where to look."""
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return f"traces: sent to {os.environ['OTEL_EXPORTER_OTLP_ENDPOINT']} (OTEL_EXPORTER_OTLP_ENDPOINT)"
    try:
        script = repo_root() / "infra" / "jaeger.sh"
    except SystemExit:
        return "traces: no local viewer"
    built = subprocess.run(["bash", str(script), "built"], capture_output=True, check=False).returncode == 0
    if built:
        started = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True, check=False)
        if started.returncode == 0:
            return f"traces: {JAEGER_UI} (Jaeger; search by service or by a document's trace id)"
    return (
        "traces: no local viewer running; `infra/jaeger.sh build` once builds Jaeger, "
        "or set OTEL_EXPORTER_OTLP_ENDPOINT (see docs/observability.md)"
    )
