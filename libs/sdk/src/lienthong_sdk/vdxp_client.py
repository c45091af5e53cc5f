"""A VDXP client that signs calls exactly as VNPT's Java SDK 2.0.1 does (docs/vdxp.md).

For Python software moving off the national axis's SDK, and for tests of the `/vdxp/` facade:
every parameter becomes an `XroadVnpt-<name>` header, the sign-header is the compact JSON of
those headers in the order given, and `XroadVnpt-hash-header` is hex HMAC-SHA256 of it with the
system's secret. `sendEdoc` appends CRLF to the file and declares its SHA-256 per byte as
unpadded hex, as the SDK does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import httpx

VIETNAM = dt.timezone(dt.timedelta(hours=7))
USER_AGENT = "JAVASDKAgent/1.0.0 XRoad/VPCP"


def sdk_timestamp(moment: dt.datetime | None = None) -> str:
    """`ddMMyyyy'T'HHmmss+SSSS`: Vietnam local time, the last four digits milliseconds."""
    moment = (moment or dt.datetime.now(VIETNAM)).astimezone(VIETNAM)
    return moment.strftime("%d%m%YT%H%M%S") + f"+{moment.microsecond // 1000:04d}"


def sign_header(entries: Mapping[str, str]) -> str:
    """The signed JSON as the SDK writes it: compact, map order, `/` and non-ASCII left raw."""
    body = json.dumps(
        {f"XroadVnpt-{k}": v for k, v in entries.items()}, ensure_ascii=False, separators=(",", ":")
    )
    return body.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def hash_file(content: bytes) -> str:
    """SHA-256 of the file, each byte as hex without zero padding (the SDK's spelling)."""
    return "".join(format(b, "x") for b in hashlib.sha256(content).digest())


def parameter(value: Any) -> str:
    """A JSON argument's value as the SDK puts it in its header map."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and not isinstance(value[0], (list, dict)):
        return str(value[0])
    return json.dumps(value, separators=(",", ":"))


class VdxpClient:
    """One system's calls to a VDXP endpoint (e.g. ``http://127.0.0.1:8080/vdxp``)."""

    def __init__(
        self,
        endpoint: str,
        system_id: str,
        secret: str,
        *,
        timestamp: str | None = None,
        timeout: float = 60.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.system_id = system_id
        self.secret = secret
        self.timestamp = timestamp
        # Another httpx client (e.g. a test client bound to an app) may carry the calls.
        self.http = http or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> VdxpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def headers(self, params: Mapping[str, Any], content_type: str) -> dict[str, bytes]:
        entries = {"systemid": self.system_id}
        entries.update({k: parameter(v) for k, v in params.items()})
        entries["timestamp"] = self.timestamp or sdk_timestamp()
        entries["Content-Type"] = content_type
        signed = sign_header(entries)
        mac = hmac.new(self.secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        headers = {f"XroadVnpt-{k}": v.encode() for k, v in entries.items()}
        headers.update(
            {
                "Content-Type": content_type.encode(),
                "XroadVnpt-sign-header-key": ";".join(entries).encode(),
                "XroadVnpt-sign-header": signed.encode(),
                "XroadVnpt-hash-header": mac.encode(),
                "User-Agent": USER_AGENT.encode(),
                "XroadVnpt-version": b"3.0.201608",
            }
        )
        return headers

    def request(
        self,
        operation: str,
        params: Mapping[str, Any],
        *,
        body: bytes = b"",
        method: str = "POST",
        content_type: str = "application/json",
    ) -> httpx.Response:
        return self.http.request(
            method,
            f"{self.endpoint}/{operation}",
            content=body or None,
            headers={k.encode(): v for k, v in self.headers(params, content_type).items()},
        )

    def call(
        self, operation: str, params: Mapping[str, Any] | None = None, *, body: bytes = b"{}"
    ) -> dict[str, Any]:
        """A JSON operation (getReceivedEdocList, getEdoc, updateStatus, …); the reply object."""
        reply = self.request(operation, params or {}, body=body)
        data: dict[str, Any] = reply.json()
        return data

    def send_edoc(self, package: bytes, params: Mapping[str, Any]) -> dict[str, Any]:
        """sendEdoc: the file plus CRLF as the body, `hash-file` declared as the SDK does."""
        signed = {**params, "hash-file": hash_file(package)}
        reply = self.request(
            "sendEdoc", signed, body=package + b"\r\n", content_type="application/octet-stream"
        )
        data: dict[str, Any] = reply.json()
        return data

    def download_edoc(self, doc_id: str) -> bytes:
        """downloadEdoc (GET): the package's bytes; empty when refused."""
        return self.request("downloadEdoc", {"docId": doc_id}, method="GET").content
