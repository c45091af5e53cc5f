"""`lienthong agencies …`: the directory."""

from __future__ import annotations

import argparse
from typing import Any

from lienthong_sdk.cli import client_for, emit


def cmd_agencies(args: argparse.Namespace) -> int:
    with client_for(args.as_code) as client:
        if args.agencies_command == "show":
            agency = client.agency(args.code, as_of=args.as_of or "")
            emit(
                args, agency, "\n".join(f"{k:<14} {v}" for k, v in agency.items() if v not in ("", 0, False))
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
    p.set_defaults(func=cmd_agencies)
