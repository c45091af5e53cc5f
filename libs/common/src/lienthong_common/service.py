"""The life of one service process: migrate, serve gRPC, relay the outbox, consume, drain.

Every service builds a `ServiceRuntime` in its entry point and hands it its servicers and
consumers; `lienthong-<svc> serve` and `lienthong-<svc> migrate` are the two commands its
container and the local stack run.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health_pb2
from sqlalchemy import Engine, MetaData
from sqlalchemy.orm import Session, sessionmaker

from lienthong_common import db
from lienthong_common.kafka import (
    BatchHook,
    EventConsumer,
    Handler,
    OutboxRelay,
    broker_reachable,
    ensure_topics,
)
from lienthong_common.mtls import ClientTls, TlsConfigurationError, client_tls
from lienthong_common.outbox import Outbox, install_after_commit_hooks
from lienthong_common.settings import Settings, load_settings
from lienthong_common.telemetry import setup_telemetry, shutdown_telemetry

log = logging.getLogger(__name__)


class BackgroundWorker(Protocol):
    """A loop a service runs beside its consumers: start() returns at once, stop() joins."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class ServiceRuntime:
    """Owns a service's engine, sessions, outbox relay, consumers and gRPC server."""

    name: str
    settings: Settings
    metadata: MetaData
    outbox: Outbox
    engine: Engine = field(init=False)
    sessions: sessionmaker[Session] = field(init=False)
    consumers: list[EventConsumer] = field(default_factory=list)
    # Service-owned background loops (e.g. routing's webhook dispatcher): started with the
    # consumers, stopped when draining.
    workers: list[BackgroundWorker] = field(default_factory=list)
    server: grpc.Server | None = None
    relay: OutboxRelay | None = None
    _draining: threading.Event = field(default_factory=threading.Event)
    _stopped: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.engine = db.make_engine(self.settings.database_url_for(self.name))
        self.sessions = db.make_session_factory(self.engine)
        install_after_commit_hooks(self.sessions)

    def consume(
        self,
        topics: list[str],
        handler: Handler,
        group: str | None = None,
        *,
        before_batch: BatchHook | None = None,
        guard: AbstractContextManager[Any] | None = None,
    ) -> EventConsumer:
        """Consume `topics` as the service's group: handler(session, event) runs in the
        transaction that records the event id (the one way a service consumes). `before_batch`
        sees each polled batch first; `guard` is held around each transaction. The runtime
        starts and stops the consumer; it is returned for callers that hand it events."""
        consumer = EventConsumer(
            service=self.name,
            group=group or f"lienthong-{self.name}",
            topics=topics,
            settings=self.settings.kafka,
            sessions=self.sessions,
            outbox=self.outbox,
            handler=handler,
            before_batch=before_batch,
            guard=guard,
        )
        self.consumers.append(consumer)
        return consumer

    def client_tls(self) -> ClientTls | None:
        """This service's identity for calling its peers (None when plaintext is configured)."""
        return client_tls(self.settings, self.name)

    def ready(self) -> bool:
        return (
            not self._draining.is_set()
            and db.database_reachable(self.engine)
            and broker_reachable(self.settings.kafka)
        )

    def serve(self, register: Callable[[grpc.Server], list[str]]) -> None:
        """Serve until SIGTERM/SIGINT, then drain: NOT_SERVING, finish calls, stop workers.

        With LIENTHONG_GRPC__WORKERS = N > 1 this process is worker 0: it first starts workers
        1..N-1 (the same command, LIENTHONG_WORKER_INDEX set), which bind the same port
        (SO_REUSEPORT); it forwards SIGTERM/SIGINT to them and waits for their drain.
        """
        from lienthong_common.grpcutil import add_health_and_reflection, make_health_server, make_server
        from lienthong_common.mtls import server_credentials, tls_files

        index = worker_index()
        who = f"{self.name} worker {index}" if self.settings.grpc.workers > 1 else self.name
        # The copies are exec'd afresh (subprocess), never a fork that would carry this
        # process's gRPC threads and Kafka/database connections over.
        siblings = (
            WorkerProcesses(
                service=self.name,
                count=self.settings.grpc.workers,
                drain_seconds=self.settings.drain_seconds,
            )
            if index == 0 and self.settings.grpc.workers > 1
            else None
        )
        if siblings is not None:
            siblings.start()
        # A worker whose parent (worker 0) is gone drains too: nothing would stop it otherwise.
        parent = int(os.environ.get(WORKER_PARENT_ENV) or os.getppid()) if index > 0 else None

        # mTLS unless plaintext is configured, which the settings allow on loopback only.
        tls = tls_files(self.settings, self.name)
        try:
            credentials = server_credentials(tls) if tls is not None else None
        except TlsConfigurationError as error:
            if siblings is not None:
                siblings.stop()
                siblings.wait()
            raise SystemExit(f"{self.name}: {error}") from None
        server = make_server(
            self.settings.grpc.max_workers,
            max_connection_age_seconds=self.settings.grpc.max_connection_age_seconds,
            authorise_as=self.name if tls is not None else None,
        )
        names = register(server)
        health = add_health_and_reflection(server, names)
        address = f"{self.settings.grpc.host}:{self.settings.grpc_port_for(self.name)}"
        bound = (
            server.add_secure_port(address, credentials)
            if credentials is not None
            else server.add_insecure_port(address)
        )
        health_server = None
        if bound and self.settings.grpc.health_port:
            health_server = make_health_server(health)
            health_address = f"{self.settings.grpc.host}:{self.settings.grpc.health_port}"
            if health_server.add_insecure_port(health_address) == 0:
                bound = 0
                address = health_address
        if bound == 0:
            if siblings is not None:
                siblings.stop()
                siblings.wait()
            raise SystemExit(f"{self.name}: cannot listen on {address}")
        server.start()
        if health_server is not None:
            health_server.start()
        self.server = server
        log.info(
            "%s listening on %s (%s, pid %d)", who, address, "mTLS" if tls else "plaintext", os.getpid()
        )
        from lienthong_common.metrics import serve_metrics, watch_outbox

        watch_outbox(self.name, self.sessions, self.outbox)
        metrics_settings = self.settings.metrics
        if metrics_settings.port and index:
            # Worker i serves its own metrics on port + i (each process has its own registry).
            metrics_settings = metrics_settings.model_copy(update={"port": metrics_settings.port + index})
        serve_metrics(metrics_settings)

        def on_signal(signum: int, _frame: object) -> None:
            log.info("%s received signal %d; draining", who, signum)
            self._draining.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

        if broker_reachable(self.settings.kafka) and self.settings.kafka.ensure_topics:
            try:
                ensure_topics(self.settings.kafka)
            except Exception:
                log.exception("could not ensure topics")
        self.relay = OutboxRelay(
            service=self.name, settings=self.settings.kafka, sessions=self.sessions, outbox=self.outbox
        )
        self.relay.start()
        for consumer in self.consumers:
            consumer.start()
        for worker in self.workers:
            worker.start()

        status = None
        checked = 0.0
        while not self._draining.is_set():
            # Each check is a database round trip and a TCP connection to the broker: every
            # readiness_check_seconds while serving, every second while not.
            if status != health_pb2.HealthCheckResponse.SERVING or (
                time.monotonic() - checked >= self.settings.readiness_check_seconds
            ):
                serving = self.ready()
                checked = time.monotonic()
            else:
                serving = True
            new = (
                health_pb2.HealthCheckResponse.SERVING
                if serving
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            if new != status:
                for n in ["", *names]:
                    health.set(n, new)
                log.info("%s health %s", self.name, health_pb2.HealthCheckResponse.ServingStatus.Name(new))
                status = new
            self._draining.wait(1.0)
            if parent is not None and os.getppid() != parent:
                log.warning("%s: worker 0 (pid %d) is gone; draining", who, parent)
                self._draining.set()

        if siblings is not None:
            siblings.stop()  # they drain while this process does
        health.enter_graceful_shutdown()
        for consumer in self.consumers:
            consumer.stop()
        for worker in self.workers:
            worker.stop()
        server.stop(grace=self.settings.drain_seconds).wait()
        if health_server is not None:
            health_server.stop(grace=None)
        self.relay.stop()
        self.engine.dispose()
        if siblings is not None:
            siblings.wait()
        shutdown_telemetry()
        log.info("%s stopped", who)


WORKER_INDEX_ENV = "LIENTHONG_WORKER_INDEX"
WORKER_PARENT_ENV = "LIENTHONG_WORKER_PARENT_PID"


def worker_index() -> int:
    """This process's place among a service's worker processes: 0 is the one started first."""
    return int(os.environ.get(WORKER_INDEX_ENV) or 0)


def worker_command() -> list[str]:
    """This process's command line, runnable again from anywhere: the interpreter's absolute
    path, and a script path (a console script such as lienthong-docstore) made absolute."""
    args = list(sys.orig_argv[1:])
    if args and not args[0].startswith("-") and os.path.exists(args[0]):
        args[0] = os.path.abspath(args[0])
    return [sys.executable, *args]


class WorkerProcesses:
    """Workers 1..count-1 of `serve`, started and supervised by worker 0.

    Each is this process's own command line again (same interpreter, arguments and
    environment, plus LIENTHONG_WORKER_INDEX). One that dies while serving is restarted after a
    back-off (1 s doubling to 30 s, back to 1 s once a worker has lived a minute); stop()
    forwards SIGTERM and wait() gives them the drain time before killing them.
    See docs/adr/0051-worker-processes-per-service.md.
    """

    MIN_BACKOFF = 1.0
    MAX_BACKOFF = 30.0
    HEALTHY_AFTER = 60.0
    # Beyond drain_seconds: interpreter start-up, relay and consumer shutdown.
    STOP_MARGIN = 5.0

    def __init__(self, *, service: str, count: int, drain_seconds: float, poll: float = 0.5) -> None:
        self.service = service
        self.count = count
        self.drain_seconds = drain_seconds
        self.poll = poll
        self.command = worker_command()
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self._started: dict[int, float] = {}
        self._backoff: dict[int, float] = {}
        self._restart_at: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            for index in range(1, self.count):
                self._spawn(index)
        self._thread = threading.Thread(target=self._supervise, name="worker-processes", daemon=True)
        self._thread.start()

    def _spawn(self, index: int) -> None:
        env = {**os.environ, WORKER_INDEX_ENV: str(index), WORKER_PARENT_ENV: str(os.getpid())}
        process = subprocess.Popen(self.command, env=env)
        self.processes[index] = process
        self._started[index] = time.monotonic()
        log.info("%s worker %d started (pid %d)", self.service, index, process.pid)

    def _supervise(self) -> None:
        while not self._stopping.wait(self.poll):
            with self._lock:
                if self._stopping.is_set():
                    return
                now = time.monotonic()
                for index, process in list(self.processes.items()):
                    if index in self._restart_at:
                        if now >= self._restart_at[index]:
                            del self._restart_at[index]
                            self._spawn(index)
                        continue
                    code = process.poll()
                    if code is None:
                        continue
                    lived = now - self._started[index]
                    backoff = self._backoff.get(index, self.MIN_BACKOFF)
                    if lived >= self.HEALTHY_AFTER:
                        backoff = self.MIN_BACKOFF
                    self._backoff[index] = min(backoff * 2, self.MAX_BACKOFF)
                    self._restart_at[index] = now + backoff
                    how = f"signal {-code}" if code < 0 else f"exit code {code}"
                    log.error(
                        "%s worker %d (pid %d) died (%s) after %.0fs; restarting in %.0fs",
                        self.service,
                        index,
                        process.pid,
                        how,
                        lived,
                        backoff,
                    )

    def stop(self) -> None:
        """Forward SIGTERM to every live worker; no restarts from now on."""
        with self._lock:
            self._stopping.set()
            for process in self.processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)

    def wait(self) -> None:
        """Wait for the workers' drain; kill those still running after it."""
        deadline = time.monotonic() + self.drain_seconds + self.STOP_MARGIN
        for index, process in self.processes.items():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error(
                    "%s worker %d (pid %d) did not drain in time; killing it",
                    self.service,
                    index,
                    process.pid,
                )
                process.kill()
                process.wait()
        if self._thread is not None:
            self._thread.join(self.poll * 2)


def service_main(
    name: str,
    *,
    metadata: MetaData,
    outbox: Outbox,
    migrations: Path | None,
    build: Callable[[ServiceRuntime], Callable[[grpc.Server], list[str]]],
) -> None:
    """Entry point of `lienthong-<name>`: `serve`, `migrate` or `dead-letters list|redrive`."""
    parser = argparse.ArgumentParser(prog=f"lienthong-{name}")
    parser.add_argument("command", choices=["serve", "migrate", "dead-letters"])
    parser.add_argument(
        "action", nargs="?", choices=["list", "redrive"], default="list", help="with dead-letters"
    )
    parser.add_argument("--id", type=int, action="append", default=[], help="dead-letter row id(s)")
    parser.add_argument("--group", default=None, help="only this consumer group")
    parser.add_argument("--all", action="store_true", help="list re-driven rows too")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()
    settings = load_settings()
    setup_telemetry(name)
    if args.command == "dead-letters":
        runtime = ServiceRuntime(name=name, settings=settings, metadata=metadata, outbox=outbox)
        _build(build, runtime)  # registers the consumers (and their handlers); nothing is started
        raise SystemExit(dead_letters_command(runtime, args))
    if args.command == "migrate":
        if migrations is None:
            log.info("%s owns no database; nothing to migrate", name)
            return
        db.upgrade_database(settings.database_url_for(name), migrations)
        log.info("%s database migrated", name)
        return
    runtime = ServiceRuntime(name=name, settings=settings, metadata=metadata, outbox=outbox)
    register = _build(build, runtime)
    runtime.serve(register)


def _build(
    build: Callable[[ServiceRuntime], Callable[[grpc.Server], list[str]]], runtime: ServiceRuntime
) -> Callable[[grpc.Server], list[str]]:
    """The service's wiring; its clients read the service's gRPC identity, refused by name."""
    try:
        return build(runtime)
    except TlsConfigurationError as error:
        raise SystemExit(f"{runtime.name}: {error}") from None


def dead_letters_command(runtime: ServiceRuntime, args: argparse.Namespace) -> int:
    """`lienthong-<svc> dead-letters list|redrive [--id N ...] [--group G] [--all] [--json]`."""
    import json

    from lienthong_common.outbox import PARKED, REDRIVEN

    consumers = [c for c in runtime.consumers if args.group in (None, c.group)]
    if not consumers:
        print(f"{runtime.name} has no consumer group {args.group or ''}".strip())
        return 2
    if args.action == "redrive":
        failed = 0
        for consumer in consumers:
            for row_id, outcome in consumer.redrive(args.id or None):
                failed += outcome.startswith("failed")
                if args.json:
                    print(json.dumps({"id": row_id, "group": consumer.group, "outcome": outcome}))
                else:
                    print(f"{row_id:>8}  {consumer.group:<28} {' '.join(outcome.split())[:300]}")
        return 1 if failed else 0
    states = (PARKED, REDRIVEN) if args.all else (PARKED,)
    for consumer in consumers:
        for letter in consumer.dead_letters(states=states):
            if args.id and letter.id not in args.id:
                continue
            row = {
                "id": letter.id,
                "group": letter.consumer,
                "topic": letter.topic,
                "partition": letter.partition,
                "offset": letter.offset,
                "key": letter.key,
                "event_id": letter.event_id,
                "attempts": letter.attempts,
                "state": letter.state,
                "first_failed_at": letter.first_failed_at.isoformat(),
                "last_failed_at": letter.last_failed_at.isoformat(),
                "error": letter.error,
            }
            if args.json:
                print(json.dumps(row, ensure_ascii=False))
            else:
                error = " ".join(letter.error.split())[:150]
                print(
                    f"{letter.id:>8}  {letter.state:<9} {letter.topic}[{letter.partition}]@{letter.offset}"
                    f"  event {letter.event_id}  attempts {letter.attempts}"
                    f"  last {letter.last_failed_at:%Y-%m-%d %H:%M:%S}  {error}"
                )
    return 0
