"""`lienthong stats …`: the electronic-exchange report."""

from __future__ import annotations

import argparse
from typing import Any

from lienthong_sdk.cli import client_for, emit


def cmd_stats(args: argparse.Namespace) -> int:
    with client_for(args.as_code) as client:
        if args.format == "csv":
            print(
                client.report(
                    province=args.province or "",
                    from_month=args.from_month or "",
                    to_month=args.to_month or "",
                    format="csv",
                ),
                end="",
            )
            return 0
        report = client.report(
            province=args.province or "", from_month=args.from_month or "", to_month=args.to_month or ""
        )
    header = (
        f"{'province':<9}{'tier':>5} {'month':<11}{'agencies':>9}{'connected':>10}{'sent':>7}{'received':>9}"
    )
    rows = [
        f"{r.get('province_code', ''):<9}{r.get('tier', 0):>5} {r.get('month', ''):<11}"
        f"{int(r.get('agencies', 0)):>9}{int(r.get('agencies_connected', 0)):>10}"
        f"{int(r.get('documents_sent', 0)):>7}{int(r.get('documents_received', 0)):>9}"
        for r in report.get("rows", [])
    ]
    emit(args, report, "\n".join([header, *rows]))
    return 0


def register(sub: Any, common: argparse.ArgumentParser, agency: argparse.ArgumentParser) -> None:
    p = sub.add_parser("stats", parents=[common], help="statistics")
    s_sub = p.add_subparsers(dest="stats_command", required=True)
    q = s_sub.add_parser("report", parents=[common, agency])
    q.add_argument("--province")
    q.add_argument("--from", dest="from_month")
    q.add_argument("--to", dest="to_month")
    q.add_argument("--format", choices=["table", "csv"], default="table")
    p.set_defaults(func=cmd_stats)
