"""`make chaos`: faults under load; afterwards every accepted document reached every recipient
exactly once and every acknowledged status is intact.

Under a steady load of signed documents (and recipients posting 03 on what they received):
SIGKILL each service in turn and restart it, restart the Kafka broker, restart PostgreSQL.
Submissions that fail while something is down are retried with the same Idempotency-Key, as an
agency's software would. Then the audit: inboxes from the start, each document's per-recipient
state, and the statistics service's received counts.

    .venv/bin/python chaos/run.py [--rate 2] [--pause 4]

PostgreSQL runs on its own port (LIENTHONG_CHAOS_PGPORT, default 55952) because it is restarted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from pipeline_load import InboxWatcher, Ledger, LoadGenerator, signed_pdfs
from pipeline_stack import AGENCIES, Ports, Stack, default_ports, infra, running_stack

from lienthong_common.mtls import local_tls
from lienthong_sdk.client import ApiError, LienthongClient
from lienthong_sdk.local import ALL_SERVICES

ROOT = Path(__file__).resolve().parent.parent


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Phases:
    """Elapsed seconds per phase, printed as each ends (where a run's time goes)."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - started
            self.seconds[name] = round(self.seconds.get(name, 0.0) + took, 1)
            say(f"-- {name}: {took:.1f}s (run so far {time.monotonic() - self.began:.0f}s)")


class StatusPoster:
    """Recipients acknowledge (03) part of what reaches them; acknowledged posts are remembered."""

    def __init__(self, stack: Stack, ledger: Ledger, share: float = 0.3) -> None:
        self.stack = stack
        self.ledger = ledger
        self.share = share
        self.random = random.Random(3)
        self.acknowledged: set[tuple[str, str]] = set()
        self.attempted: set[tuple[str, str]] = set()
        self.failures: Counter[str] = Counter()
        self.clients: dict[str, LienthongClient] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-poster", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        for client in self.clients.values():
            client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.ledger.lock:
                candidates = [pair for pair in self.ledger.seen if pair not in self.attempted]
            for doc_id, code in candidates:
                if self._stop.is_set():
                    break  # what was acknowledged so far is what the audit checks
                self.attempted.add((doc_id, code))
                if self.random.random() > self.share:
                    continue
                self._post(doc_id, code)
            self._stop.wait(1.0)

    def _post(self, doc_id: str, code: str) -> None:
        client = self.clients.setdefault(code, self.stack.client(code))
        for attempt in range(40):
            try:
                client.post_status(doc_id, "03", "Đã tiếp nhận (kiểm thử sự cố)")
                self.acknowledged.add((doc_id, code))
                return
            except ApiError as error:
                if error.status in (0, 500, 502, 503, 504):
                    time.sleep(min(0.5 * (attempt + 1), 3.0))
                    continue
                self.failures[f"{error.status}: {error.detail[:80]}"] += 1
                return
        self.failures["gave up after retries"] += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=2.0, help="documents per second offered")
    parser.add_argument("--pause", type=float, default=4.0, help="seconds of load between faults")
    parser.add_argument("--out", type=Path, default=ROOT / "chaos" / "results" / "latest.json")
    args = parser.parse_args(argv)
    base = default_ports()
    ports = Ports(
        kafka=base.kafka,
        port_base=base.port_base,
        pgport=int(os.environ.get("LIENTHONG_CHAOS_PGPORT", "55952")),
    )
    began = time.monotonic()
    actions: list[dict[str, Any]] = []

    def act(what: str, fn: Any) -> None:
        started = time.monotonic()
        say(what)
        fn()
        actions.append({"action": what, "seconds": round(time.monotonic() - started, 1)})

    phases = Phases()
    say(
        f"starting Kafka :{ports.kafka}, PostgreSQL :{ports.pgport} (private), "
        f"services from :{ports.port_base}"
    )
    started = time.monotonic()
    with running_stack(ports) as stack:
        phases.seconds["start: Kafka (fresh), PostgreSQL, six services, demo directory"] = round(
            time.monotonic() - started, 1
        )
        say(f"-- start: {time.monotonic() - started:.1f}s")
        with phases("sign PDFs, fetch tokens"):
            pdfs = signed_pdfs(stack.data_dir, 4)
            ledger = Ledger()
            load = LoadGenerator(stack, ledger, pdfs, workers=8)
            load.prefetch_tokens()  # the directory's scrypt check once per sender, not per worker
        # Routing lists inboxes to the gateway only: the watchers call as the gateway.
        gateway_tls = local_tls(stack.local.data_dir, "gateway")
        watcher = InboxWatcher(
            stack.local.grpc_address("routing"), ledger, AGENCIES, tls=gateway_tls, interval=0.5
        )
        watcher.start()
        statuses = StatusPoster(stack, ledger)
        statuses.start()
        # Load runs until the faults are over (the generator stops when its counter is pushed
        # past the end below); this only caps it.
        fault_seconds = 1200.0
        loader = threading.Thread(
            target=load.run,
            kwargs={"rate": args.rate, "seconds": fault_seconds, "step": "chaos", "retry_503": True},
            daemon=True,
        )
        say(f"load: {args.rate}/s until the faults are over, recipients acknowledging ~30%")
        loader.start()

        def bounce(service: str) -> None:
            stack.local.kill(service, signal.SIGKILL)  # returns once the process is gone
            time.sleep(1)
            stack.local.start_service(service)
            stack.local.wait_ready(timeout=90, services=(service,))

        with phases("faults under load"):
            time.sleep(args.pause)
            try:
                for service in ALL_SERVICES:
                    act(f"SIGKILL {service}, restart it", lambda s=service: bounce(s))
                    time.sleep(args.pause)
                act(
                    "restart the Kafka broker (infra/kafka.sh restart)",
                    lambda: infra("kafka.sh", "restart", env=ports.kafka_env),
                )
                time.sleep(args.pause * 2)
                act(
                    "restart PostgreSQL (infra/postgres.sh restart)",
                    lambda: infra("postgres.sh", "restart", env=ports.pg_env),
                )
                time.sleep(args.pause * 2)
            finally:
                # Stop offering load: the generator stops at its next due document.
                load.counter = 10**9
                loader.join(120)
        say(f"load stopped: {len(ledger.sent)} documents accepted; waiting for every delivery")
        with phases("drain: every accepted document in every inbox"):
            waited = drain(ledger)
        with phases("audit: statuses posted, inboxes from the start"):
            statuses.stop()
            watcher.poll_once()
            watcher.stop()
            auditor = InboxWatcher(stack.local.grpc_address("routing"), ledger, AGENCIES, tls=gateway_tls)
            counts = auditor.full_scan()
            auditor.channel.close()
        with phases("audit: every document's per-recipient states"):
            state_problems = audit_states(stack, ledger, statuses.acknowledged)
        with phases("audit: statistics' received counts"):
            stats_problems = audit_statistics(stack, counts)
        load.close()
        stopping = time.monotonic()
    infra("postgres.sh", "stop", env=ports.pg_env)  # chaos's own server, not the shared one
    phases.seconds["teardown"] = round(time.monotonic() - stopping, 1)

    expected = {(s.doc_id, code) for s in ledger.sent.values() for code in s.recipients}
    lost = sorted(pair for pair in expected if counts.get(pair, 0) == 0)
    duplicated = sorted(pair for pair, n in counts.items() if n > 1)
    result = {
        "actions": actions,
        "accepted": len(ledger.sent),
        "deliveries_expected": len(expected),
        "deliveries_found": sum(1 for pair in expected if counts.get(pair, 0) >= 1),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "submit_errors": dict(ledger.errors),
        "statuses_acknowledged": len(statuses.acknowledged),
        "status_post_failures": dict(statuses.failures),
        "status_problems": state_problems[:20],
        "statistics_problems": stats_problems[:20],
        "drain_seconds": round(waited, 1),
        "phases": phases.seconds,
        "wall_seconds": round(time.monotonic() - began, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print()
    for a in actions:
        print(f"  {a['action']:<65} {a['seconds']:>6.1f}s")
    print()
    for name, seconds in phases.seconds.items():
        print(f"  phase: {name:<58} {seconds:>6.1f}s")
    print()
    print(f"  documents accepted                {result['accepted']}")
    print(
        f"  deliveries expected / found       {result['deliveries_expected']} / {result['deliveries_found']}"
    )
    print(f"  lost / duplicated                 {result['lost']} / {result['duplicated']}")
    print(
        f"  statuses acknowledged (03)        {result['statuses_acknowledged']}, "
        f"states wrong: {len(state_problems)}"
    )
    print(f"  statistics mismatches             {len(stats_problems)}")
    print(f"  submit errors (not retried)       {sum(ledger.errors.values())}")
    ok = not lost and not duplicated and not state_problems and not stats_problems and not ledger.errors
    over = " - over the 10-minute bound" if result["wall_seconds"] > 600 else ""
    verdict = "PASSED" if ok else "FAILED"
    print(f"\nchaos: {verdict} ({result['wall_seconds']:.0f}s{over}); details in {args.out}")
    return 0 if ok else 1


def drain(ledger: Ledger, *, stall: float = 90.0, cap: float = 300.0) -> float:
    """Wait until every accepted document is in all its inboxes, while deliveries keep coming."""
    started = time.monotonic()
    last_change, last_pending, last_said = started, -1, 0.0
    while time.monotonic() - started < cap:
        _, pending = ledger.latencies()
        if pending == 0:
            break
        if pending != last_pending:
            last_pending, last_change = pending, time.monotonic()
            if last_change - last_said > 30:
                say(f"  {pending} documents not yet in every inbox")
                last_said = last_change
        elif time.monotonic() - last_change > stall:
            say(f"  no progress for {stall:.0f}s with {pending} pending: auditing now")
            break
        time.sleep(0.5)
    return time.monotonic() - started


def audit_states(stack: Stack, ledger: Ledger, acknowledged: set[tuple[str, str]]) -> list[str]:
    """Every delivery is in a live state; every acknowledged 03 is recorded exactly once.
    (Read by 4 threads: one GET /v1/documents per document, through the gateway as senders.)"""
    senders: dict[str, LienthongClient] = {}
    for sent in ledger.sent.values():
        if sent.sender not in senders:
            senders[sent.sender] = stack.client(sent.sender)
            senders[sent.sender].token()

    def check(sent: Any) -> list[str]:
        problems: list[str] = []
        doc = senders[sent.sender].document(sent.doc_id)
        states = {r["code"]: r for r in doc["recipients"]}
        for code in sent.recipients:
            r = states.get(code)
            if r is None:
                problems.append(f"{sent.doc_id}: no delivery for {code}")
                continue
            codes = [t["code"] for t in doc["timeline"] if t["recipient"] == code and t["code"] == "03"]
            if (sent.doc_id, code) in acknowledged:
                if r["state"] != "accepted" or len(codes) != 1:
                    problems.append(f"{sent.doc_id}/{code}: acknowledged 03 but {r['state']}, {codes}")
            elif r["state"] not in ("delivered", "arrived", "accepted"):
                problems.append(f"{sent.doc_id}/{code}: unexpected state {r['state']}")
        return problems

    try:
        with ThreadPoolExecutor(4) as pool:
            return [p for found in pool.map(check, list(ledger.sent.values())) for p in found]
    finally:
        for c in senders.values():
            c.close()


def audit_statistics(stack: Stack, counts: dict[tuple[str, str], int]) -> list[str]:
    """The statistics service counted each delivery once (fresh databases: counts are exact)."""
    per_agency: Counter[str] = Counter(code for (_doc, code) in counts)
    with stack.client(AGENCIES[2]) as client:
        deadline = time.monotonic() + 60
        while True:
            report = client.report()
            got = {a["agency_code"]: int(a.get("documents_received", 0)) for a in report.get("agencies", [])}
            problems = [
                f"{code}: statistics {got.get(code, 0)} received, inboxes hold {n}"
                for code, n in per_agency.items()
                if got.get(code, 0) != n
            ]
            if not problems or time.monotonic() > deadline:
                return problems
            time.sleep(1)


if __name__ == "__main__":
    raise SystemExit(main())
