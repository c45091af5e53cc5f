"""`lienthong agencies …`: the directory (list, show, history, import, export, connections)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lienthong_sdk.cli import client_for, emit
from lienthong_sdk.client import ApiError


def _import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    fmt = args.format or ("csv" if path.suffix.lower() == ".csv" else "json")
    params = {"format": fmt, "dry_run": str(bool(args.dry_run)).lower()}
    if args.effective_from:
        params["effective_from"] = args.effective_from
    with client_for(args.as_code or "admin") as client:
        try:
            response = client._request(
                "POST",
                "/v1/agencies/import",
                params=params,
                content=path.read_bytes(),
                headers={"Content-Type": "text/csv" if fmt == "csv" else "application/json"},
            )
        except ApiError as error:
            problem: dict[str, Any] = error.problem
            rejected = problem.get("rejected") or []
            if args.json:
                print(json.dumps(problem or {"error": str(error)}, ensure_ascii=False, indent=2))
            else:
                print(f"import refused: {error}", file=sys.stderr)
                for row in rejected:
                    where = f"row {row.get('row')}: {row.get('code', '')}"
                    print(f"  {where}: {row.get('reason')}", file=sys.stderr)
            return 1
    reply = response.json()
    verb = "would import" if args.dry_run else "imported"
    emit(
        args,
        reply,
        f"{verb}: {reply.get('created_or_changed', 0)} created or changed, "
        f"{reply.get('unchanged', 0)} unchanged, {reply.get('reorganizations', 0)} reorganisations, "
        f"{reply.get('groups', 0)} groups",
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    params = {"format": args.format or "json", "as_of": args.as_of or "", "province": args.province or ""}
    if args.history:
        params["history"] = "true"
    with client_for(args.as_code or "admin") as client:
        response = client._request("GET", "/v1/agencies/export", params=params)
    if args.output:
        Path(args.output).write_bytes(response.content)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(response.content.decode("utf-8"))
    return 0


def cmd_agencies(args: argparse.Namespace) -> int:
    command = args.agencies_command
    if command == "import":
        return _import(args)
    if command == "export":
        return _export(args)
    with client_for(args.as_code) as client:
        if command == "show":
            agency = client.agency(args.code, as_of=args.as_of or "")
            emit(
                args, agency, "\n".join(f"{k:<14} {v}" for k, v in agency.items() if v not in ("", 0, False))
            )
            return 0
        if command == "history":
            versions = client._request("GET", f"/v1/agencies/{args.code}/history").json()["versions"]
            emit(
                args,
                versions,
                "\n".join(
                    f"{v['valid_from']} → {v['valid_to'] or '…':<10}  {v['status']:<9} {v['name']}"
                    + (f"  (successor {v['successor_code']})" if v.get("successor_code") else "")
                    for v in versions
                ),
            )
            return 0
        if command == "connections":
            params = {"province": args.province or "", "tier": args.tier or 0, "as_of": args.as_of or ""}
            if args.window_days:
                params["window_days"] = args.window_days
            reply = client._request("GET", "/v1/agencies/connections", params=params).json()
            rows = reply.get("agencies", [])
            emit(
                args,
                reply,
                "\n".join(
                    f"{r['code']:<16} {'connected' if r['connected'] else 'not connected':<14} "
                    f"last exchange {r['last_exchange_at'] or 'never'}"
                    for r in rows
                ),
            )
            return 0
        agencies = client.agencies(province=args.province or "", tier=args.tier or 0, as_of=args.as_of or "")
    emit(args, agencies, "\n".join(f"{a['code']:<16} tier {a['tier']}  {a['name']}" for a in agencies))
    return 0


def register(sub: Any, common: argparse.ArgumentParser, agency: argparse.ArgumentParser) -> None:
    p = sub.add_parser("agencies", parents=[common], help="the directory")
    a_sub = p.add_subparsers(dest="agencies_command", required=True)
    q = a_sub.add_parser("list", parents=[common, agency])
    q.add_argument("--province")
    q.add_argument("--tier", type=int)
    q.add_argument("--as-of")
    q = a_sub.add_parser("show", parents=[common, agency])
    q.add_argument("code")
    q.add_argument("--as-of")
    q = a_sub.add_parser("history", parents=[common, agency], help="every version of an agency")
    q.add_argument("code")
    q = a_sub.add_parser("connections", parents=[common, agency], help="connection status")
    q.add_argument("--province")
    q.add_argument("--tier", type=int)
    q.add_argument("--as-of")
    q.add_argument("--window-days", type=int)
    q = a_sub.add_parser(
        "import", parents=[common, agency], help="import CSV or JSON, all or nothing (admin)"
    )
    q.add_argument("file")
    q.add_argument("--format", choices=["json", "csv"])
    q.add_argument("--dry-run", action="store_true", help="check every row, change nothing")
    q.add_argument("--effective-from", help="date for rows without their own (default today)")
    q = a_sub.add_parser("export", parents=[common, agency], help="export CSV or JSON (admin)")
    q.add_argument("--format", choices=["json", "csv"], default="json")
    q.add_argument("--as-of")
    q.add_argument("--province")
    q.add_argument("--history", action="store_true", help="every version with its dates (JSON)")
    q.add_argument("-o", "--output")
    p.set_defaults(func=cmd_agencies)
