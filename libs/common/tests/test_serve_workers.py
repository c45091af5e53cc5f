"""`lienthong-docstore serve` with LIENTHONG_GRPC__WORKERS=2: two processes share the gRPC port.

A real docstore (SQLite in a temp data dir, Kafka pointing at a closed port, as the docstore
bench runs it). What is checked comes from the kernel (/proc), not from anything the service
says about itself: two processes hold a listening socket on the port, connections opened by
a client with several connections are accepted by both, a worker killed with SIGKILL is
replaced, and SIGTERM to worker 0 stops every one of them within the drain time.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lienthong_common.grpcutil import channel_pool
from lienthong_common.service import WorkerProcesses

DOCSTORE = Path(sys.executable).parent / "lienthong-docstore"
DRAIN_SECONDS = 2.0
LISTEN, ESTABLISHED = "0A", "01"

pytestmark = pytest.mark.skipif(
    not DOCSTORE.exists() or not Path("/proc/net/tcp").exists(),
    reason="needs the docstore installed in this venv and Linux /proc",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def socket_inodes(port: int, state: str) -> set[str]:
    """Inodes of TCP sockets whose local port is `port`, in `state` (gRPC listens on IPv6
    sockets with v4-mapped addresses, so both tables are read)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == state:
                inodes.add(fields[9])
    return inodes


def owners(inodes: set[str]) -> set[int]:
    """The pids holding any of these sockets open."""
    pids = set()
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    pids.add(int(entry.name))
                    break
        except OSError:  # gone, or not ours to read
            continue
    return pids


def listeners(port: int) -> set[int]:
    return owners(socket_inodes(port, LISTEN))


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Docstore:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def docstore(tmp_path: Path) -> Iterator[Docstore]:
    port = free_port()
    env = {
        **os.environ,
        "LIENTHONG_DATA_DIR": str(tmp_path / "data"),
        "LIENTHONG_GRPC__PORT": str(port),
        "LIENTHONG_GRPC__WORKERS": "2",
        "LIENTHONG_GRPC__TLS__ENABLED": "false",  # explicit plaintext, loopback only
        "LIENTHONG_DRAIN_SECONDS": str(DRAIN_SECONDS),
        "LIENTHONG_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",  # nothing listens
        "LIENTHONG_KAFKA__ENSURE_TOPICS": "false",
        "OTEL_SDK_DISABLED": "true",
    }
    for name in ("DATABASE_URL", "LIENTHONG_DATABASE_URL", "LIENTHONG_METRICS__PORT"):
        env.pop(name, None)
    subprocess.run([str(DOCSTORE), "migrate"], env=env, check=True, capture_output=True)
    log = tmp_path / "docstore.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(DOCSTORE), "serve"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield Docstore(process, port, log)
    finally:
        if process.poll() is None or any(alive(p) for p in listeners(port)):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(10)


def test_two_workers_share_the_port_restart_and_stop_together(docstore: Docstore) -> None:
    parent = docstore.process.pid
    wait_for(lambda: len(listeners(docstore.port)) == 2, 60, "two processes listening")
    pids = listeners(docstore.port)
    assert parent in pids, docstore.log.read_text()
    (child,) = pids - {parent}
    assert parent_of(child) == parent

    # A client with several connections (each its own TCP connection) reaches both workers.
    pool = channel_pool(docstore.address, 16, tls=None)
    try:
        health = health_pb2_grpc.HealthStub(pool)
        for _ in range(32):  # two rounds: every connection carries calls
            reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            # NOT_SERVING: Kafka is unreachable on purpose; the call itself was served.
            assert reply.status in (
                health_pb2.HealthCheckResponse.SERVING,
                health_pb2.HealthCheckResponse.NOT_SERVING,
            )
        accepted_by = owners(socket_inodes(docstore.port, ESTABLISHED))
        # 16 connections all hashed to one listener: probability 2**-15.
        assert accepted_by == {parent, child}
    finally:
        pool.close()

    # A worker that dies is replaced, and the port stays served meanwhile.
    os.kill(child, signal.SIGKILL)
    # Its listening socket gone (the leader thread turns zombie before the others release the
    # descriptors, so the process state alone is not enough).
    wait_for(
        lambda: len(socket_inodes(docstore.port, LISTEN)) == 1, 10, "the killed worker's socket to close"
    )
    with grpc.insecure_channel(docstore.address) as ch:
        health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    wait_for(
        lambda: len(listeners(docstore.port) - {parent, child}) == 1, 60, "a replacement worker listening"
    )
    (replacement,) = listeners(docstore.port) - {parent}
    assert parent_of(replacement) == parent
    assert "worker 1" in docstore.log.read_text() and "died (signal 9)" in docstore.log.read_text()

    # SIGTERM to worker 0 drains every worker.
    started = time.monotonic()
    docstore.process.send_signal(signal.SIGTERM)
    assert docstore.process.wait(DRAIN_SECONDS + 20) == 0, docstore.log.read_text()
    wait_for(lambda: not alive(replacement), 5, "worker 1 to exit")
    assert time.monotonic() - started < DRAIN_SECONDS + 15
    assert not listeners(docstore.port)
    log = docstore.log.read_text()
    assert "docstore worker 0 stopped" in log and "docstore worker 1 stopped" in log


def _supervisor(script: str, *, count: int = 2, drain_seconds: float = 0.5) -> WorkerProcesses:
    workers = WorkerProcesses(service="test", count=count, drain_seconds=drain_seconds, poll=0.05)
    workers.command = [sys.executable, "-c", script]
    workers.MIN_BACKOFF, workers.MAX_BACKOFF, workers.STOP_MARGIN = 0.2, 0.4, 0.5
    return workers


def test_a_dying_worker_is_restarted_with_a_growing_back_off() -> None:
    workers = _supervisor("import sys; sys.exit(3)")
    workers.start()
    spawned = [(workers.processes[1].pid, time.monotonic())]
    deadline = time.monotonic() + 10
    while len(spawned) < 4 and time.monotonic() < deadline:
        pid = workers.processes[1].pid
        if pid != spawned[-1][0]:
            spawned.append((pid, time.monotonic()))
        time.sleep(0.01)
    workers.stop()
    workers.wait()
    assert len(spawned) == 4, spawned
    gaps = [later[1] - earlier[1] for earlier, later in itertools.pairwise(spawned)]
    # Back-off 0.2 s, then doubled and capped at 0.4 s (plus the exit and a poll each time).
    assert 0.2 <= gaps[0] < gaps[1] + 0.1 and gaps[1] >= 0.4 and gaps[2] >= 0.4, gaps
    assert workers._backoff[1] == 0.4  # capped
    assert set(workers.processes) == {1}


def test_stop_forwards_sigterm_and_wait_kills_a_worker_that_does_not_drain() -> None:
    stubborn = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    workers = _supervisor(stubborn, count=3)
    workers.start()
    wait_for(lambda: all(alive(p.pid) for p in workers.processes.values()), 5, "workers started")
    time.sleep(0.5)  # past the interpreter start-up: SIGTERM is ignored now
    started = time.monotonic()
    workers.stop()
    workers.wait()
    assert time.monotonic() - started < 0.5 + 0.5 + 2  # drain_seconds + STOP_MARGIN + slack
    assert all(p.returncode == -signal.SIGKILL for p in workers.processes.values())
