"""The pipeline benchmark's figures: CPU per document, the capacity estimate, the chart and
the tables it prints."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pipeline_load import Ledger, percentile
from pipeline_meter import PLATFORM, is_replica_group


def capacity_estimate(fig: dict[str, Any], cpus: int, idle: dict[str, Any] | None = None) -> float:
    """Documents/s the platform could take if CPU-bound: the cores the benchmark, the idle
    platform and the rest of the machine leave free divided by the platform's CPU seconds per
    document in this step above its idle cost (0 when unknown)."""
    cpu = fig.get("cpu") or {}
    if not fig.get("accepted") or "_machine" not in cpu:
        return 0.0
    wall = cpu["_machine"]["wall_s"]
    idle_cores = sum(idle[n]["cores"] for n in PLATFORM if idle and n in idle)
    busy = sum(cpu[name]["cpu_s"] for name in PLATFORM if name in cpu) - idle_cores * wall
    per_doc = max(busy, 0.0) / fig["accepted"]
    # The rest of the machine (another job on a shared host) is not ours to use either.
    others = cpu["_machine"]["others_cores"]
    free = cpus - (cpu.get("bench", {}).get("cores") or 0.0) - idle_cores - others
    return max(free, 0.5) / per_doc if per_doc > 0 else 0.0


def cpu_summary(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """CPU ms per document per process over the measured steps whose backlog drained (all
    steps when none did), and the largest RSS seen per process."""
    counted = [s for s in steps if s.get("cpu") and s["pending"] == 0 and s["accepted"]]
    counted = counted or [s for s in steps if s.get("cpu") and s["accepted"]]
    docs = sum(s["accepted"] for s in counted)
    replica_groups = sorted({n for s in counted for n in s["cpu"] if is_replica_group(n)})
    names = [
        n
        for n in (*PLATFORM, "bench", "postgresql_other", *replica_groups)
        if any(n in s["cpu"] for s in counted)
    ]
    cpu_s = {n: sum(s["cpu"].get(n, {}).get("cpu_s", 0.0) for s in counted) for n in names}
    per_doc = {n: round(cpu_s[n] * 1000 / docs, 1) if docs else None for n in names}
    platform = sum(cpu_s[n] for n in PLATFORM if n in cpu_s)
    per_doc["platform"] = round(platform * 1000 / docs, 1) if docs else None
    return {
        "cpu_ms_per_doc": per_doc,
        "cpu_seconds": {n: round(v, 1) for n, v in cpu_s.items()},
        "rss_mb_max": {
            n: max(s["cpu"].get(n, {}).get("rss_mb", 0.0) for s in steps if s.get("cpu")) for n in names
        },
        "cpu_counted_steps": [s["label"] for s in counted],
        "cpu_counted_docs": docs,
    }


# ----------------------------------------------------------------------------- chart


def chart(ledger: Ledger, steps: list[dict[str, Any]], path: Path, t0: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    submitted: Counter[int] = Counter()
    completed: Counter[int] = Counter()
    lat_by_second: dict[int, list[float]] = defaultdict(list)
    with ledger.lock:
        for s in ledger.sent.values():
            submitted[int(s.submitted_at - t0)] += 1
            at = ledger.complete_at(s)
            if at is not None:
                completed[int(at - t0)] += 1
                lat_by_second[int(s.submitted_at - t0)].append((at - s.submitted_at) * 1000)
    end = max([*submitted, *completed, 1]) + 1
    xs = list(range(end))
    fig = plt.figure(figsize=(11, 10))
    grid = fig.add_gridspec(3, 1, height_ratios=[3, 3, 2.6])
    top = fig.add_subplot(grid[0])
    bottom = fig.add_subplot(grid[1], sharex=top)
    top.plot(xs, [submitted[x] for x in xs], label="accepted /s", lw=1)
    top.plot(xs, [completed[x] for x in xs], label="in every inbox /s", lw=1.5)
    for step in steps:
        if "started_at" in step:
            a = step["started_at"] - t0
            top.hlines(
                step["offered_rate"], a, a + step["submit_seconds"], colors="grey", linestyles="dashed"
            )
            top.text(a, step["offered_rate"], f" {step['label']}", fontsize=7, color="grey", va="bottom")
    top.set_ylabel("documents / s")
    top.legend(loc="upper left")
    top.set_title("lienthong pipeline: throughput (dashed: offered) and latency submit → every inbox")
    lx = sorted(lat_by_second)
    bottom.plot(lx, [percentile(lat_by_second[x], 50) for x in lx], label="p50", lw=1)
    bottom.plot(lx, [percentile(lat_by_second[x], 99) for x in lx], label="p99", lw=1)
    bottom.set_yscale("log")
    bottom.set_ylabel("latency ms (by submit second)")
    bottom.set_xlabel("seconds since the first submission")
    bottom.legend(loc="upper left")
    # CPU ms per document per process, one stacked bar per measured step.
    cpu_ax = fig.add_subplot(grid[2])
    measured = [s for s in steps if s.get("cpu") and s.get("accepted")]
    bottoms = [0.0] * len(measured)
    for name in (*PLATFORM, "bench"):
        values = [s["cpu"].get(name, {}).get("cpu_ms_per_doc") or 0.0 for s in measured]
        if any(values):
            cpu_ax.bar(range(len(measured)), values, bottom=bottoms, label=name)
            bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    cpu_ax.set_xticks(
        range(len(measured)), [f"{s['label']}\n{s['offered_rate']:.0f}/s" for s in measured], fontsize=7
    )
    cpu_ax.set_ylabel("CPU ms per document")
    cpu_ax.legend(loc="upper left", fontsize=7, ncol=5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(r: dict[str, Any]) -> None:
    print()
    print(
        f"{'step':<8} {'offered/s':>9} {'accepted/s':>10} {'delivered/s':>11} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'p99 ms':>8} {'drain s':>7}  ok"
    )
    for s in r["steps"]:
        print(
            f"{s['label']:<8} {s['offered_rate']:>9.1f} {s['achieved_rate']:>10.1f} "
            f"{s['delivered_rate']:>11.1f} "
            f"{s['p50_ms']:>8.0f} {s['p95_ms']:>8.0f} {s['p99_ms']:>8.0f} {s['drain_seconds']:>7.1f}  "
            f"{'yes' if s.get('sustainable', True) else 'no'}"
        )
    print()
    rows = [
        ("end-to-end (max sustainable), docs/s", r["e2e_docs_per_s"]),
        ("peak delivered, docs/s", r["peak_delivered_per_s"]),
        ("verify-only ceiling (2 processes), docs/s", r["verify_only_docs_per_s"]),
        ("ratio e2e / verify-only", r["ratio_e2e_over_verify"]),
        (
            f"p50 / p95 / p99 at {r['latency_at_rate_per_s']:.1f} docs/s, ms",
            f"{r['p50_ms']:.0f} / {r['p95_ms']:.0f} / {r['p99_ms']:.0f}",
        ),
        ("offered / accepted / delivered", f"{r['offered']} / {r['accepted']} / {r['delivered']}"),
        ("lost / duplicated", f"{r['lost']} / {r['duplicated']}"),
    ]
    for name, value in rows:
        print(f"  {name:<46} {value}")
    verdicts = [f"{k} {'met' if v else 'NOT met'}" for k, v in r["targets"].items()]
    print(f"  targets: {', '.join(verdicts)}")
    if r.get("events_handled"):
        print(
            f"  replicas: {r['replicas']} per consumer service, {r['topic_partitions']} partitions per topic"
        )
        for name, outcomes in r.get("events_handled", {}).items():
            shown = (
                "unreadable"
                if outcomes is None
                else "; ".join(
                    f"{outcome} " + ", ".join(f"{t} {n}" for t, n in topics.items())
                    for outcome, topics in outcomes.items()
                )
            )
            print(f"    {name:<14} events: {shown}")
    print_cpu_table(r)


def print_cpu_table(r: dict[str, Any]) -> None:
    """CPU ms per accepted document per process and step (from /proc utime+stime, children
    included), the overall figure, and the largest RSS."""
    steps = [s for s in r["steps"] if s.get("cpu")]
    if not steps or "cpu_ms_per_doc" not in r:
        return
    print()
    print(
        f"CPU ms per document (steps counted overall: {', '.join(r['cpu_counted_steps'])}; "
        f"{r['cpu_counted_docs']} documents)"
    )
    idle = r.get("idle_cores", {})
    print(
        f"{'process':<18}"
        + "".join(f"{s['label']:>9}" for s in steps)
        + f"{'overall':>9}{'RSS MB':>8}{'idle cores':>11}"
    )
    for name, overall in r["cpu_ms_per_doc"].items():
        cells = "".join(
            f"{(s['cpu'].get(name, {}).get('cpu_ms_per_doc') or 0.0):>9.1f}"
            if name != "platform"
            else f"{sum(s['cpu'][n]['cpu_ms_per_doc'] or 0.0 for n in PLATFORM if n in s['cpu']):>9.1f}"
            for s in steps
        )
        rss = r["rss_mb_max"].get(name)
        print(
            f"{name:<18}{cells}{overall if overall is not None else float('nan'):>9.1f}"
            f"{'' if rss is None else f'{rss:>8.0f}'}"
            f"{'' if name not in idle else f'{idle[name]:>11.2f}'}"
        )
    print(
        f"{'machine busy cores':<18}" + "".join(f"{s['cpu']['_machine']['busy_cores']:>9.2f}" for s in steps)
    )
    print(f"{'others, cores':<18}" + "".join(f"{s['cpu']['_machine']['others_cores']:>9.2f}" for s in steps))
    print(f"{'load average 1m':<18}" + "".join(f"{s['cpu']['_machine']['loadavg'][0]:>9.2f}" for s in steps))


def budget_table(r: dict[str, Any]) -> str:
    """The CPU budget as a Markdown table (what bench/README.md quotes): CPU ms per document
    per process over the counted steps, at the highest drained step, and idle cores; then Kafka
    events and database commits per document over the whole run."""
    counted = r.get("cpu_counted_steps", [])
    steps = {s["label"]: s for s in r["steps"] if s.get("cpu")}
    drained = [steps[label] for label in counted if label.startswith("step") and label in steps]
    top = max(drained, key=lambda s: s["offered_rate"], default=None)
    idle = r.get("idle_cores", {})
    per_doc = r.get("cpu_ms_per_doc", {})
    top_label = f"at {top['offered_rate']:.1f}/s ({top['label']})" if top else "at the top drained step"
    lines = [
        f"CPU budget, {r['database']}, {r['mode']} run ending {r['when']} "
        f"({r['cpu_counted_docs']} documents in {', '.join(counted)}; "
        f"{r['e2e_docs_per_s']} docs/s sustainable):",
        "",
        f"| process | CPU ms/doc, counted steps | CPU ms/doc {top_label} | idle, cores |",
        "|---|---|---|---|",
    ]

    def cell(value: Any) -> str:
        return "—" if value is None else f"{value:.1f}"

    for name in (*PLATFORM, "platform"):
        if name not in per_doc:
            continue
        if name == "platform":
            at_top = (
                sum(top["cpu"][n]["cpu_ms_per_doc"] or 0.0 for n in PLATFORM if n in top["cpu"])
                if top
                else None
            )
            idle_value = sum(idle.get(n, 0.0) for n in PLATFORM)
            label = "**platform**"
        else:
            at_top = top["cpu"].get(name, {}).get("cpu_ms_per_doc") if top else None
            idle_value = idle.get(name)
            label = name
        idle_cell = "—" if idle_value is None else f"{idle_value:.2f}"
        lines.append(f"| {label} | {cell(per_doc[name])} | {cell(at_top)} | {idle_cell} |")
    stored = r.get("storage_per_doc", {})
    messages = stored.get("kafka_messages") or {}
    commits = stored.get("pg_commits") or {}
    lines += ["", "| per document, whole run | value |", "|---|---|"]
    if messages:
        total = sum(v or 0.0 for v in messages.values())
        parts = ", ".join(f"{t.rpartition('.')[2]} {v}" for t, v in messages.items() if v)
        lines.append(f"| Kafka events | {total:.1f} ({parts}) |")
    if commits:
        total = sum(v or 0.0 for v in commits.values())
        parts = ", ".join(f"{s} {v}" for s, v in commits.items())
        lines.append(f"| PostgreSQL commits | {total:.1f} ({parts}) |")
    else:
        lines.append("| database commits | not counted on SQLite |")
    return "\n".join(lines) + "\n"
