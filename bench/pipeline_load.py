"""The pipeline benchmark's documents and load: signed PDFs, packages, the verify-only
ceiling, the open-loop load generator, the inbox watcher and each step's figures."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from pipeline_stack import AGENCIES, SENDERS, Progress, Stack

from lienthong.routing.v1 import routing_pb2, routing_pb2_grpc
from lienthong_common.grpcutil import channel
from lienthong_common.mtls import ClientTls
from lienthong_common.testing import one_pdf_package
from lienthong_sdk.client import ApiError, LienthongClient
from lienthong_sdk.demo import identity_dir

# ----------------------------------------------------------------------------- documents


def _sign_batch(args: tuple[str, str, list[int]]) -> list[tuple[str, bytes]]:
    from lienthong_common.pades import sign_pdf
    from lienthong_common.pdfgen import make_pdf
    from lienthong_common.pki import load_identity

    folder, code, numbers = args
    identity = load_identity(Path(folder), code)
    out = []
    for n in numbers:
        pdf = make_pdf(f"Công văn số {n} của {code}", ["Kính gửi các cơ quan, đơn vị."], pad_to_bytes=100_000)
        out.append((code, sign_pdf(pdf, identity, reason="Ban hành", location="Hạ Long")))
    return out


def signed_pdfs(data_dir: Path, per_sender: int, senders: list[str] = SENDERS) -> dict[str, list[bytes]]:
    """Distinct ~100 KB PDFs signed by each sender's registered certificate (2 processes)."""
    folder = str(identity_dir(data_dir))
    jobs = [(folder, code, list(range(i, per_sender, 2))) for code in senders for i in range(2)]
    pool: dict[str, list[bytes]] = defaultdict(list)
    with multiprocessing.get_context("spawn").Pool(2) as workers:
        for batch in workers.imap_unordered(_sign_batch, jobs):
            for code, pdf in batch:
                pool[code].append(pdf)
    return dict(pool)


def package_for(sender: str, recipients: list[str], pdf: bytes, number: int) -> bytes:
    return one_pdf_package(
        sender=sender,
        recipients=recipients,
        pdf=pdf,
        subject=f"Đo tải trục liên thông, văn bản {number}",
        notation=f"BENCH-{uuid.uuid4().hex[:8]}",
        number=number,
    )


# ----------------------------------------------------------------------------- verify-only


_VERIFIER: Any = None


def _init_verifier(root_pem: bytes) -> None:
    global _VERIFIER
    from lienthong_common.outbound import OutboundPolicy
    from lienthong_common.pades import PdfVerifier, accelerators

    accelerators.install()  # as sigverify's workers do: the verify-only figure is theirs
    # sigverify's local allow-list (`lienthong run`): any CRL the corpus names is on loopback
    local = OutboundPolicy.from_cidrs(["127.0.0.0/8"])
    _VERIFIER = PdfVerifier([root_pem], revocation="soft-fail", outbound=local)


def _verify_one(pdf: bytes) -> str:
    return str(_VERIFIER.verify(pdf).indication)


def verify_only(root_pem: bytes, pdfs: list[bytes], seconds: float, processes: int = 2) -> dict[str, Any]:
    """The same PDFs through PdfVerifier alone, `processes` processes, for about `seconds`."""
    with multiprocessing.get_context("spawn").Pool(processes, _init_verifier, (root_pem,)) as workers:
        for _ in workers.imap_unordered(_verify_one, pdfs[: processes * 2]):
            pass  # warm up imports and accelerators
        progress = Progress("verify-only", seconds)
        done = 0
        verdicts: Counter[str] = Counter()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            for verdict in workers.imap_unordered(_verify_one, pdfs, chunksize=4):
                verdicts[verdict] += 1
                done += 1
            progress.update(time.perf_counter() - start, f"{done} PDFs")
        elapsed = time.perf_counter() - start
    progress.close(f"{done} PDFs, {done / elapsed:.1f}/s")
    return {
        "docs": done,
        "seconds": round(elapsed, 2),
        "docs_per_s": round(done / elapsed, 2),
        "processes": processes,
        "verdicts": dict(verdicts),
    }


# ----------------------------------------------------------------------------- load and watch


@dataclass
class Sent:
    doc_id: str
    sender: str
    recipients: list[str]
    submitted_at: float  # wall clock, before the POST
    step: str


@dataclass
class Ledger:
    """Everything submitted and everything seen in the inboxes."""

    sent: dict[str, Sent] = field(default_factory=dict)
    seen: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def complete_at(self, sent: Sent) -> float | None:
        times = []
        for code in sent.recipients:
            seen = self.seen.get((sent.doc_id, code))
            if not seen:
                return None
            times.append(min(seen))
        return max(times)

    def latencies(self, step: str | None = None) -> tuple[list[float], int]:
        """Latencies (s) of the completed documents of a step, and how many are not complete."""
        out, pending = [], 0
        with self.lock:
            docs = [s for s in self.sent.values() if step is None or s.step == step]
            for s in docs:
                at = self.complete_at(s)
                if at is None:
                    pending += 1
                else:
                    out.append(max(0.0, at - s.submitted_at))
        return out, pending


class InboxWatcher:
    """Pulls every agency's inbox from routing, cursor by cursor, recording delivery times."""

    def __init__(
        self, address: str, ledger: Ledger, agencies: list[str], *, tls: ClientTls, interval: float = 1.0
    ) -> None:
        """`tls`: the gateway's identity (routing lets only the gateway list inboxes)."""
        self.ledger = ledger
        self.agencies = agencies
        self.interval = interval
        self.cursors = dict.fromkeys(agencies, "")
        self.channel = channel(address, tls=tls, peer="routing")
        self.stub = routing_pb2_grpc.RoutingStub(self.channel)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbox-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.channel.close()

    def poll_once(self) -> int:
        new = 0
        for code in self.agencies:
            while True:
                try:
                    page = self.stub.ListInbox(
                        routing_pb2.InboxRequest(agency_code=code, cursor=self.cursors[code], limit=500),
                        timeout=10,
                    )
                except grpc.RpcError:
                    break  # routing restarting (chaos) or busy: next round
                with self.ledger.lock:
                    for item in page.items:
                        at = item.delivered_at.seconds + item.delivered_at.nanos / 1e9
                        self.ledger.seen[(item.document_id, code)].append(at)
                new += len(page.items)
                if not page.items or page.next_cursor == self.cursors[code]:
                    break
                self.cursors[code] = page.next_cursor
                if len(page.items) < 500:
                    break
        return new

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval)

    def full_scan(self) -> dict[tuple[str, str], int]:
        """Count every (document, recipient) in every inbox from the start: the final audit."""
        counts: Counter[tuple[str, str]] = Counter()
        for code in self.agencies:
            cursor = ""
            while True:
                page = self.stub.ListInbox(
                    routing_pb2.InboxRequest(agency_code=code, cursor=cursor, limit=500), timeout=30
                )
                for item in page.items:
                    counts[(item.document_id, code)] += 1
                if not page.items or page.next_cursor == cursor:
                    break
                cursor = page.next_cursor
        return dict(counts)


class LoadGenerator:
    """Open-loop load: document i is due at start + i/rate; workers submit when it is due."""

    def __init__(
        self,
        stack: Stack,
        ledger: Ledger,
        pdfs: dict[str, list[bytes]],
        *,
        workers: int = 24,
        seed_value: int = 11,
    ) -> None:
        self.stack = stack
        self.ledger = ledger
        self.pdfs = pdfs
        self.workers = workers
        self.random = random.Random(seed_value)
        self.counter = 0
        self.number = 0
        self._lock = threading.Lock()
        self.clients: dict[tuple[int, str], LienthongClient] = {}

    def _client(self, worker: int, sender: str) -> LienthongClient:
        key = (worker, sender)
        if key not in self.clients:
            self.clients[key] = self.stack.client(sender)
        return self.clients[key]

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def prefetch_tokens(self, valid_for: float = 150.0) -> int:
        """Give every (worker, sender) client a token before a measured step, one token request
        per sender shared by its clients, so no step pays for the directory's scrypt check of a
        client secret (`workers` x senders token requests otherwise). Returns tokens fetched."""
        fetched = 0
        for sender in self.pdfs:
            clients = [self._client(worker, sender) for worker in range(self.workers)]
            if all(c._token and c._token_expires - 30 > time.time() + valid_for for c in clients):
                continue
            first = clients[0]
            first._token = ""
            first.token()
            fetched += 1
            for client in clients[1:]:
                client._token, client._token_expires = first._token, first._token_expires
        return fetched

    def _next(self) -> tuple[int, str, list[str], bytes, int]:
        with self._lock:
            i = self.counter
            self.counter += 1
            self.number += 1
            sender = self.random.choice(list(self.pdfs))
            others = [a for a in AGENCIES if a != sender]
            recipients = self.random.sample(others, self.random.choice([3, 4]))
            pdf = self.random.choice(self.pdfs[sender])
            return i, sender, recipients, pdf, self.number

    def run(self, *, rate: float, seconds: float, step: str, retry_503: bool = False) -> dict[str, Any]:
        """Offer `rate` documents/s for `seconds`; returns what was offered and accepted."""
        self.counter = 0
        start = time.monotonic()
        total = int(rate * seconds)
        accepted = [0]
        rejected: Counter[str] = Counter()
        progress = Progress(f"{step} {rate:.0f}/s", seconds)

        def worker(index: int) -> None:
            while True:
                i, sender, recipients, pdf, number = self._next()
                if i >= total:
                    return
                due = start + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                body = package_for(sender, recipients, pdf, number)
                key = uuid.uuid4().hex
                for attempt in range(30):
                    submitted_at = time.time()
                    try:
                        reply = self._client(index, sender).send_package(body, idempotency_key=key)
                    except ApiError as error:
                        if retry_503 and (error.status in (0, 502, 503, 504) or error.status >= 500):
                            time.sleep(min(0.2 * (attempt + 1), 2.0))
                            continue
                        with self.ledger.lock:
                            rejected[f"{error.status}"] += 1
                            self.ledger.errors[f"submit {error.status}: {error.detail[:80]}"] += 1
                        break
                    with self.ledger.lock:
                        # A retried key answers with the first document: count it once.
                        if reply["id"] not in self.ledger.sent:
                            self.ledger.sent[reply["id"]] = Sent(
                                reply["id"], sender, recipients, submitted_at, step
                            )
                        accepted[0] += 1
                    break

        threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(self.workers)]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            done, _ = self.ledger.latencies(step)
            progress.update(time.monotonic() - start, f"sent {accepted[0]}/{total} in-inbox {len(done)}")
            time.sleep(0.2)
        elapsed = time.monotonic() - start
        done, _pending = self.ledger.latencies(step)
        progress.close(f"sent {accepted[0]}/{total} in {elapsed:.1f}s, in-inbox {len(done)}")
        return {
            "offered_rate": rate,
            "offered": total,
            "accepted": accepted[0],
            "rejected": dict(rejected),
            "submit_seconds": round(elapsed, 2),
            "achieved_rate": round(accepted[0] / elapsed, 2) if elapsed else 0.0,
        }


def wait_drained(ledger: Ledger, step: str | None, timeout: float) -> float:
    """Wait until every accepted document of `step` is in all its inboxes; seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        _, pending = ledger.latencies(step)
        if pending == 0:
            break
        time.sleep(0.25)
    return time.monotonic() - start


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def step_figures(ledger: Ledger, step: str, run: dict[str, Any]) -> dict[str, Any]:
    lat, pending = ledger.latencies(step)
    with ledger.lock:
        docs = [s for s in ledger.sent.values() if s.step == step]
        first = min((s.submitted_at for s in docs), default=0.0)
        last_done = max((ledger.complete_at(s) or 0.0 for s in docs), default=0.0)
    span = max(last_done - first, 1e-9)
    return {
        **run,
        "delivered": len(lat),
        "pending": pending,
        "delivered_rate": round(len(lat) / span, 2) if lat else 0.0,
        "p50_ms": round(percentile(lat, 50) * 1000, 1),
        "p95_ms": round(percentile(lat, 95) * 1000, 1),
        "p99_ms": round(percentile(lat, 99) * 1000, 1),
        "max_ms": round(max(lat) * 1000, 1) if lat else None,
    }


def sustainable(fig: dict[str, Any], drain_seconds: float) -> bool:
    """The platform kept up: it took the load, delivered it, and had no backlog left over."""
    return (
        fig["accepted"] >= 0.95 * fig["offered"]
        and fig["pending"] == 0
        and fig["delivered_rate"] >= 0.9 * fig["offered_rate"]
        and drain_seconds <= 5.0
        and fig["p99_ms"] <= 10_000
    )
