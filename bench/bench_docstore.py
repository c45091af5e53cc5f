"""Docstore benchmark: 1 MB packages stored per second through gRPC, and peak RSS growth while
storing and reading back a 40 MB package, against a real `lienthong-docstore` process (SQLite,
its own data dir, a free port; Kafka is not needed: the outbox just accumulates).

Throughput is measured with several concurrent client streams (`--clients`, default 8: a
gateway under load has many uploads in flight), each uploading its next package as soon as the
previous one is acknowledged, in 256 KiB messages as the gateway sends them (`--chunk-kib`).
The client count, message size, load averages and both processes' CPU per package are in the
output and the JSON; the docstore process id is printed first (for py-spy).

    .venv/bin/python bench/bench_docstore.py [--quick] [--clients N] [--chunk-kib K] [--keep]
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
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
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc

from lienthong.docstore.v1 import docstore_pb2, docstore_pb2_grpc
from lienthong_common.edxml import Attachment, EdxmlPackage, MessageHeader, Organization, build_package
from lienthong_common.grpcutil import health_status

ROOT = Path(__file__).resolve().parent.parent
SENDER = "000.00.00.H49"
CHUNK = 256 * 1024  # what the gateway sends per message
CLIENTS = 8


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


def requests(data: bytes, chunk: int = CHUNK) -> Iterator[docstore_pb2.PutPackageRequest]:
    yield docstore_pb2.PutPackageRequest(
        header=docstore_pb2.PackageHeader(id=str(uuid.uuid4()), sender_code=SENDER, declared_size=len(data))
    )
    view = memoryview(data)
    for offset in range(0, len(data), chunk):
        yield docstore_pb2.PutPackageRequest(chunk=bytes(view[offset : offset + chunk]))


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clients", type=int, default=CLIENTS, help="concurrent upload streams")
    parser.add_argument("--chunk-kib", type=int, default=CHUNK // 1024, help="gRPC message size")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (blobs, database, log)")
    args = parser.parse_args()
    count, seconds, big_mb = (300, 6.0, 40) if args.quick else (2000, 30.0, 40)
    clients, chunk = args.clients, args.chunk_kib * 1024

    data_dir = Path(tempfile.mkdtemp(prefix="bench-docstore-"))
    port = free_port()
    env = {
        **os.environ,
        "LIENTHONG_DATA_DIR": str(data_dir),
        "LIENTHONG_GRPC__PORT": str(port),
        "LIENTHONG_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",  # nothing listens
        "LIENTHONG_KAFKA__ENSURE_TOPICS": "false",
        "LIENTHONG_DOCSTORE__MAX_PACKAGE_BYTES": str(60 * 1024 * 1024),
    }
    env.pop("DATABASE_URL", None)
    exe = str(Path(sys.executable).parent / "lienthong-docstore")
    subprocess.run([exe, "migrate"], env=env, check=True, capture_output=True)
    log = (data_dir / "docstore.log").open("wb")
    proc = subprocess.Popen(
        [exe, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    address = f"127.0.0.1:{port}"
    print(f"docstore pid {proc.pid}, data in {data_dir}", file=sys.stderr, flush=True)
    try:
        deadline = time.monotonic() + 30
        channel = grpc.insecure_channel(
            address, options=[("grpc.max_receive_message_length", 8 * 1024 * 1024)]
        )
        stub = docstore_pb2_grpc.DocumentStoreStub(channel)
        while time.monotonic() < deadline:  # health says NOT_SERVING without Kafka; RPCs work
            if health_status(address, timeout=1.0) in ("SERVING", "NOT_SERVING"):
                break
            time.sleep(0.2)
        packages = [package(1024 * 1024, n) for n in range(16)]
        stub.PutPackage(requests(package(1024, 99999)), timeout=30)  # warm up

        # (a) throughput: 1 MB packages from `clients` concurrent streams (a gateway under load
        # has many requests in flight), distinct DocumentIds; each client uploads the next
        # package as soon as its previous one is acknowledged, until `count` or `seconds`.
        counter = itertools.count()
        lock = threading.Lock()
        done: list[float] = []
        cpu_before = cpu_seconds(proc.pid)
        client_before = time.process_time()
        started = time.perf_counter()
        stop_at = started + seconds

        def client() -> None:
            while time.perf_counter() < stop_at:
                with lock:
                    n = next(counter)
                if n >= count:
                    return
                reply = stub.PutPackage(requests(unique(packages[n % len(packages)], n), chunk), timeout=60)
                assert not reply.duplicate, "every package must be new, or the bench measures dedup"
                with lock:
                    done.append(time.perf_counter())

        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            for f in [pool.submit(client) for _ in range(clients)]:
                f.result()
        stored = len(done)
        elapsed = max(done) - started
        rate = stored / elapsed
        cpu_ms = (cpu_seconds(proc.pid) - cpu_before) * 1000 / stored
        client_cpu_ms = (time.process_time() - client_before) * 1000 / stored
        load = os.getloadavg()

        # (b) memory: one 40 MB package stored and read back
        big = package(big_mb * 1024 * 1024, 1_000_000)
        baseline = rss_kib(proc.pid, "VmRSS")
        exact = reset_hwm(proc.pid)
        reply = stub.PutPackage(requests(big), timeout=300)
        received = sum(
            len(c.data)
            for c in stub.GetPackage(docstore_pb2.GetDocumentRequest(id=reply.document.id), timeout=300)
        )
        assert received == len(big), (received, len(big))
        peak = rss_kib(proc.pid, "VmHWM")
        growth = (peak - baseline) * 1024
        ratio = growth / len(big)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)

    result = {
        "packages_per_second_1mb": round(rate, 1),
        "packages_stored": stored,
        "seconds": round(elapsed, 2),
        "concurrent_clients": clients,
        "chunk_bytes": chunk,
        "docstore_cpu_ms_per_package": round(cpu_ms, 1),
        "bench_client_cpu_ms_per_package": round(client_cpu_ms, 1),
        "load_average": [round(x, 2) for x in load],
        "cpu_count": os.cpu_count(),
        "large_package_bytes": len(big),
        "rss_baseline_bytes": baseline * 1024,
        "rss_peak_growth_bytes": growth,
        "rss_growth_ratio": round(ratio, 2),
        "hwm_reset": exact,
        "targets": {"packages_per_second_1mb": 100, "rss_growth_ratio_max": 3.0},
    }
    print(f"{'metric':<34}{'value':>14}{'target':>10}")
    print(f"{'1 MB packages stored / s':<34}{rate:>14.1f}{'>= 100':>10}")
    print(f"{'  concurrent client streams':<34}{clients:>14}")
    print(f"{'  gRPC chunk (KiB)':<34}{chunk // 1024:>14}")
    print(f"{'  packages stored':<34}{stored:>14}")
    print(f"{'  docstore CPU ms / package':<34}{cpu_ms:>14.1f}")
    print(f"{'  bench client CPU ms / package':<34}{client_cpu_ms:>14.1f}")
    print(f"{'  load average 1/5/15 min':<34}{' / '.join(f'{x:.1f}' for x in load):>14}")
    print(f"{'40 MB store+read RSS growth (MB)':<34}{growth / 2**20:>14.1f}")
    print(f"{'  growth / package size':<34}{ratio:>14.2f}{'< 3':>10}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "docstore.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
