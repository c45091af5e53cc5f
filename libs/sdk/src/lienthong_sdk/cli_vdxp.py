"""`lienthong vdxp systems …`: the VDXP systems that speak the VDXP protocol for agencies.

Administrators only (`--as admin` by default: the credential `lienthong demo` writes). A secret
is printed when a system is added or its secret rotated, and never again: store it in the
system's configuration (`secretkey` of VNPT's SDK) at once.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from lienthong_sdk.cli import CliError, admin_parser, client_for, emit
from lienthong_sdk.client import LienthongClient


class VdxpSystemsClient(LienthongClient):
    """The gateway's /v1/vdxp/systems endpoints."""

    def __enter__(self) -> VdxpSystemsClient:
        return self

    def systems(self, *, agency: str = "") -> dict[str, Any]:
        params = {"agency": agency} if agency else {}
        reply: dict[str, Any] = self._request("GET", "/v1/vdxp/systems", params=params).json()
        return reply

    def add_system(
        self, system_id: str, agencies: list[str], *, admin: bool = False, secret: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"system_id": system_id, "agencies": agencies, "admin": admin}
        if secret:
            body["secret"] = secret
        reply: dict[str, Any] = self._request("POST", "/v1/vdxp/systems", json=body).json()
        return reply

    def update_system(
        self, system_id: str, *, agencies: list[str] | None = None, admin: bool | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if agencies is not None:
            body["agencies"] = agencies
        if admin is not None:
            body["admin"] = admin
        reply: dict[str, Any] = self._request("PATCH", _path(system_id), json=body).json()
        return reply

    def rotate_secret(self, system_id: str, *, overlap_seconds: int | None = None) -> dict[str, Any]:
        body = {} if overlap_seconds is None else {"overlap_seconds": overlap_seconds}
        reply: dict[str, Any] = self._request("POST", _path(system_id) + "/rotate", json=body).json()
        return reply

    def remove_system(self, system_id: str) -> dict[str, Any]:
        reply: dict[str, Any] = self._request("DELETE", _path(system_id)).json()
        return reply


def _path(system_id: str) -> str:
    return f"/v1/vdxp/systems/{quote(system_id, safe='')}"


def _client(code: str) -> VdxpSystemsClient:
    client = client_for(code)
    return VdxpSystemsClient(client.base_url, client.client_id, client.client_secret)


def _codes(text: str) -> list[str]:
    codes = [c.strip() for c in text.split(",") if c.strip()]
    if not codes:
        raise CliError("--agencies needs at least one agency code", 2)
    return codes


def _line(system: dict[str, Any]) -> str:
    flags = " admin" if system.get("admin") else ""
    overlap = ""
    if system.get("previous_valid_until"):
        overlap = f"  (previous secret valid until {system['previous_valid_until']})"
    return f"{system['system_id']:<24}{flags:<7} {', '.join(system['agencies'])}{overlap}"


def cmd_systems_list(args: argparse.Namespace) -> int:
    with _client(args.as_code) as client:
        reply = client.systems(agency=args.agency or "")
    systems = reply["systems"]
    emit(args, reply, "\n".join(_line(s) for s in systems) or "no VDXP systems")
    return 0


def cmd_systems_add(args: argparse.Namespace) -> int:
    with _client(args.as_code) as client:
        reply = client.add_system(args.system_id, _codes(args.agencies), admin=args.admin, secret=args.secret)
    system = reply["system"]
    emit(
        args,
        reply,
        f"added VDXP system {system['system_id']} for {', '.join(system['agencies'])}"
        f"{' (admin)' if system['admin'] else ''}\n"
        f"secret (shown only now): {reply['secret']}",
    )
    return 0


def cmd_systems_update(args: argparse.Namespace) -> int:
    if args.agencies is None and args.admin is None:
        raise CliError("nothing to change: give --agencies and/or --admin/--no-admin", 2)
    agencies = _codes(args.agencies) if args.agencies is not None else None
    with _client(args.as_code) as client:
        reply = client.update_system(args.system_id, agencies=agencies, admin=args.admin)
    emit(args, reply, f"updated: {_line(reply)}")
    return 0


def cmd_systems_rotate(args: argparse.Namespace) -> int:
    if args.overlap is not None and args.overlap < 0:
        raise CliError("--overlap is a number of seconds, 0 or more", 2)
    with _client(args.as_code) as client:
        reply = client.rotate_secret(args.system_id, overlap_seconds=args.overlap)
    system = reply["system"]
    until = system.get("previous_valid_until")
    previous = f"the previous secret works until {until}" if until else "the previous secret no longer works"
    emit(
        args,
        reply,
        f"new secret for VDXP system {system['system_id']} (shown only now): {reply['secret']}\n{previous}",
    )
    return 0


def cmd_systems_remove(args: argparse.Namespace) -> int:
    with _client(args.as_code) as client:
        reply = client.remove_system(args.system_id)
    emit(args, reply, f"removed VDXP system {reply['system_id']} and its secrets")
    return 0


def register(sub: Any, common: argparse.ArgumentParser, agency: argparse.ArgumentParser) -> None:
    admin = admin_parser()
    p = sub.add_parser("vdxp", parents=[common], help="the VDXP-compatible facade (administrators)")
    v_sub = p.add_subparsers(dest="vdxp_command", required=True)
    s = v_sub.add_parser(
        "systems", parents=[common], help="systems that speak VDXP for agencies, and their secrets"
    )
    s_sub = s.add_subparsers(dest="systems_command", required=True)

    q = s_sub.add_parser("list", parents=[common, admin], help="every VDXP system")
    q.add_argument("--agency", metavar="CODE", help="only those acting for this agency")
    q.set_defaults(func=cmd_systems_list)

    q = s_sub.add_parser("add", parents=[common, admin], help="register a system; prints its secret once")
    q.add_argument("system_id", metavar="SYSTEMID")
    q.add_argument("--agencies", required=True, metavar="CODE[,CODE]", help="the agencies it acts for")
    q.add_argument("--admin", action="store_true", help="may write the directory (registerAgency)")
    q.add_argument(
        "--secret",
        help="keep an existing installation's secret (default: a new random one); "
        "note that command lines are visible to other local users",
    )
    q.set_defaults(func=cmd_systems_add)

    q = s_sub.add_parser("update", parents=[common, admin], help="change a system's agencies or admin right")
    q.add_argument("system_id", metavar="SYSTEMID")
    q.add_argument("--agencies", metavar="CODE[,CODE]", help="replaces the set")
    q.add_argument("--admin", action=argparse.BooleanOptionalAction, default=None)
    q.set_defaults(func=cmd_systems_update)

    q = s_sub.add_parser("rotate", parents=[common, admin], help="a new secret; prints it once")
    q.add_argument("system_id", metavar="SYSTEMID")
    q.add_argument(
        "--overlap",
        type=int,
        metavar="SECONDS",
        help="how long the previous secret keeps working (default 86400; 0 = it stops now)",
    )
    q.set_defaults(func=cmd_systems_rotate)

    q = s_sub.add_parser("remove", parents=[common, admin], help="delete a system and its secrets")
    q.add_argument("system_id", metavar="SYSTEMID")
    q.set_defaults(func=cmd_systems_remove)
