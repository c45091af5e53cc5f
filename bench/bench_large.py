"""Large documents on every path: how much each process's memory grows for 1, 10, 25 and 45 MB
packages (issue 24; figures and method in bench/README.md, decisions in docs/adr/0004).

A real platform (Kafka from infra/kafka.sh, the six services as processes, SQLite, the demo
directory) on its own ports. For each size, a PAdES-signed PDF sized so that its package is
about that many megabytes (10^6 bytes) goes through every path an agency uses:

* ``cli send``: ``lienthong send --attach`` with the CLI's defaults (envelope signature on),
  then the sender waits until it is delivered: the CLI, gateway, docstore, sigverify (service
  process and its verification workers), routing;
* ``cli fetch``: the recipient's ``lienthong fetch``, checked byte-identical;
* ``vdxp send``/``getEdoc``/``downloadEdoc``: the same through /vdxp/ (VdxpClient signs as
  VNPT's SDK), the package built and envelope-signed in this process; both replies checked.

Memory: before each phase the peak RSS of every platform process is reset (``/proc/PID/
clear_refs`` = 5) and its RSS read; afterwards growth = VmHWM - that RSS. The CLI's growth is
its peak RSS (a small wrapper process's ``wait4``) minus the peak of the same command on a 10 KB
PDF; ``small_document_growth_mb`` is what each process grows by for that 10 KB document. Workers of a
service (sigverify's verification pool) are counted with it: ``sigverify`` is the service
process, ``sigverify.workers`` the largest growth of one worker, ``sigverify.total`` the sum.

    .venv/bin/python bench/bench_large.py [--quick] [--sizes 1,10,25,45] [--keep]

``--quick`` (what ``make bench`` runs) measures every size too, but the /vdxp/ phases only for
the largest. Writes bench/results/large.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline_stack import infra

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PROVINCE, DEPARTMENT = "000.00.00.H49", "000.00.02.H49"
MB = 1_000_000
# Headers, manifest and an envelope signature with its certificate chain, in a CLI-built package.
ENVELOPE_GUESS = 7_000
# Every allocation of 128 KiB or more gets its own mapping, returned to the system when freed
# (glibc otherwise raises that threshold as large blocks are freed, and keeps them): RSS then
# follows live memory, so one phase's leftovers do not hide the next phase's growth.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


# ----------------------------------------------------------------------------- memory


def _status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            found.append(int(entry))
    return found


class Watch:
    """Peak RSS growth of each platform process (and its workers) over one phase."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = processes
        self.baseline: dict[tuple[str, int], int] = {}

    def _pids(self) -> Iterator[tuple[str, int]]:
        for name, pid in self.processes.items():
            yield name, pid
            for child in _children(pid):
                yield f"{name}.workers", child

    def start(self) -> None:
        self.baseline.clear()
        for name, pid in self._pids():
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as refs:
                    refs.write("5")
                self.baseline[(name, pid)] = _status_kb(pid, "VmRSS")
            except OSError:
                continue

    def growth_mb(self) -> dict[str, float]:
        out: dict[str, float] = {}
        totals: dict[str, float] = {}
        for (name, pid), before in self.baseline.items():
            try:
                grown = max(0, _status_kb(pid, "VmHWM") - before) * 1024 / MB
            except OSError:
                continue
            out[name] = round(max(out.get(name, 0.0), grown), 1)
            service = name.removesuffix(".workers")
            totals[service] = totals.get(service, 0.0) + grown
        for service, total in totals.items():
            if f"{service}.workers" in out:
                out[f"{service}.total"] = round(total, 1)
        return out


# Runs the command and reports its peak RSS. A small process of its own: a child's ru_maxrss
# starts from its parent's peak (exec accounts the mm it replaces, which vfork shares with the
# parent), so measured from this process it would include this benchmark's own memory.
_PEAK_WRAPPER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:])\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "sys.stderr.write(f'\\n@maxrss_kb {usage.ru_maxrss}\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_measured(command: list[str], env: dict[str, str]) -> tuple[int, str, str, float]:
    """Run a command; its exit code, output and peak RSS in MB."""
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_WRAPPER, *command], env=env, capture_output=True, text=True, check=False
    )
    err, _, peak = result.stderr.rpartition("@maxrss_kb ")
    return result.returncode, result.stdout, err, int(peak.split()[0] or 0) * 1024 / MB


# ----------------------------------------------------------------------------- the platform


@contextmanager
def platform(kafka_port: int, port_base: int, keep: bool) -> Iterator[Any]:
    from lienthong_sdk.demo import seed
    from lienthong_sdk.local import LocalPlatform

    kafka_env = {
        "KAFKA_PORT": str(kafka_port),
        "KAFKA_CONTROLLER_PORT": str(kafka_port + 1),
        "KAFKA_START_TIMEOUT": os.environ.get("KAFKA_START_TIMEOUT", "240"),
    }
    infra("kafka.sh", "reset", env=kafka_env)
    infra("kafka.sh", "start", env=kafka_env)
    data_dir = Path(tempfile.mkdtemp(prefix="lienthong-bench-large-"))
    local = LocalPlatform(
        data_dir=data_dir,
        grpc_port_base=port_base,
        http_port=port_base + 100,
        kafka_bootstrap=f"127.0.0.1:{kafka_port}",
        extra_env={
            "LIENTHONG_DRAIN_SECONDS": "2",
            "OTEL_TRACES_EXPORTER": "none",
            "LIENTHONG_GATEWAY__RATE_LIMIT_PER_SECOND": "0",
            # Every package is verified for real, as distinct documents would be.
            "LIENTHONG_SIGVERIFY__VERDICT_CACHE_SECONDS": "0",
            **MALLOC_ENV,
        },
        otlp_endpoint="",
    )
    try:
        local.start()
        local.wait_ready(timeout=120)
        seed(
            directory_address=local.grpc_address("directory"),
            data_dir=data_dir,
            dataset=ROOT / "data" / "directory" / "demo.json",
        )
        yield local
    finally:
        local.stop()
        infra("kafka.sh", "stop", env=kafka_env)
        if keep:
            print(f"(kept {data_dir})", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def signed_pdf(local: Any, size: int, folder: Path) -> Path:
    from lienthong_common.pades import sign_pdf
    from lienthong_common.pdfgen import make_pdf
    from lienthong_common.pki import load_identity

    identity = load_identity(local.data_dir / "pki" / "agencies", PROVINCE)
    pdf = sign_pdf(make_pdf(f"Bản quét {uuid.uuid4().hex[:8]}", ["Bản quét."], pad_to_bytes=size), identity)
    # Signed twice (the signer's field, then a second one, as a seal would be): the verifier
    # then checks what the second revision changed, as it does for real documents.
    pdf = sign_pdf(pdf, identity, field_name="Signature2")
    path = folder / f"scan-{size // MB}mb-{uuid.uuid4().hex[:6]}.pdf"
    path.write_bytes(pdf)
    return path


def wait_until(check: Callable[[], Any], what: str, timeout: float = 300.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}")


def delivered(local: Any, doc_id: str) -> dict[str, Any]:
    from lienthong_sdk.client import LienthongClient
    from lienthong_sdk.demo import load_credentials

    with LienthongClient(local.gateway_url, PROVINCE, load_credentials(local.data_dir)[PROVINCE]) as client:

        def done() -> dict[str, Any] | None:
            view = client.document(doc_id)
            if view["state"] == "refused":
                raise SystemExit(f"document {doc_id} was refused: {view.get('refusal_reason')}")
            states = {r["state"] for r in view["recipients"]}
            return view if view["state"] not in ("verifying",) and "queued" not in states else None

        return dict(wait_until(done, f"document {doc_id} delivered"))


def settle() -> None:
    """Let the last events (statuses, statistics) land before a phase's figures are read."""
    time.sleep(1.0)


# ----------------------------------------------------------------------------- phases


def measure_size(
    local: Any, size_mb: int, folder: Path, cli_base: dict[str, float], vdxp: bool
) -> dict[str, Any]:
    env = {
        **os.environ,
        **MALLOC_ENV,
        "LIENTHONG_URL": local.gateway_url,
        "LIENTHONG_DATA_DIR": str(local.data_dir),
    }
    cli = str(Path(sys.executable).parent / "lienthong")
    processes = {name: process.pid for name, process in local.processes.items()}
    watch = Watch(processes)
    pdf = signed_pdf(local, (size_mb * MB - ENVELOPE_GUESS) * 3 // 4, folder)
    result: dict[str, Any] = {"pdf_bytes": pdf.stat().st_size}

    send_args = [cli, "send", "--as", PROVINCE, "--to", DEPARTMENT, "--subject", f"Bản quét {size_mb} MB"]
    send_args += ["--attach", str(pdf), "--json"]
    watch.start()
    code, out, err, peak = run_measured(send_args, env)
    if code != 0:
        result["cli_send_error"] = (err or out).strip().splitlines()[-1:]
        print(f"  {size_mb} MB: lienthong send failed: {result['cli_send_error']}", flush=True)
        code, out, err, peak = run_measured(
            [
                cli,
                "send",
                "--as",
                PROVINCE,
                "--to",
                DEPARTMENT,
                "--subject",
                f"Bản quét {size_mb} MB",
                "--attach",
                str(pdf),
                "--json",
                "--no-envelope-signature",
            ],
            env,
        )
        result["envelope_signature"] = False
        if code != 0:
            raise SystemExit(f"lienthong send failed even without the envelope signature:\n{err}")
    doc_id = json.loads(out)["id"]
    view = delivered(local, doc_id)
    settle()
    package_bytes = int(view["package"]["size"])
    result["package_bytes"] = package_bytes
    result["validation"] = (view.get("validation") or {}).get("indication")
    send = watch.growth_mb()
    send["cli"] = round(peak - cli_base["send"], 1)
    result["cli_send"] = send

    watch.start()
    target = folder / f"fetch-{doc_id}"
    code, out, err, peak = run_measured([cli, "fetch", doc_id, "--as", DEPARTMENT, "-o", str(target)], env)
    if code != 0:
        raise SystemExit(f"lienthong fetch failed:\n{err}")
    settle()
    fetch = watch.growth_mb()
    fetch["cli"] = round(peak - cli_base["fetch"], 1)
    result["cli_fetch"] = fetch
    result["fetched_identical"] = (target / pdf.name).read_bytes() == pdf.read_bytes()
    shutil.rmtree(target, ignore_errors=True)

    if vdxp:
        result.update(measure_vdxp(local, pdf, watch))
    pdf.unlink()
    return result


def vdxp_package(local: Any, pdf: Path) -> tuple[bytes, bool]:
    from lienthong_common.pki import load_identity
    from lienthong_sdk.builder import PackageBuilder

    builder = (
        PackageBuilder(sender=PROVINCE)
        .to(DEPARTMENT)
        .subject(f"Bản quét qua VDXP {uuid.uuid4().hex[:6]}")
        .code(str(uuid.uuid4().int % 100000), "UBND-VP")
        .promulgated("Hạ Long")
        .attach_file(pdf)
    )
    identity = load_identity(local.data_dir / "pki" / "agencies", PROVINCE)
    try:
        return builder.build(identity=identity), True
    except Exception as error:  # noqa: BLE001 - recorded: the figures say the envelope was off
        print(f"  vdxp: the envelope signature failed ({type(error).__name__}); sending unsigned", flush=True)
        return builder.build(), False


def measure_vdxp(local: Any, pdf: Path, watch: Watch) -> dict[str, Any]:
    from lienthong_sdk.vdxp_client import VdxpClient

    systems = json.loads((local.data_dir / "vdxp-systems.json").read_text())
    endpoint = f"{local.gateway_url}/vdxp"
    package, signed = vdxp_package(local, pdf)
    out: dict[str, Any] = {"vdxp_envelope_signature": signed}
    with VdxpClient(endpoint, PROVINCE, systems[PROVINCE]["secret"], timeout=300) as province:
        watch.start()
        reply = province.send_edoc(
            package, {"from": PROVINCE, "to": [DEPARTMENT], "servicetype": "eDoc", "messagetype": "edoc"}
        )
        if reply.get("status") != "OK":
            raise SystemExit(f"sendEdoc failed: {reply}")
        doc_id = reply["DocId"]
        delivered(local, doc_id)
        settle()
        out["vdxp_send"] = watch.growth_mb()
    with VdxpClient(endpoint, DEPARTMENT, systems[DEPARTMENT]["secret"], timeout=300) as department:
        watch.start()
        got = department.call("getEdoc", {"docId": doc_id, "servicetype": "eDoc"})
        out["vdxp_get_edoc"] = watch.growth_mb()
        import base64

        out["vdxp_get_edoc_identical"] = base64.b64decode(got.get("data", "")) == package
        del got
        watch.start()
        downloaded = department.download_edoc(doc_id)
        out["vdxp_download_edoc"] = watch.growth_mb()
        out["vdxp_download_identical"] = downloaded == package
    return out


def cli_baselines(local: Any, folder: Path, watch: Watch) -> dict[str, Any]:
    """Peak RSS of `send` and `fetch` on a 10 KB PDF: what the CLI costs before any payload; and
    what each process grows by for such a document (the floor every size pays)."""
    env = {
        **os.environ,
        **MALLOC_ENV,
        "LIENTHONG_URL": local.gateway_url,
        "LIENTHONG_DATA_DIR": str(local.data_dir),
    }
    cli = str(Path(sys.executable).parent / "lienthong")
    pdf = signed_pdf(local, 10_000, folder)
    watch.start()
    code, out, err, send = run_measured(
        [
            cli,
            "send",
            "--as",
            PROVINCE,
            "--to",
            DEPARTMENT,
            "--subject",
            "Mẫu nhỏ",
            "--attach",
            str(pdf),
            "--json",
        ],
        env,
    )
    if code != 0:
        raise SystemExit(f"lienthong send failed:\n{err}")
    doc_id = json.loads(out)["id"]
    delivered(local, doc_id)
    settle()
    floor = watch.growth_mb()
    code, _, err, fetch = run_measured(
        [cli, "fetch", doc_id, "--as", DEPARTMENT, "-o", str(folder / "small")], env
    )
    if code != 0:
        raise SystemExit(f"lienthong fetch failed:\n{err}")
    return {"send": send, "fetch": fetch, "floor": floor}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="the /vdxp/ phases for the largest size only")
    parser.add_argument("--sizes", default="1,10,25,45", help="package sizes in MB (10^6 bytes)")
    parser.add_argument("--keep", action="store_true", help="keep the platform's data folder")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    kafka_port = int(os.environ.get("LIENTHONG_BENCH_LARGE_KAFKA_PORT", "19972"))
    port_base = int(os.environ.get("LIENTHONG_BENCH_LARGE_PORT_BASE", "28051"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report: dict[str, Any] = {"sizes_mb": sizes, "mode": "quick" if args.quick else "full", "packages": {}}
    with platform(kafka_port, port_base, args.keep) as local, tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        watch = Watch({name: process.pid for name, process in local.processes.items()})
        base = cli_baselines(local, folder, watch)
        report["cli_baseline_mb"] = {"send": round(base["send"], 1), "fetch": round(base["fetch"], 1)}
        report["small_document_growth_mb"] = base["floor"]
        for size in sizes:
            print(f"=== {size} MB package", flush=True)
            began = time.monotonic()
            entry = measure_size(local, size, folder, base, vdxp=not args.quick or size == max(sizes))
            entry["seconds"] = round(time.monotonic() - began, 1)
            report["packages"][str(size)] = entry
            print(json.dumps(entry, indent=1), flush=True)
    report["seconds"] = round(time.monotonic() - started, 1)
    (RESULTS / "large.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS / 'large.json'} in {report['seconds']:.0f}s")


if __name__ == "__main__":
    main()
