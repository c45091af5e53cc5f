"""`make bench`: the pipeline benchmark, then every component benchmark, into one report.

    .venv/bin/python bench/run.py [--quick] [--skip-pipeline] [--only AREA,...]

Runs bench/pipeline.py (the whole platform under stepped load) and each bench/bench_<area>.py
the services add (with --quick unless BENCH_FULL=1), prints one summary table and writes
bench/results/latest.json: the pipeline's figures at the top level (e2e_docs_per_s,
verify_only_docs_per_s, p50_ms, p95_ms, p99_ms, offered, delivered, lost, duplicated,
cpu_ms_per_doc per process, ...) and
each component's JSON under "components".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
COMPONENT_TIMEOUT = 300.0


def run_component(script: Path, quick: bool) -> dict[str, Any]:
    area = script.stem.removeprefix("bench_")
    out = RESULTS / f"{area}.json"
    before = out.stat().st_mtime if out.exists() else 0.0
    command = [sys.executable, str(script), *(["--quick"] if quick else [])]
    print(
        f"\n=== {area}: {' '.join(Path(c).name if i < 2 else c for i, c in enumerate(command))}", flush=True
    )
    started = time.monotonic()
    try:
        result = subprocess.run(command, cwd=BENCH.parent, timeout=COMPONENT_TIMEOUT, check=False)
        code = result.returncode
    except subprocess.TimeoutExpired:
        code = -1
    seconds = round(time.monotonic() - started, 1)
    entry: dict[str, Any] = {"exit_code": code, "seconds": seconds, "mode": "quick" if quick else "full"}
    if out.exists() and out.stat().st_mtime > before:
        try:
            entry["results"] = json.loads(out.read_text())
        except ValueError as error:
            entry["error"] = f"{out.name} is not JSON: {error}"
    elif code == -1:
        entry["error"] = f"timed out after {COMPONENT_TIMEOUT:.0f}s"
    else:
        entry["error"] = f"wrote no {out.relative_to(BENCH.parent)}"
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="quick pipeline run too (a smoke test)")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated component areas to run")
    args = parser.parse_args(argv)
    full_components = os.environ.get("BENCH_FULL") == "1"
    RESULTS.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()

    report: dict[str, Any] = {}
    pipeline_ok = True
    if not args.skip_pipeline:
        print("=== pipeline: the whole platform under stepped load", flush=True)
        out = RESULTS / "pipeline.json"
        out.unlink(missing_ok=True)
        code = subprocess.run(
            [sys.executable, str(BENCH / "pipeline.py"), *(["--quick"] if args.quick else [])],
            cwd=BENCH.parent,
            check=False,
        ).returncode
        pipeline_ok = code == 0 and out.exists()
        if out.exists():
            report.update(json.loads(out.read_text()))
        else:
            report["pipeline_error"] = f"bench/pipeline.py exited {code} without results"

    only = {a for a in args.only.split(",") if a}
    components: dict[str, Any] = {}
    for script in sorted(BENCH.glob("bench_*.py")):
        area = script.stem.removeprefix("bench_")
        if only and area not in only:
            continue
        components[area] = run_component(script, quick=not full_components)
    report["components"] = components
    report["bench_seconds"] = round(time.monotonic() - began, 1)
    report["when"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")

    print("\n=== summary")
    if "e2e_docs_per_s" in report:
        for key in (
            "e2e_docs_per_s",
            "peak_delivered_per_s",
            "verify_only_docs_per_s",
            "ratio_e2e_over_verify",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "offered",
            "delivered",
            "lost",
            "duplicated",
        ):
            print(f"  {key:<28} {report.get(key)}")
        per_doc = report.get("cpu_ms_per_doc") or {}
        if per_doc:
            cells = ", ".join(f"{name} {ms}" for name, ms in per_doc.items())
            print(f"  {'cpu_ms_per_doc':<28} {cells}")
    for area, entry in components.items():
        status = "ok" if entry["exit_code"] == 0 and "results" in entry else entry.get("error", "failed")
        print(f"  component {area:<18} {entry['seconds']:>6.1f}s  {status}")
    print(f"  wrote {(RESULTS / 'latest.json').relative_to(BENCH.parent)} in {report['bench_seconds']:.0f}s")
    failed = [a for a, e in components.items() if e["exit_code"] != 0]
    return 0 if pipeline_ok and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
