"""Gateway overhead: the latency the gateway adds to a 100 KB submission, downstream excluded.

The real application (create_app) runs under a real uvicorn on a free port with in-process fake
platform services that answer at once (services/gateway/tests/gateway_fakes.py), so what is
measured is HTTP parsing, authentication (JWT + credential-version check), rate limiting, the
body limit, edXML parsing, the docstore stream and the JSON reply: the gateway's own work.
Driven sequentially by httpx from this process (client time is included, so the figures are an
upper bound of the gateway's share).

    .venv/bin/python bench/bench_gateway.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "services" / "gateway" / "tests"))

from gateway_fakes import DEPARTMENT, PROVINCE, fake_clients, gateway_settings, secret_of  # noqa: E402

from lienthong_common import edxml  # noqa: E402
from lienthong_gateway.app import create_app  # noqa: E402

TARGET_BYTES = 100 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def package_of_size(size: int, number: int) -> bytes:
    header = edxml.MessageHeader(
        sender=edxml.Organization(organ_id=PROVINCE, organ_name="UBND tỉnh Quảng Ninh"),
        recipients=[edxml.Organization(organ_id=DEPARTMENT)],
        code_number=str(number),
        code_notation="UBND-VP",
        promulgation_place="Hạ Long",
        promulgation_date=__import__("datetime").date(2026, 1, 5),
        document_type=1,
        document_type_name="Công văn",
        subject="Đo độ trễ của cổng",
    )
    # base64 grows the attachment by 4/3: size the PDF so the package is about `size` bytes.
    data = b"%PDF-1.7\n" + bytes(range(256)) * ((size * 3 // 4 - 2000) // 256)
    attachment = edxml.Attachment(
        content_id="cid:1", name="cv.pdf", content_type="application/pdf", data=data
    )
    return edxml.build_package(edxml.EdxmlPackage(header=header, attachments=[attachment]))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    requests = 100 if args.quick else 1000
    warmup = 10 if args.quick else 50

    settings = gateway_settings(rate_limit_per_second=0)
    app = create_app(settings, clients=fake_clients())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("uvicorn did not start")
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            token = http.post(
                "/v1/oauth/token", data={"client_id": PROVINCE, "client_secret": secret_of(PROVINCE)}
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}
            packages = [package_of_size(TARGET_BYTES, n) for n in range(requests + warmup)]
            size = len(packages[0])
            timings: list[float] = []
            started = time.perf_counter()
            for n, package in enumerate(packages):
                t0 = time.perf_counter()
                reply = http.post(
                    "/v1/documents",
                    content=package,
                    headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
                )
                elapsed = time.perf_counter() - t0
                if reply.status_code != 202:
                    raise SystemExit(f"submission failed: {reply.status_code} {reply.text}")
                if n >= warmup:
                    timings.append(elapsed * 1000)
            wall = time.perf_counter() - started
    finally:
        server.should_exit = True
        thread.join(timeout=10)

    result = {
        "benchmark": "gateway_overhead",
        "package_bytes": size,
        "requests": len(timings),
        "p50_ms": round(statistics.median(timings), 2),
        "p90_ms": round(percentile(timings, 0.90), 2),
        "p99_ms": round(percentile(timings, 0.99), 2),
        "max_ms": round(max(timings), 2),
        "throughput_per_s": round((requests + warmup) / wall, 1),
        "quick": args.quick,
    }
    print(f"gateway overhead, {size / 1024:.0f} KB edXML submission, downstream answered instantly")
    print(f"{'requests':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s':>8}")
    print(
        f"{result['requests']:>10} {result['p50_ms']:>8} {result['p90_ms']:>8} {result['p99_ms']:>8} "
        f"{result['max_ms']:>8} {result['throughput_per_s']:>8}"
    )
    out = ROOT / "bench" / "results" / "gateway.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
