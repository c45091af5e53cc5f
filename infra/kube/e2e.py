"""`make kube-e2e`: the platform on the kube-local cluster, checked through the cluster.

Run after `make kube-up` (the Makefile target does both, then `make kube-down`). Each check
prints one line; the last line is the summary, `kube-e2e: N passed, N failed`, and the exit
code is non-zero on any failure.

  1. a signed document A -> B with the ordinary CLI (LIENTHONG_URL, LIENTHONG_DATA_DIR=.data/kube),
     verified TOTAL_PASSED, delivered, and B's statuses 03, 05, 06 seen by A;
  2. every service's pod deleted in turn under a steady trickle of documents: each accepted
     document reaches each recipient exactly once (submissions retried with their
     Idempotency-Key, as an agency's software would);
  3. `helm upgrade` to a changed gateway configuration with zero failed requests (rolling,
     readiness-gated), and the migration hook Jobs run and succeed;
  4. `helm rollback` to the previous revision, again with zero failed requests;
  5. NetworkPolicies enforced: a pod without the chart's labels cannot reach directory's gRPC
     port or Kafka, the gateway still reaches directory (and not Kafka, as its policy says);
  6. every pod non-root, read-only root filesystem, no capabilities, no privilege escalation:
     read back from the API and from inside each container (uid, CapEff, a write to /);
  7. examples/dev-minimal.yaml as shipped (SQLite in each pod) Ready with no restarts, then the
     kube-local release put back.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lienthong_sdk.client import ApiError, LienthongClient
from lienthong_sdk.demo import load_credentials

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["gateway", "directory", "docstore", "sigverify", "routing", "statistics"]
SENDER, RECIPIENT = "000.00.00.H49", "000.00.02.H49"
TRICKLE_SENDERS = ["000.00.00.H49", "000.00.02.H49", "000.00.03.H49", "000.00.00.G22"]
TRICKLE_RECIPIENTS = ["000.00.00.G09", "000.00.04.H49", "000.01.03.H49"]


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Env:
    gateway_url: str
    kubeconfig: str
    data_dir: Path
    namespace: str
    release: str
    bin_dir: Path

    def kubectl(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", self.kubeconfig, "-n", self.namespace, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def helm(self, *args: str) -> str:
        result = subprocess.run(
            [str(self.bin_dir / "helm"), "--kubeconfig", self.kubeconfig, "-n", self.namespace, *args],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0:
            raise RuntimeError(f"helm {' '.join(args)}: {result.stderr.strip()[-2000:]}")
        return result.stdout

    def cli(self, *args: str) -> Any:
        env = {**os.environ, "LIENTHONG_URL": self.gateway_url, "LIENTHONG_DATA_DIR": str(self.data_dir)}
        result = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "lienthong"), *args, "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"lienthong {' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}"
            )
        return json.loads(result.stdout)

    def client(self, code: str, **kwargs: Any) -> LienthongClient:
        return LienthongClient(
            self.gateway_url, code, load_credentials(self.data_dir)[code], timeout=30, **kwargs
        )


def wait_until(what: str, predicate: Callable[[], Any], timeout: float = 120, interval: float = 1.0) -> Any:
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        try:
            last = predicate()
            if last:
                return last
        except (ApiError, RuntimeError) as error:
            last = error
        time.sleep(interval)
    raise AssertionError(f"{what}: not after {timeout:.0f} s (last: {last})")


# -- 1. a signed document A -> B with the CLI -------------------------------------------------
def check_signed_document(env: Env) -> str:
    from lienthong_common.pdfgen import make_pdf

    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "congvan.pdf"
        pdf.write_bytes(make_pdf("Công văn thử nghiệm cụm Kubernetes", ["Kính gửi Sở Nội vụ."]))
        signed = Path(tmp) / "congvan-signed.pdf"
        env.cli("sign", str(pdf), "--as", SENDER, "-o", str(signed))
        sent = env.cli(
            "send",
            "--as",
            SENDER,
            "--to",
            RECIPIENT,
            "--subject",
            "Thử nghiệm kube-e2e",
            "--attach",
            str(signed),
        )
    doc_id = sent["id"]
    sender = env.client(SENDER)

    def delivered() -> dict[str, Any] | None:
        doc = sender.document(doc_id)
        states = {r["code"]: r["state"] for r in doc["recipients"]}
        return doc if states.get(RECIPIENT) == "delivered" else None

    doc = wait_until(f"document {doc_id} delivered to {RECIPIENT}", delivered, timeout=120)
    indication = (doc.get("validation") or {}).get("indication")
    assert indication == "TOTAL_PASSED", f"validation {doc.get('validation')}"
    inbox = env.cli("inbox", "--as", RECIPIENT)
    assert doc_id in json.dumps(inbox), f"{doc_id} not in {RECIPIENT}'s inbox"
    for code, state in [("03", "accepted"), ("05", "in_progress"), ("06", "done")]:
        env.cli("status", doc_id, "--as", RECIPIENT, "--code", code)
        wait_until(
            f"{RECIPIENT} {state}",
            lambda s=state: (
                {r["code"]: r["state"] for r in sender.document(doc_id)["recipients"]}[RECIPIENT] == s
            ),
            timeout=60,
        )
    track = env.cli("track", doc_id, "--as", SENDER)
    codes = [t.get("code") or t.get("status_code") for t in track.get("timeline", [])]
    sender.close()
    return f"document {doc_id}: TOTAL_PASSED, delivered, statuses 03/05/06 tracked ({len(codes)} rows)"


# -- the trickle: documents sent steadily, retried with their Idempotency-Key ------------------
@dataclass
class Trickle:
    env: Env
    rate: float = 1.0
    accepted: dict[str, list[str]] = field(default_factory=dict)  # document id -> recipients
    submit_failures: int = 0  # a submission that needed an outer retry (it was never lost)
    abandoned: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=300)

    def _run(self) -> None:
        from lienthong_common.pades import sign_pdf
        from lienthong_common.pdfgen import make_pdf
        from lienthong_common.pki import load_identity
        from lienthong_common.testing import one_pdf_package

        clients = {code: self.env.client(code, retries=2) for code in TRICKLE_SENDERS}
        identities = {
            code: load_identity(self.env.data_dir / "pki" / "agencies", code) for code in TRICKLE_SENDERS
        }
        n = 0
        while not self._stop.is_set():
            n += 1
            sender = TRICKLE_SENDERS[n % len(TRICKLE_SENDERS)]
            recipients = [
                TRICKLE_RECIPIENTS[n % len(TRICKLE_RECIPIENTS)],
                TRICKLE_RECIPIENTS[(n + 1) % len(TRICKLE_RECIPIENTS)],
            ]
            pdf = sign_pdf(
                make_pdf(f"Công văn {n}", ["Kính gửi."]),
                identities[sender],
                reason="Ban hành",
                location="Hạ Long",
            )
            package = one_pdf_package(
                sender=sender,
                recipients=recipients,
                pdf=pdf,
                subject=f"kube-e2e trickle {n}",
                notation=f"KUBE-{uuid.uuid4().hex[:8]}",
                number=n,
            )
            key = str(uuid.uuid4())
            deadline = time.monotonic() + 180
            while True:
                try:
                    reply = clients[sender].send_package(package, idempotency_key=key)
                    self.accepted[reply["id"]] = sorted(r["code"] for r in reply["recipients"])
                    break
                except ApiError as error:
                    self.submit_failures += 1
                    if error.status and error.status < 500 and error.status not in (408, 409, 425, 429):
                        self.abandoned.append(f"{n}: {error}")
                        break
                    if time.monotonic() > deadline:
                        self.abandoned.append(f"{n}: {error}")
                        break
                    time.sleep(2)
            self._stop.wait(1.0 / self.rate)
        for c in clients.values():
            c.close()


def audit(env: Env, accepted: dict[str, list[str]], timeout: float = 300) -> str:
    """Every accepted document delivered to each of its recipients, each inbox holding it once."""
    expected: Counter[tuple[str, str]] = Counter()
    for doc_id, recipients in accepted.items():
        for r in recipients:
            expected[(r, doc_id)] += 1
    clients = {code: env.client(code) for code in TRICKLE_RECIPIENTS}

    def inboxes() -> Counter[tuple[str, str]]:
        seen: Counter[tuple[str, str]] = Counter()
        for code, client in clients.items():
            for item in client.inbox_all(limit=100):
                doc_id = item.get("id") or item.get("document", {}).get("id")
                if doc_id in accepted:
                    seen[(code, doc_id)] += 1
        return seen

    seen = wait_until(
        "every accepted document in its recipients' inboxes",
        lambda: (s := inboxes()) and all(s[k] >= 1 for k in expected) and s,
        timeout=timeout,
        interval=3,
    )
    missing = [k for k in expected if seen[k] == 0]
    duplicated = [k for k, v in seen.items() if v > 1]
    for c in clients.values():
        c.close()
    assert not missing, f"{len(missing)} deliveries lost, e.g. {missing[:3]}"
    assert not duplicated, f"{len(duplicated)} deliveries duplicated, e.g. {duplicated[:3]}"
    return f"{len(accepted)} documents, {sum(expected.values())} deliveries, none lost, none duplicated"


# -- 2. delete each service's pod under the trickle ------------------------------------------
def check_pod_deletion(env: Env) -> str:
    trickle = Trickle(env)
    trickle.start()
    time.sleep(5)
    for svc in SERVICES:
        selector = f"app.kubernetes.io/instance={env.release},app.kubernetes.io/component={svc}"
        pods = env.kubectl("get", "pods", "-l", selector, "-o", "jsonpath={.items[*].metadata.name}").split()
        assert pods, f"no pod for {svc}"
        say(f"  delete pod {pods[0]} ({len(trickle.accepted)} documents accepted so far)")
        env.kubectl("delete", "pod", pods[0], "--wait=true", timeout=120)
        env.kubectl("rollout", "status", f"deployment/{env.release}-{svc}", "--timeout=300s", timeout=320)
        time.sleep(5)
    time.sleep(5)
    trickle.stop()
    assert not trickle.abandoned, f"submissions given up: {trickle.abandoned[:3]}"
    result = audit(env, trickle.accepted)
    return f"6 pods deleted under a trickle: {result} ({trickle.submit_failures} submissions retried)"


# -- 3 and 4. helm upgrade and rollback with zero failed requests ---------------------------
class Prober:
    """Requests through the gateway, no client-side retries: every failure counts."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.ok = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        client = self.env.client(SENDER, retries=0)
        while not self._stop.is_set():
            try:
                client.agencies()
                client.inbox(limit=5)
                self.ok += 2
            except ApiError as error:
                self.failed.append(str(error)[:200])
            self._stop.wait(0.2)
        client.close()

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def migration_jobs_completed(env: Env, since: dt.datetime) -> dict[str, bool]:
    """Per migration hook Job since `since`: created, and completed (from the Jobs' events, which
    outlive the Jobs helm deletes on success)."""
    events = json.loads(
        env.kubectl("get", "events", "--field-selector", "involvedObject.kind=Job", "-o", "json")
    )
    jobs: dict[str, bool] = {}
    for event in events["items"]:
        name = event["involvedObject"]["name"]
        stamp = event.get("lastTimestamp") or event.get("eventTime") or ""
        if not name.endswith("-migrate") or not stamp:
            continue
        when = dt.datetime.fromisoformat(
            stamp.replace("Z", "+00:00").split(".")[0].removesuffix("+00:00") + "+00:00"
        )
        if when < since:
            continue
        jobs[name] = jobs.get(name, False) or event["reason"] == "Completed"
    return jobs


def chart_args(env: Env) -> list[str]:
    return [
        env.release,
        str(ROOT / "charts" / "lienthong"),
        "-f",
        str(ROOT / "charts" / "lienthong" / "examples" / "kube-local.yaml"),
    ]


def gateway_revisions(env: Env) -> set[str]:
    """LIENTHONG_KUBE_E2E_REVISION as each live gateway pod sees it ("" = unset)."""
    pods = json.loads(
        env.kubectl(
            "get",
            "pods",
            "-l",
            f"app.kubernetes.io/instance={env.release},app.kubernetes.io/component=gateway",
            "-o",
            "json",
        )
    )["items"]
    seen = set()
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp") or pod["status"].get("phase") != "Running":
            continue
        out = env.kubectl(
            "exec",
            pod["metadata"]["name"],
            "--",
            "sh",
            "-c",
            "printenv LIENTHONG_KUBE_E2E_REVISION || true",
            check=False,
            timeout=60,
        )
        seen.add(out.strip())
    return seen


def check_upgrade(env: Env) -> str:
    revision = f"kube-e2e-{int(time.time())}"
    since = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=1)
    with Prober(env) as prober:
        env.helm(
            "upgrade",
            *chart_args(env),
            "--wait",
            "--timeout",
            "10m",
            "--set",
            "components.gateway.settings.rate_limit_burst=300",
            "--set",
            f"components.gateway.env.LIENTHONG_KUBE_E2E_REVISION={revision}",
        )
        time.sleep(3)
    seen = gateway_revisions(env)
    assert seen == {revision}, f"the upgraded configuration is not what the gateways run: {seen}"
    assert prober.ok > 0, "no request was made during the upgrade"
    assert not prober.failed, (
        f"{len(prober.failed)} failed requests during the upgrade, e.g. {prober.failed[:2]}"
    )
    jobs = migration_jobs_completed(env, since)
    expected = {f"{env.release}-{s}-migrate" for s in SERVICES if s != "gateway"}
    assert expected <= set(jobs), f"migration Jobs run {sorted(jobs)}, expected {sorted(expected)}"
    failed_jobs = [j for j, ok in jobs.items() if not ok]
    assert not failed_jobs, f"migration Jobs without success: {failed_jobs}"
    return f"helm upgrade: {prober.ok} requests, 0 failed; {len(jobs)} migration hook Jobs completed"


def check_rollback(env: Env) -> str:
    history = json.loads(env.helm("history", env.release, "-o", "json"))
    previous = history[-2]["revision"]
    with Prober(env) as prober:
        env.helm("rollback", env.release, str(previous), "--wait", "--timeout", "10m")
        time.sleep(3)
    seen = gateway_revisions(env)
    assert seen == {""}, f"after the rollback the gateways still run the upgraded configuration: {seen}"
    assert not prober.failed, (
        f"{len(prober.failed)} failed requests during the rollback, e.g. {prober.failed[:2]}"
    )
    return f"helm rollback to revision {previous}: {prober.ok} requests, 0 failed"


# -- 6. NetworkPolicies enforced ----------------------------------------------------------------
PROBE_POD = "kube-e2e-netpol-probe"
CONNECT = (
    "import socket,sys\ntry:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=4).close()"
    "; print('open')\nexcept OSError: print('blocked')"
)


def reach(env: Env, pod: str, ip: str, port: int) -> str:
    out = env.kubectl(
        "exec", pod, "--", "python", "-c", CONNECT, ip, str(port), check=False, timeout=60
    ).strip()
    return out.splitlines()[-1] if out else "exec failed"


def check_network_policy(env: Env) -> str:
    """A pod without the chart's labels cannot reach directory's gRPC port or Kafka; the gateway
    still reaches directory (and, as its policy says, not Kafka); the probe itself is not cut off."""
    image = f"localhost/lienthong-gateway:{os.environ.get('KUBE_IMAGE_TAG', 'kube-local')}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": PROBE_POD, "labels": {"app.kubernetes.io/name": "kube-e2e-probe"}},
        "spec": {
            "automountServiceAccountToken": False,
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "600"],
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    env.kubectl("delete", "pod", PROBE_POD, "--ignore-not-found", "--wait=true", timeout=120)
    subprocess.run(
        [
            str(env.bin_dir / "kubectl"),
            "--kubeconfig",
            env.kubeconfig,
            "-n",
            env.namespace,
            "apply",
            "-f",
            "-",
        ],
        input=json.dumps(manifest),
        text=True,
        check=True,
        capture_output=True,
    )
    try:
        env.kubectl("wait", "--for=condition=Ready", f"pod/{PROBE_POD}", "--timeout=120s", timeout=130)
        ip = {
            name: env.kubectl("get", "service", name, "-o", "jsonpath={.spec.clusterIP}")
            for name in (f"{env.release}-directory", "kafka", f"{env.release}-gateway")
        }
        # Right after the rollback an old gateway pod may still be terminating (phase Running):
        # exec into one that is not being deleted.
        pods = json.loads(
            env.kubectl(
                "get",
                "pods",
                "-l",
                f"app.kubernetes.io/instance={env.release},app.kubernetes.io/component=gateway",
                "--field-selector=status.phase=Running",
                "-o",
                "json",
            )
        )["items"]
        gateway = next(p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp"))
        results = {
            "probe -> directory:50051": (
                reach(env, PROBE_POD, ip[f"{env.release}-directory"], 50051),
                "blocked",
            ),
            "probe -> kafka:9092": (reach(env, PROBE_POD, ip["kafka"], 9092), "blocked"),
            "probe -> gateway:8080": (reach(env, PROBE_POD, ip[f"{env.release}-gateway"], 8080), "open"),
            "gateway -> directory:50051": (
                reach(env, gateway, ip[f"{env.release}-directory"], 50051),
                "open",
            ),
            "gateway -> kafka:9092": (reach(env, gateway, ip["kafka"], 9092), "blocked"),
        }
    finally:
        env.kubectl("delete", "pod", PROBE_POD, "--ignore-not-found", "--wait=false", check=False)
    wrong = {k: got for k, (got, want) in results.items() if got != want}
    assert not wrong, f"not as the policies say: {wrong}"
    return "; ".join(f"{k} {got}" for k, (got, _) in results.items())


# -- 5. locked-down pods, read back from the API and from inside -----------------------------
def check_lockdown(env: Env) -> str:
    pods = json.loads(env.kubectl("get", "pods", "-o", "json"))["items"]
    problems: list[str] = []
    checked = 0
    for pod in pods:
        if pod["status"].get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
            continue  # finished Jobs, and pods of a rollout on their way out
        name = pod["metadata"]["name"]
        psc = pod["spec"].get("securityContext", {})
        for c in pod["spec"]["containers"]:
            sc = c.get("securityContext", {})
            if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                problems.append(f"{name}/{c['name']}: runAsNonRoot not set")
            if not sc.get("readOnlyRootFilesystem"):
                problems.append(f"{name}/{c['name']}: root filesystem writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}/{c['name']}: privilege escalation allowed")
            caps = sc.get("capabilities", {})
            if "ALL" not in caps.get("drop", []) or caps.get("add"):
                problems.append(f"{name}/{c['name']}: capabilities {caps}")
            out = env.kubectl(
                "exec",
                name,
                "-c",
                c["name"],
                "--",
                "sh",
                "-c",
                "id -u; grep CapEff /proc/self/status;"
                " (: > /kube-e2e-probe) 2>/dev/null && echo writable || echo read-only",
                check=False,
                timeout=60,
            ).split()
            if len(out) < 4:
                problems.append(f"{name}/{c['name']}: exec gave {out}")
                continue
            uid, capeff, root_fs = out[0], out[2], out[3]
            if uid == "0":
                problems.append(f"{name}/{c['name']}: runs as uid 0")
            if int(capeff, 16) != 0:
                problems.append(f"{name}/{c['name']}: effective capabilities {capeff}")
            if root_fs != "read-only":
                problems.append(f"{name}/{c['name']}: could write to /")
            checked += 1
    assert checked >= len(SERVICES) + 2, f"only {checked} containers checked"
    assert not problems, "; ".join(problems[:6])
    return f"{checked} containers: non-root, read-only root, CapEff 0, no privilege escalation (API and exec)"


# -- 7. dev-minimal: SQLite in each pod, migrated there ----------------------------------------
def check_dev_minimal(env: Env) -> str:
    """examples/dev-minimal.yaml as shipped (no DATABASE_URL: SQLite in each pod's /data) comes up
    Ready with no restarts (sigverify used to crash-loop on `no such table: trust_anchors`);
    then the kube-local release is put back."""
    absent = "kube-e2e-no-such-secret"  # in development a missing Secret means SQLite
    local = [
        "--set",
        "default.image.registry=localhost",
        "--set",
        "default.image.tag=kube-local",
        "--set",
        "default.image.pullPolicy=Never",
        "--set",
        "networkPolicy.dns.ipBlocks={10.244.0.1/32}",
    ]
    for svc in SERVICES[1:]:
        local += ["--set", f"components.{svc}.database.existingSecret={absent}"]
    example = str(ROOT / "charts" / "lienthong" / "examples" / "dev-minimal.yaml")
    env.helm("uninstall", env.release, "--wait", "--timeout", "5m")
    try:
        env.helm(
            "install",
            env.release,
            str(ROOT / "charts" / "lienthong"),
            "-f",
            example,
            *local,
            "--wait",
            "--timeout",
            "5m",
        )
        pods = json.loads(
            env.kubectl("get", "pods", "-l", f"app.kubernetes.io/instance={env.release}", "-o", "json")
        )
        restarts = {
            p["metadata"]["name"]: sum(
                c.get("restartCount", 0) for c in p["status"].get("containerStatuses", [])
            )
            for p in pods["items"]
            if not p["metadata"].get("deletionTimestamp")
        }
        # The chart's Jobs only: kube-local's own (the Kafka access Job, part-of kube-local) stay.
        jobs = env.kubectl("get", "jobs", "-l", "app.kubernetes.io/part-of=lienthong", "-o", "name").split()
        assert not any(r for r in restarts.values()), f"restarts: {restarts}"
        assert not jobs, f"hook Jobs rendered with migrations.runIn=pod: {jobs}"
        sigverify = next(n for n in restarts if "sigverify" in n)
        log = env.kubectl("logs", sigverify, "-c", "migrate")
        assert "migrated" in log, f"sigverify's migrate init container said: {log[-300:]}"
    finally:
        env.helm("uninstall", env.release, "--wait", "--timeout", "5m")
        env.helm("install", *chart_args(env), "--wait", "--timeout", "10m")
    return f"{len(restarts)} pods Ready on SQLite, 0 restarts, migrated by init containers; kube-local back"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", help="run only these checks (by name)")
    args = parser.parse_args(argv)
    data_dir = ROOT / ".data" / "kube"
    values = dict(line.split("=", 1) for line in (data_dir / "env").read_text().split() if "=" in line)
    env = Env(
        gateway_url=values["GATEWAY_URL"],
        kubeconfig=values["KUBECONFIG"],
        data_dir=data_dir,
        namespace=os.environ.get("KUBE_NAMESPACE", "lienthong"),
        release=os.environ.get("KUBE_RELEASE", "lienthong"),
        bin_dir=Path(os.environ.get("KUBE_CACHE", "/var/cache/lienthong-kube")) / "bin",
    )
    checks: list[tuple[str, Callable[[Env], str]]] = [
        ("signed-document", check_signed_document),
        ("pod-deletion", check_pod_deletion),
        ("upgrade", check_upgrade),
        ("rollback", check_rollback),
        ("network-policy", check_network_policy),
        ("lockdown", check_lockdown),
        ("dev-minimal", check_dev_minimal),
    ]
    passed = failed = 0
    for name, check in checks:
        if args.only and name not in args.only:
            continue
        started = time.monotonic()
        say(f"{name} ...")
        try:
            detail = check(env)
            passed += 1
            say(f"PASS {name} ({time.monotonic() - started:.0f} s): {detail}")
        except Exception as error:  # noqa: BLE001 - every failure is reported, the run goes on
            failed += 1
            say(f"FAIL {name} ({time.monotonic() - started:.0f} s): {error}")
    print(f"kube-e2e: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
