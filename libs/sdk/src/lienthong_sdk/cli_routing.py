"""`lienthong webhook …`, `deadlines`, `evidence …`, `statuses`: push, deadlines, proof, status packages."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lienthong_sdk.cli import CliError, client_for, emit
from lienthong_sdk.client import LienthongClient


def _get(client: LienthongClient, path: str, **params: Any) -> Any:
    return client._request("GET", path, params=params).json()


def _send(client: LienthongClient, method: str, path: str, body: Any | None = None) -> Any:
    return client._request(method, path, json=body).json()


def _push_lines(items: list[dict[str, Any]]) -> list[str]:
    return [
        f"{d['id']}  {d['agency']:<16} {d['kind']:<8} {d['state']:<14} attempts {d['attempts']:<3}"
        f" {d['document']}" + (f"  {d['last_error']}" if d.get("last_error") else "")
        for d in items
    ]


def cmd_webhook(args: argparse.Namespace) -> int:
    with client_for(args.as_code) as client:
        if args.webhook_command == "set":
            hook = _send(client, "PUT", "/v1/webhook", {"url": args.url, "secret": args.secret or ""})
            text = f"webhook of {hook['agency']}: {hook['url']} (secret {hook['secret_hint']})"
            if hook.get("secret"):
                text += f"\nsecret (shown once; keep it to check X-Lienthong-Signature): {hook['secret']}"
            emit(args, hook, text)
        elif args.webhook_command == "show":
            hook = _get(client, "/v1/webhook")
            emit(
                args,
                hook,
                f"webhook of {hook['agency']}: {hook['url']} (secret {hook['secret_hint']})\n"
                f"  pushed {hook['pushed']}, pending {hook['pending']}, "
                f"dead-lettered {hook['dead_lettered']}",
            )
        elif args.webhook_command == "delete":
            hook = _send(client, "DELETE", "/v1/webhook")
            emit(args, hook, f"webhook of {hook['agency']} removed; pull the inbox instead")
        elif args.webhook_command == "deliveries":
            path = "/v1/admin/webhooks/deliveries" if args.all else "/v1/webhook/deliveries"
            params: dict[str, Any] = {"state": args.state or "", "limit": args.limit}
            if args.all and args.agency:
                params["agency"] = args.agency
            reply = _get(client, path, **params)
            emit(args, reply, "\n".join(_push_lines(reply["deliveries"])) or "none")
        elif args.webhook_command == "redrive":
            if args.agency:
                reply = _send(
                    client, "POST", "/v1/admin/webhooks/redrive", {"agency": args.agency, "ids": args.ids}
                )
            else:
                reply = _send(client, "POST", "/v1/webhook/redrive", {"ids": args.ids})
            emit(args, reply, f"re-driven: {len(reply['redriven'])}")
        else:  # pragma: no cover - argparse enforces the choices
            raise CliError(f"unknown webhook command {args.webhook_command}")
    return 0


def cmd_deadlines(args: argparse.Namespace) -> int:
    with client_for(args.as_code) as client:
        reply = _get(client, "/v1/deadlines/overdue", **{"as": args.side, "limit": args.limit})
    lines = [
        f"{d['id']}  {d['sender']:<16} -> {d['recipient']:<16} due {d['ack_deadline']}  {d['subject']}"
        for d in reply["overdue"]
    ]
    emit(args, reply, "\n".join(lines) if lines else "no overdue deliveries")
    return 0


def cmd_evidence(args: argparse.Namespace) -> int:
    with client_for(args.as_code) as client:
        if args.evidence_command == "verify":
            reply = _get(client, "/v1/admin/evidence/verify")
            text = (
                f"evidence chain valid: {reply['entries']} entries, head {reply['head_hash']}"
                if reply["valid"]
                else f"evidence chain BROKEN at entry {reply['first_bad_sequence']}: {reply['problem']}"
            )
            emit(args, reply, text)
            return 0 if reply["valid"] else 1
        reply = _get(client, f"/v1/documents/{args.id}/evidence")
        lines = [
            f"{e['sequence']:>8}  {e['at']}  {e['kind']:<14} {e['recipient'] or '':<16} {e['hash'][:16]}…"
            for e in reply["entries"]
        ]
        emit(args, reply, "\n".join(lines) or "no evidence")
    return 0


def cmd_statuses(args: argparse.Namespace) -> int:
    with client_for(args.as_code) as client:
        if args.number:
            package = client._request("GET", f"/v1/documents/{args.id}/statuses/{args.number}").content
            if args.output:
                Path(args.output).write_bytes(package)
                print(f"status package {args.number} written to {args.output}")
            else:
                print(package.decode())
            return 0
        reply = _get(client, f"/v1/documents/{args.id}/statuses")
    lines = [
        f"{s['number']:>3}  {s['at']}  {s['from']:<16} {s['code']}  {s['description']}"
        for s in reply["statuses"]
    ]
    emit(args, reply, "\n".join(lines) or "no statuses yet")
    return 0


def register(sub: Any, common: argparse.ArgumentParser, agency: argparse.ArgumentParser) -> None:
    p = sub.add_parser("webhook", parents=[common], help="push deliveries to your system")
    w_sub = p.add_subparsers(dest="webhook_command", required=True)
    q = w_sub.add_parser("set", parents=[common, agency], help="register or change your webhook")
    q.add_argument("--url", required=True)
    q.add_argument("--secret", help="at least 16 characters; omitted: the platform generates one")
    w_sub.add_parser("show", parents=[common, agency], help="your webhook and its counts")
    w_sub.add_parser("delete", parents=[common, agency], help="stop pushing (pull keeps working)")
    q = w_sub.add_parser("deliveries", parents=[common, agency], help="pushed, pending, dead-lettered")
    q.add_argument("--state", choices=["pending", "pushed", "dead_lettered"])
    q.add_argument("--all", action="store_true", help="operators: every agency")
    q.add_argument("--agency", help="operators: one agency")
    q.add_argument("--limit", type=int, default=100)
    q = w_sub.add_parser("redrive", parents=[common, agency], help="re-drive dead-lettered payloads")
    q.add_argument("ids", nargs="*", help="payload ids (default: every dead letter)")
    q.add_argument("--agency", help="operators: re-drive this agency's dead letters")
    p.set_defaults(func=cmd_webhook)

    p = sub.add_parser("deadlines", parents=[common, agency], help="overdue acknowledgements")
    p.add_argument("--side", choices=["recipient", "sender", "all"], default="recipient")
    p.add_argument("--limit", type=int, default=500)
    p.set_defaults(func=cmd_deadlines)

    p = sub.add_parser("evidence", parents=[common], help="the hash-chained evidence log")
    e_sub = p.add_subparsers(dest="evidence_command", required=True)
    e_sub.add_parser("verify", parents=[common, agency], help="check the whole chain (operators)")
    q = e_sub.add_parser("show", parents=[common, agency], help="a document's evidence entries")
    q.add_argument("id")
    p.set_defaults(func=cmd_evidence)

    p = sub.add_parser("statuses", parents=[common, agency], help="a document's edXML status packages")
    p.add_argument("id")
    p.add_argument("--number", type=int, default=0, help="fetch this package (edXML)")
    p.add_argument("-o", "--output")
    p.set_defaults(func=cmd_statuses)
