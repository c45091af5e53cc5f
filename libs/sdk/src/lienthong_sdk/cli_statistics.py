"""`lienthong stats …`: the electronic-exchange report, paper reports, rebuild."""

from __future__ import annotations

import argparse
import json
from typing import Any

from lienthong_sdk.cli import CliError, client_for, emit

TIERS = {0: "?", 1: "central", 2: "province", 3: "dept/district", 4: "commune"}


def percent(value: float | None) -> str:
    if value is None:
        return "-"
    scaled = value * 100
    return f"{round(scaled)}%" if abs(scaled - round(scaled)) < 1e-9 else f"{scaled:.1f}%"


def count(value: int | None) -> str:
    """A number of documents; "-" for another agency's paper counts, which the gateway hides."""
    return "-" if value is None else str(int(value))


def report_table(report: dict[str, Any], *, agencies: bool) -> str:
    header = (
        f"{'province':<9}{'tier':<17}{'month':<11}{'connected':>10}{'share':>7}{'sent':>7}{'paper':>7}"
        f"{'send%':>7}{'recv':>7}{'paper':>7}{'recv%':>7}{'e-share':>8}"
    )

    def line(first: str, second: str, r: dict[str, Any], connected: str, share: str) -> str:
        return (
            f"{first:<9}{second:<17}{r.get('month', ''):<11}{connected:>10}{share:>7}"
            f"{int(r.get('documents_sent', 0)):>7}{count(r.get('paper_issued', 0)):>7}"
            f"{percent(r.get('send_rate')):>7}"
            f"{int(r.get('documents_received', 0)):>7}{count(r.get('paper_received', 0)):>7}"
            f"{percent(r.get('receive_rate')):>7}{percent(r.get('electronic_share')):>8}"
        )

    lines = [header]
    rows = sorted(
        [(r, False) for r in report.get("rows", [])] + [(r, True) for r in report.get("provinces", [])],
        key=lambda item: (
            item[0]["province_code"],
            item[0]["month"] == "cumulative",
            item[0]["month"],
            item[1],
        ),
    )
    for row, whole in rows:
        tier = "all tiers" if whole else f"{row['tier']} {TIERS.get(int(row['tier']), '')}"
        connected = f"{int(row.get('agencies_connected', 0))}/{int(row.get('agencies', 0))}"
        lines.append(line(row["province_code"], tier, row, connected, percent(row.get("connected_share"))))
    if agencies:
        lines.append("")
        lines.append(header.replace("province ", "agency   ", 1))
        for a in report.get("agencies", []):
            lines.append(
                line(
                    a["agency_code"],
                    f"{a['tier']} {a['province_code']}",
                    a,
                    "yes" if a.get("connected") else "no",
                    "",
                )
            )
    return "\n".join(lines)


def cmd_stats(args: argparse.Namespace) -> int:
    command = args.stats_command
    with client_for(args.as_code) as client:
        if command == "report":
            fmt = "json" if args.json else args.format
            query: dict[str, Any] = {
                "province": args.province or "",
                "from_month": args.from_month or "",
                "to_month": args.to_month or "",
                "tier": args.tier or 0,
            }
            if fmt == "csv":
                print(client.report(**query, format="csv"), end="")
                return 0
            report = client.report(**query, agency_months=args.agency_months)
            if fmt == "json":
                print(json.dumps(report, ensure_ascii=False, indent=2))
                return 0
            print(report_table(report, agencies=args.agencies))
            return 0
        if command == "paper":
            if args.show:
                revisions = client.paper_history(agency_code=args.agency or "", period=args.period or "")
                emit(
                    args,
                    revisions,
                    "\n".join(
                        f"{r['agency_code']} {r['period']} rev {r['revision']}: "
                        f"issued on paper {r['paper_issued']}, received on paper {r['paper_received']}, "
                        f"electronic elsewhere {r['electronic_issued_other']}"
                        f"  ({r['reported_by']}, {r['reported_at']})"
                        for r in revisions
                    )
                    or "no paper reports",
                )
                return 0
            if args.period is None or args.issued is None or args.received is None:
                raise CliError("stats paper needs --period, --issued and --received (or --show)")
            reply = client.report_paper(
                period=args.period,
                paper_issued=args.issued,
                paper_received=args.received,
                electronic_issued_other=args.electronic_other,
                note=args.note or "",
                agency_code=args.agency or "",
            )
            state = "recorded" if reply["created"] else ("corrected" if reply["changed"] else "unchanged")
            emit(
                args,
                reply,
                f"paper report {reply['agency_code']} {reply['period']} {state} "
                f"(revision {reply['revision']})",
            )
            return 0
        reply = client.rebuild_statistics(apply=args.apply)
    verdict = "identical to the live counts" if reply["identical"] else "DIFFERENT from the live counts"
    text = [
        f"replayed {reply['records_read']} records ({reply['events_counted']} distinct events) in "
        f"{reply['seconds']:.1f}s: {reply['rows_compared']} rows {verdict}",
        *[f"  {d}" for d in reply["differences"]],
    ]
    if reply["applied"]:
        text.append("the live counts were replaced by the rebuilt ones")
    emit(args, reply, "\n".join(text))
    return 0 if reply["identical"] or reply["applied"] else 1


def register(sub: Any, common: argparse.ArgumentParser, agency: argparse.ArgumentParser) -> None:
    p = sub.add_parser("stats", parents=[common], help="statistics")
    s_sub = p.add_subparsers(dest="stats_command", required=True)
    q = s_sub.add_parser("report", parents=[common, agency], help="the electronic-exchange report")
    q.add_argument("--province", help="level-1 unit, e.g. H49")
    q.add_argument("--tier", type=int, choices=range(0, 5))
    q.add_argument("--from", dest="from_month", metavar="YYYY-MM")
    q.add_argument("--to", dest="to_month", metavar="YYYY-MM")
    q.add_argument("--format", choices=["table", "csv", "json"], default="table")
    q.add_argument("--agencies", action="store_true", help="also one line per agency (table)")
    q.add_argument("--agency-months", action="store_true", help="also every agency's months (JSON)")
    q = s_sub.add_parser("paper", parents=[common, agency], help="report your paper traffic for a month")
    q.add_argument("--period", metavar="YYYY-MM")
    q.add_argument("--issued", type=int, help="documents issued and sent on paper")
    q.add_argument("--received", type=int, help="paper documents received")
    q.add_argument("--electronic-other", type=int, default=0, help="issued electronically outside the axis")
    q.add_argument("--note")
    q.add_argument("--agency", help="for another agency (administrators)")
    q.add_argument("--show", action="store_true", help="list the reports and their revisions instead")
    q = s_sub.add_parser("rebuild", parents=[common, agency], help="replay all events and compare (admin)")
    q.add_argument("--apply", action="store_true", help="replace the live counts when they differ")
    p.set_defaults(func=cmd_stats)
