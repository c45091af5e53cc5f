"""Docstore benchmark: 1 MB packages stored per second through gRPC, and peak RSS growth while
storing and reading back a 40 MB package, against a real `lienthong-docstore serve` (SQLite, its
own data dir, a free port; Kafka is not needed: the outbox just accumulates).

Throughput is measured with several concurrent client streams (`--clients`, default 8: a
gateway under load has many uploads in flight) over a pool of connections balanced per call
(`--connections`, default 16: the gateway's LIENTHONG_GRPC__CLIENT_CONNECTIONS pool; see
`AioPool`), each stream uploading its next package as soon as the previous one is acknowledged,
in 256 KiB messages as the gateway sends them (`--chunk-kib`). The client is asyncio gRPC
sending prepared messages: on a 2-core machine every millisecond the client spends is one the
docstore does not get.
It is measured once per docstore worker count in `--workers` (default "1,2":
LIENTHONG_GRPC__WORKERS, processes sharing the port through SO_REUSEPORT), each on a fresh
store. Every package is new (its own DocumentId and attachment bytes); only its first message is
built per upload (see `Uploads`), so the client's own CPU stays small. Client count, message size, load
averages and both sides' CPU per package are in the output and the JSON; the docstore process
ids are printed first (for py-spy).

    .venv/bin/python bench/bench_docstore.py [--quick] [--workers 1,2] [--clients N]
                                             [--chunk-kib K] [--keep] [--settle S]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc

from lienthong.docstore.v1 import docstore_pb2, docstore_pb2_grpc
from lienthong_common.edxml import Attachment, EdxmlPackage, MessageHeader, Organization, build_package
from lienthong_common.grpcutil import Balancer, channel, health_status
from lienthong_common.mtls import TLS_DIR, ClientTls, ensure_identities, identity_name, local_tls

ROOT = Path(__file__).resolve().parent.parent
SENDER = "000.00.00.H49"
CHUNK = 256 * 1024  # what the gateway sends per message
CLIENTS = 8
CONNECTIONS = 16
SETTLE_SECONDS = 31.0  # see settle()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def package(size: int, n: int) -> bytes:
    header = MessageHeader(
        sender=Organization(organ_id=SENDER),
        recipients=[Organization(organ_id="000.00.02.H49")],
        code_number=f"{n:09d}",
        code_notation="BENCH",
        promulgation_place="Quảng Ninh",
        promulgation_date=datetime.date(2025, 7, 1),
        document_type=1,
        document_type_name="Công văn",
        subject=f"Benchmark {n}",
    )
    data = os.urandom(size * 3 // 4)
    return build_package(
        EdxmlPackage(header=header, attachments=[Attachment("cid:1", "a.pdf", "application/pdf", data)])
    )


def unique(template: bytes, n: int) -> bytes:
    """A copy of the template with its own DocumentId (CodeNumber) and attachment bytes, so
    every stored package is new: no duplicate short-cut, no blob already in the store."""
    code = template.split(b"<edXML:CodeNumber>", 1)[1].split(b"<", 1)[0]
    data = template.replace(code, f"{n:0{len(code)}d}".encode())
    start = data.index(b">", data.index(b"ContentTransferEncoded")) + 1
    return data[:start] + base64.b64encode(n.to_bytes(6, "big")) + data[start + 8 :]


class Uploads:
    """The request stream of the n-th distinct package.

    Only a package's first message differs from its template's (it holds the CodeNumber and
    the start of the attachment, both made unique by :func:`unique`); the other messages are
    the template's own, shared. So each upload is a new package with new attachment bytes,
    and preparing it costs the client one small copy instead of a megabyte's. The shared
    messages are also kept serialized (`wire`), as the throughput client sends them."""

    def __init__(self, templates: list[bytes], chunk: int) -> None:
        self.chunk = chunk
        self.templates = templates
        self.tails = [
            [docstore_pb2.PutPackageRequest(chunk=t[o : o + chunk]) for o in range(chunk, len(t), chunk)]
            for t in templates
        ]
        self.wire_tails = [[m.SerializeToString() for m in tail] for tail in self.tails]

    def wire(self, n: int) -> list[bytes]:
        """The n-th upload's messages in their wire form (the same bytes `requests` gives)."""
        header, head = (m.SerializeToString() for m in self.requests(n, tail=False))
        return [header, head, *self.wire_tails[n % len(self.templates)]]

    def requests(self, n: int, *, tail: bool = True) -> list[docstore_pb2.PutPackageRequest]:
        template = self.templates[n % len(self.templates)]
        head = unique(template[: self.chunk], n)
        return [
            docstore_pb2.PutPackageRequest(
                header=docstore_pb2.PackageHeader(
                    id=str(uuid.uuid4()), sender_code=SENDER, declared_size=len(template)
                )
            ),
            docstore_pb2.PutPackageRequest(chunk=head),
            *(self.tails[n % len(self.templates)] if tail else ()),
        ]


def requests(data: bytes, chunk: int = CHUNK) -> Iterator[docstore_pb2.PutPackageRequest]:
    yield docstore_pb2.PutPackageRequest(
        header=docstore_pb2.PackageHeader(id=str(uuid.uuid4()), sender_code=SENDER, declared_size=len(data))
    )
    view = memoryview(data)
    for offset in range(0, len(data), chunk):
        yield docstore_pb2.PutPackageRequest(chunk=bytes(view[offset : offset + chunk]))


def settle(began: float, seconds: float) -> None:
    """Wait until `seconds` have passed since `began` (the bench's start).

    ext4 does not reuse an inode freed less than 30 s ago: a new file's inode is searched past
    every recently freed one, reading inode tables to check. Right after many files were
    deleted (`make bench` removes the PostgreSQL cluster of the benchmark before this one, and
    this bench used to remove one configuration's store just before measuring the next),
    each new blob cost more: interleaved runs gave 84-99/s just after deleting 3000 files and
    97-126/s with the deletion 40 s old (bench/README.md). A docstore in service never
    deletes files in bulk, so the bench waits out files deleted before it started, and
    deletes its own stores only after the last measurement."""
    left = began + seconds - time.monotonic()
    if left > 0:
        print(f"waiting {left:.0f} s for files deleted before the bench to age (ext4, 30 s)", file=sys.stderr)
        time.sleep(left)


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (so a busy machine's waiting is not counted)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_hwm(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def docstore_pids(parent: int) -> list[int]:
    """The serving processes: the one started, and the workers it started (its children)."""
    children = Path(f"/proc/{parent}/task/{parent}/children")
    found = [int(p) for p in children.read_text().split()] if children.exists() else []
    return [parent, *found]


class Docstore:
    """A `lienthong-docstore serve` with `workers` processes on a fresh data dir and port."""

    def __init__(self, workers: int, keep: bool) -> None:
        self.keep = keep
        self.data_dir = Path(tempfile.mkdtemp(prefix="bench-docstore-"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "LIENTHONG_DATA_DIR": str(self.data_dir),
            "LIENTHONG_GRPC__PORT": str(self.port),
            "LIENTHONG_GRPC__WORKERS": str(workers),
            "LIENTHONG_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",  # nothing listens
            "LIENTHONG_KAFKA__ENSURE_TOPICS": "false",
            "LIENTHONG_DOCSTORE__MAX_PACKAGE_BYTES": str(60 * 1024 * 1024),
        }
        env.pop("DATABASE_URL", None)
        # mTLS as in production: the bench calls as the gateway (the docstore's uploader).
        ensure_identities(self.data_dir / TLS_DIR)
        self.tls = local_tls(self.data_dir, "gateway")
        exe = str(Path(sys.executable).parent / "lienthong-docstore")
        subprocess.run([exe, "migrate"], env=env, check=True, capture_output=True)
        self.log = (self.data_dir / "docstore.log").open("wb")
        self.proc = subprocess.Popen(
            [exe, "serve"], env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # health says NOT_SERVING without Kafka; RPCs work
            if health_status(self.address, tls=self.tls, peer="docstore", timeout=1.0) in (
                "SERVING",
                "NOT_SERVING",
            ):
                break
            time.sleep(0.2)
        # Every worker must be listening before the clients connect: the kernel spreads
        # connections over the sockets bound at connect time.
        log_path = self.data_dir / "docstore.log"
        while log_path.read_text(errors="replace").count(" listening on ") < workers:
            if time.monotonic() > deadline:
                raise SystemExit(f"docstore: {workers} workers did not all start; see {log_path}")
            time.sleep(0.2)
        print(f"docstore pids {self.pids()}, data in {self.data_dir}", file=sys.stderr, flush=True)

    def pids(self) -> list[int]:
        return docstore_pids(self.proc.pid)

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def stub(self) -> docstore_pb2_grpc.DocumentStoreStub:
        """A plain stub over one connection (warm-up, the 40 MB package)."""
        return docstore_pb2_grpc.DocumentStoreStub(channel(self.address, tls=self.tls, peer="docstore"))

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()

    def remove(self) -> None:
        """Delete the data dir (unless kept). Only once every measurement is over: see `settle`."""
        if not self.keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class AioPool:
    """The bench's client: `connections` asyncio gRPC connections of its own, each call on the
    one the gateway's pool would take (`Balancer`: in turn while they look alike, away from
    connections that answer slower or have more calls waiting). The kernel fixes each
    connection's worker when it connects; a worker given more connections answers them slower
    and so gets fewer calls. asyncio rather than threads: the same uploads cost the client
    about a fifth less CPU, which on a 2-core machine is CPU the docstore being measured gets
    instead."""

    def __init__(self, address: str, connections: int, tls: ClientTls) -> None:
        options = [
            ("grpc.use_local_subchannel_pool", 1),  # a connection per channel
            ("grpc.max_send_message_length", 8 * 1024 * 1024),
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.ssl_target_name_override", identity_name("docstore")),
        ]
        self.channels = [
            grpc.aio.secure_channel(address, tls.credentials, options=options) for _ in range(connections)
        ]
        # Messages go out as prepared bytes (Uploads.wire): no serializing per upload.
        self.calls = [
            c.stream_unary(
                "/lienthong.docstore.v1.DocumentStore/PutPackage",
                request_serializer=None,
                response_deserializer=docstore_pb2.PutPackageResponse.FromString,
            )
            for c in self.channels
        ]
        self.balancer = Balancer(connections)

    async def put(self, messages: list[bytes]) -> docstore_pb2.PutPackageResponse:
        i = self.balancer.pick(balanced=True)
        with self.balancer.timed(i):
            reply: docstore_pb2.PutPackageResponse = await self.calls[i](iter(messages), timeout=60)
        return reply

    async def close(self) -> None:
        for c in self.channels:
            await c.close(None)


def throughput(
    store: Docstore, uploads: Uploads, *, clients: int, connections: int, count: int, seconds: float
) -> dict[str, object]:
    """1 MB packages from `clients` concurrent streams (a gateway under load has many requests
    in flight), distinct DocumentIds; each client uploads the next package as soon as its
    previous one is acknowledged, until `count` packages or `seconds`."""
    warm = store.stub()
    for n in range(4):  # warm up every worker's code paths a little
        warm.PutPackage(iter(uploads.requests(10_000_000 + n)), timeout=30)
    return asyncio.run(
        _throughput(store, uploads, clients=clients, connections=connections, count=count, seconds=seconds)
    )


async def _throughput(
    store: Docstore, uploads: Uploads, *, clients: int, connections: int, count: int, seconds: float
) -> dict[str, object]:
    counter = itertools.count()
    done: list[float] = []
    pool = AioPool(store.address, connections, store.tls)
    # Warm every connection, and so every worker, before the clock starts: a worker's first
    # uploads create its blob folders and compile its statements, and a gateway's pool is
    # warm in steady state. Two rounds of the pool, from numbers the measured run never uses.
    warm = itertools.count(20_000_000)
    for _ in range(2):
        await asyncio.gather(*(pool.put(uploads.wire(next(warm))) for _ in range(connections)))
    pids = store.pids()
    per_process_before = [cpu_seconds(pid) for pid in pids]
    cpu_before = store.cpu()
    client_before = time.process_time()
    started = time.perf_counter()
    stop_at = started + seconds

    async def client() -> None:
        while time.perf_counter() < stop_at:
            n = next(counter)
            if n >= count:
                return
            reply = await pool.put(uploads.wire(n))
            assert not reply.duplicate, "every package must be new, or the bench measures dedup"
            done.append(time.perf_counter())

    try:
        await asyncio.gather(*(client() for _ in range(clients)))
    finally:
        await pool.close()
    stored = len(done)
    elapsed = max(done) - started
    return {
        "packages_per_second_1mb": round(stored / elapsed, 1),
        "packages_stored": stored,
        "seconds": round(elapsed, 2),
        "docstore_cpu_ms_per_package": round((store.cpu() - cpu_before) * 1000 / stored, 1),
        "bench_client_cpu_ms_per_package": round((time.process_time() - client_before) * 1000 / stored, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        # Packages acknowledged in each half second since the start (for the chart).
        "per_half_second": _histogram([t - started for t in done], 0.5),
        # How the connections spread: each serving process's share of the CPU.
        "cpu_share_by_process": [
            round((cpu_seconds(pid) - before) / max(1e-9, store.cpu() - cpu_before), 2)
            for pid, before in zip(pids, per_process_before, strict=True)
        ],
    }


def memory(store: Docstore, big_mb: int) -> dict[str, object]:
    """Peak RSS growth of the serving process while one `big_mb` package is stored and read
    back (with several workers: of whichever worker served it, the largest growth)."""
    stub = store.stub()
    big = package(big_mb * 1024 * 1024, 1_000_000)
    pids = store.pids()
    baselines = {pid: rss_kib(pid, "VmRSS") for pid in pids}
    exact = all([reset_hwm(pid) for pid in pids])
    reply = stub.PutPackage(requests(big), timeout=300)
    download = stub.GetPackage(docstore_pb2.GetDocumentRequest(id=reply.document.id), timeout=300)
    received = sum(len(c.data) for c in download)
    assert received == len(big), (received, len(big))
    pid, growth_kib = max(((p, rss_kib(p, "VmHWM") - baselines[p]) for p in pids), key=lambda x: x[1])
    growth = growth_kib * 1024
    return {
        "large_package_bytes": len(big),
        "rss_baseline_bytes": baselines[pid] * 1024,
        "rss_peak_growth_bytes": growth,
        "rss_growth_ratio": round(growth / len(big), 2),
        "hwm_reset": exact,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", default="1,2", help="docstore worker counts to measure, e.g. 1,2")
    parser.add_argument("--clients", type=int, default=CLIENTS, help="concurrent upload streams")
    parser.add_argument(
        "--connections", type=int, default=CONNECTIONS, help="client connections (the gateway's pool size)"
    )
    parser.add_argument("--chunk-kib", type=int, default=CHUNK // 1024, help="gRPC message size")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs (blobs, database, log)")
    parser.add_argument(
        "--settle",
        type=float,
        default=SETTLE_SECONDS,
        help="seconds from the bench's start before the first measurement (0: none); see settle()",
    )
    args = parser.parse_args()
    began = time.monotonic()
    count, seconds, big_mb = (600, 6.0, 40) if args.quick else (3000, 30.0, 40)
    worker_counts = [int(w) for w in args.workers.split(",")]
    uploads = Uploads([package(1024 * 1024, n) for n in range(16)], args.chunk_kib * 1024)

    runs: list[dict[str, object]] = []
    mem: dict[str, object] = {}
    stores: list[Docstore] = []
    try:
        for workers in worker_counts:
            store = Docstore(workers, args.keep)
            stores.append(store)
            settle(began, args.settle)
            try:
                run = {
                    "workers": workers,
                    **throughput(
                        store,
                        uploads,
                        clients=args.clients,
                        connections=args.connections,
                        count=count,
                        seconds=seconds,
                    ),
                }
                if not mem:  # (b) memory, on the first configuration's serving process
                    mem = memory(store, big_mb)
            finally:
                store.close()
            runs.append(run)
            print(
                f"  {workers} worker(s): {run['packages_per_second_1mb']} packages/s, "
                f"{run['docstore_cpu_ms_per_package']} ms docstore CPU each, "
                f"CPU shares {run['cpu_share_by_process']}",
                file=sys.stderr,
                flush=True,
            )
    finally:  # only now: deleting a store makes the next one slower (see settle)
        for store in stores:
            store.remove()
    best = max(runs, key=lambda r: float(r["packages_per_second_1mb"]))  # type: ignore[arg-type]
    result = {
        **{k: v for k, v in best.items() if k != "load_average"},
        "load_average": best["load_average"],
        "concurrent_clients": args.clients,
        "client_connections": args.connections,
        "chunk_bytes": args.chunk_kib * 1024,
        "cpu_count": os.cpu_count(),
        "by_workers": runs,
        **mem,
        "targets": {"packages_per_second_1mb": 100, "rss_growth_ratio_max": 3.0},
    }
    print(f"{'metric':<36}{'value':>14}{'target':>10}")
    for run in runs:
        label = f"1 MB packages stored / s, {run['workers']} wkr"
        mark = ">= 100" if run is best else ""
        print(f"{label:<36}{run['packages_per_second_1mb']:>14}{mark:>10}")
        print(f"{'  docstore CPU ms / package':<36}{run['docstore_cpu_ms_per_package']:>14}")
        print(f"{'  bench client CPU ms / package':<36}{run['bench_client_cpu_ms_per_package']:>14}")
        print(f"{'  packages stored':<36}{run['packages_stored']:>14}")
        load = run["load_average"]
        assert isinstance(load, list)
        print(f"{'  load average 1/5/15 min':<36}{' / '.join(f'{x:.1f}' for x in load):>14}")
    print(f"{'  concurrent client streams':<36}{args.clients:>14}")
    print(f"{'  client connections':<36}{args.connections:>14}")
    print(f"{'  gRPC chunk (KiB)':<36}{args.chunk_kib:>14}")
    growth = float(mem["rss_peak_growth_bytes"])  # type: ignore[arg-type]
    print(f"{'40 MB store+read RSS growth (MB)':<36}{growth / 2**20:>14.1f}")
    print(f"{'  growth / package size':<36}{mem['rss_growth_ratio']:>14}{'< 3':>10}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "docstore.json").write_text(json.dumps(result, indent=2) + "\n")
    chart(runs, mem, out / "docstore.png")
    print(f"chart: {out / 'docstore.png'}")


def _histogram(offsets: list[float], width: float) -> list[int]:
    counts = [0] * (int(max(offsets, default=0) / width) + 1)
    for offset in offsets:
        counts[int(offset / width)] += 1
    return counts


def chart(runs: list[dict[str, object]], mem: dict[str, object], path: Path) -> None:
    """Throughput over time per worker count against the target, and where the CPU per
    package went (docstore, bench client) beside the 2-core budget at the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 1.4]})
    for run in runs:
        counts = run["per_half_second"]
        assert isinstance(counts, list)
        counts = counts[:-1] or counts  # the last half second is cut short by the end of the run
        xs = [0.5 * (i + 1) for i in range(len(counts))]
        left.plot(
            xs,
            [2 * c for c in counts],
            lw=1.4,
            label=f"{run['workers']} worker(s): {run['packages_per_second_1mb']}/s",
        )
    left.axhline(100, color="grey", ls="--", lw=1)
    left.text(0, 101, " target 100/s", color="grey", fontsize=8, va="bottom")
    left.set_xlabel("seconds since the first upload")
    left.set_ylabel("1 MB packages stored / s (per ½ s)")
    left.legend(loc="lower right", fontsize=8)
    left.set_title("docstore intake through gRPC, 8 streams, every package new", fontsize=10)
    labels = [f"{run['workers']} wkr" for run in runs]
    store_ms = [float(run["docstore_cpu_ms_per_package"]) for run in runs]  # type: ignore[arg-type]
    client_ms = [float(run["bench_client_cpu_ms_per_package"]) for run in runs]  # type: ignore[arg-type]
    right.bar(labels, store_ms, label="docstore")
    right.bar(labels, client_ms, bottom=store_ms, label="bench client")
    budget = 1000 * (os.cpu_count() or 1) / 100
    right.axhline(budget, color="grey", ls="--", lw=1)
    right.text(
        0.5,
        budget,
        f"all {os.cpu_count()} cores at 100/s",
        color="grey",
        fontsize=8,
        va="bottom",
        ha="center",
    )
    right.set_ylabel("CPU ms per package")
    right.legend(loc="lower right", fontsize=8)
    right.set_title(f"40 MB package: RSS growth {mem.get('rss_growth_ratio')}x (< 3x)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
