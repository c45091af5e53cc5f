"""A small client for the gateway's REST API: what an agency's software integrates with."""

from __future__ import annotations

import hashlib
import hmac
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypedDict

import httpx

# Statuses worth retrying: rate limited, and a platform service briefly away.
RETRYABLE = frozenset({429, 502, 503, 504})
CHUNK_BYTES = 256 * 1024
SIGNATURE_HEADER = "X-Lienthong-Signature"
TIMESTAMP_HEADER = "X-Lienthong-Timestamp"


def locked_out(response: httpx.Response) -> bool:
    """A 429 for failed sign-ins: the lock lasts minutes, so it is reported, not waited out."""
    return response.status_code == 429 and "sign-in-throttled" in response.text[:300]


class Recipient(TypedDict, total=False):
    code: str
    state: str
    last_status_code: str | None
    updated_at: str | None
    requested_code: str


class SubmitReply(TypedDict):
    id: str
    document_id: str
    recipients: list[Recipient]
    duplicate: bool
    warnings: list[str]


class InboxItem(TypedDict):
    id: str
    document_id: str
    sender: str
    subject: str
    state: str
    delivered_at: str | None


class InboxPage(TypedDict):
    items: list[InboxItem]
    next_cursor: str | None


class StatusReply(TypedDict):
    id: str
    recipients: list[Recipient]


def verify_webhook_signature(
    *,
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """Check a pushed webhook: `X-Lienthong-Signature: sha256=<hex>`, the HMAC-SHA256 with the
    agency's webhook secret over `<X-Lienthong-Timestamp>.<raw body>`, sent recently."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - sent) > tolerance_seconds:
        return False
    expected = hmac.new(secret.encode(), f"{sent}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", signature)


class ApiError(Exception):
    """A problem+json reply from the gateway, or an unreachable gateway."""

    def __init__(self, status: int, detail: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problem = problem or {}

    def __str__(self) -> str:
        kind = str(self.problem.get("type", "")).rsplit("/", 1)[-1]
        return f"{self.status} {kind}: {self.detail}" if kind else f"{self.status}: {self.detail}"


@dataclass
class LienthongClient:
    base_url: str
    client_id: str
    client_secret: str
    timeout: float = 30.0
    # Retries of retryable statuses and connection errors, with exponential back-off and jitter
    # (Retry-After wins when the gateway sends one). POSTs carry an Idempotency-Key, so a retry
    # never acts twice.
    retries: int = 4
    backoff: float = 0.5
    _token: str = ""
    _token_expires: float = 0.0
    _http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self._http = httpx.Client(base_url=self.base_url.rstrip("/"), timeout=self.timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LienthongClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        # A body streamed from a file: a fresh iterator for every attempt.
        content_from: Callable[[], Iterator[bytes]] | None = kwargs.pop("content_from", None)
        attempt = 0
        while True:
            if auth:
                headers["Authorization"] = f"Bearer {self.token()}"
            if content_from is not None:
                kwargs["content"] = content_from()
            try:
                response = self._http.request(method, path, headers=headers, **kwargs)
            except httpx.HTTPError as error:
                if attempt >= self.retries:
                    raise ApiError(0, f"gateway at {self.base_url} is unreachable: {error}") from error
                self._sleep(attempt, None)
                attempt += 1
                continue
            if response.status_code == 401 and auth and attempt == 0 and self._token:
                self._token = ""  # expired or rotated: one fresh token, then give up
                attempt += 1
                continue
            if response.status_code in RETRYABLE and attempt < self.retries and not locked_out(response):
                self._sleep(attempt, response.headers.get("retry-after"))
                attempt += 1
                continue
            if response.status_code >= 400:
                raise error_from(response)
            return response

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        if retry_after and retry_after.isdigit():
            time.sleep(min(float(retry_after), 60.0))
            return
        time.sleep(self.backoff * (2**attempt) * (0.5 + random.random()))

    def token(self) -> str:
        if self._token and time.time() < self._token_expires - 30:
            return self._token
        response = self._request(
            "POST",
            "/v1/oauth/token",
            auth=False,
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
        )
        body = response.json()
        self._token = str(body["access_token"])
        self._token_expires = time.time() + float(body.get("expires_in", 300))
        return self._token

    # -- documents ------------------------------------------------------------------------
    def send_package(self, package: bytes, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Submit an edXML package; a fresh Idempotency-Key by default, kept across retries."""
        headers = {"Content-Type": "application/xml", "Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        result: dict[str, Any] = self._request(
            "POST", "/v1/documents", content=package, headers=headers
        ).json()
        return result

    def send_package_file(self, path: Path, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Submit the edXML package in ``path``, streamed from disk (its Content-Length declared,
        so a gateway refuses one over its limit before reading it); retried as send_package is."""
        size = path.stat().st_size
        headers = {
            "Content-Type": "application/xml",
            "Content-Length": str(size),
            "Idempotency-Key": idempotency_key or str(uuid.uuid4()),
        }
        result: dict[str, Any] = self._request(
            "POST", "/v1/documents", content_from=lambda: _file_chunks(path), headers=headers
        ).json()
        return result

    def limits(self) -> dict[str, Any]:
        """The gateway's package limit and the largest attachment that fits (GET /v1/limits); a
        gateway without that endpoint has the default limit."""
        try:
            result: dict[str, Any] = self._request("GET", "/v1/limits").json()
        except ApiError as error:
            if error.status not in (404, 405):
                raise
            from lienthong_common.package_limits import (
                DEFAULT_MAX_PACKAGE_BYTES,
                ENVELOPE_BYTES,
                describe_limit,
                max_attachment_bytes,
            )

            limit = DEFAULT_MAX_PACKAGE_BYTES
            result = {
                "max_package_bytes": limit,
                "max_attachment_bytes": max_attachment_bytes(limit),
                "envelope_bytes": ENVELOPE_BYTES,
                "detail": describe_limit(limit),
            }
        return result

    def document(self, document_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/v1/documents/{document_id}").json()
        return result

    def content(self, document_id: str, *, progress: Callable[[int, int], None] | None = None) -> bytes:
        """The stored package; `progress(received, total)` is called as the bytes arrive."""
        if progress is None:
            return self._request("GET", f"/v1/documents/{document_id}/content").content
        headers = {"Authorization": f"Bearer {self.token()}"}
        try:
            with self._http.stream(
                "GET", f"/v1/documents/{document_id}/content", headers=headers
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from(response)
                total = int(response.headers.get("content-length") or 0)
                chunks: list[bytes] = []
                received = 0
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    received += len(chunk)
                    progress(received, total)
                return b"".join(chunks)
        except httpx.HTTPError as error:
            raise ApiError(0, f"gateway at {self.base_url} is unreachable: {error}") from error

    def download_content(
        self, document_id: str, out: IO[bytes], *, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Write the stored package to ``out`` as it arrives (never whole in memory); its size.
        ``progress(received, total)`` is called as the bytes arrive."""
        attempt = 0
        while True:
            headers = {"Authorization": f"Bearer {self.token()}"}
            try:
                with self._http.stream(
                    "GET", f"/v1/documents/{document_id}/content", headers=headers
                ) as reply:
                    if reply.status_code == 401 and attempt == 0:
                        self._token = ""  # expired or rotated: one fresh token
                        attempt += 1
                        continue
                    if reply.status_code >= 400:
                        reply.read()
                        raise error_from(reply)
                    total = int(reply.headers.get("content-length") or 0)
                    received = 0
                    for chunk in reply.iter_bytes(CHUNK_BYTES):
                        out.write(chunk)
                        received += len(chunk)
                        if progress is not None:
                            progress(received, total)
                    return received
            except httpx.HTTPError as error:
                raise ApiError(0, f"gateway at {self.base_url} is unreachable: {error}") from error

    def inbox(self, *, cursor: str = "", limit: int = 50) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            "GET", "/v1/inbox", params={"cursor": cursor, "limit": limit}
        ).json()
        return result

    def inbox_all(self, *, limit: int = 100) -> Iterator[dict[str, Any]]:
        cursor = ""
        while True:
            page = self.inbox(cursor=cursor, limit=limit)
            yield from page["items"]
            cursor = page.get("next_cursor") or ""
            if not cursor or not page["items"]:
                return

    def post_status(
        self, document_id: str, code: str, description: str = "", *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Post a business status; a fresh Idempotency-Key by default, kept across retries."""
        result: dict[str, Any] = self._request(
            "POST",
            f"/v1/documents/{document_id}/status",
            json={"code": code, "description": description},
            headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())},
        ).json()
        return result

    # -- directory and statistics -----------------------------------------------------------
    def agencies(self, *, province: str = "", tier: int = 0, as_of: str = "") -> list[dict[str, Any]]:
        body = self._request(
            "GET", "/v1/agencies", params={"province": province, "tier": tier, "as_of": as_of}
        ).json()
        return list(body["agencies"])

    def agency(self, code: str, *, as_of: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/v1/agencies/{code}", params={"as_of": as_of}).json()
        return result

    def report(
        self,
        *,
        province: str = "",
        from_month: str = "",
        to_month: str = "",
        format: str = "json",
        tier: int = 0,
        agency_months: bool = False,
    ) -> Any:
        params: dict[str, Any] = {"province": province, "from": from_month, "to": to_month, "format": format}
        if tier:
            params["tier"] = tier
        if agency_months:
            params["agency_months"] = "true"
        response = self._request("GET", "/v1/statistics/report", params=params)
        return response.text if format == "csv" else response.json()

    def report_paper(
        self,
        *,
        period: str,
        paper_issued: int,
        paper_received: int,
        electronic_issued_other: int = 0,
        note: str = "",
        agency_code: str = "",
    ) -> dict[str, Any]:
        """Report (or correct) an agency's paper traffic for a month; the same report again is a no-op."""
        body: dict[str, Any] = {
            "period": period,
            "paper_issued": paper_issued,
            "paper_received": paper_received,
            "electronic_issued_other": electronic_issued_other,
            "note": note,
        }
        if agency_code:
            body["agency_code"] = agency_code
        result: dict[str, Any] = self._request("POST", "/v1/statistics/paper", json=body).json()
        return result

    def paper_history(self, *, agency_code: str = "", period: str = "") -> list[dict[str, Any]]:
        body = self._request(
            "GET", "/v1/statistics/paper", params={"agency": agency_code, "period": period}
        ).json()
        return list(body["revisions"])

    def rebuild_statistics(self, *, apply: bool = False, timeout: float = 900.0) -> dict[str, Any]:
        """Replay every event into a fresh store and compare with the live counts (administrators)."""
        result: dict[str, Any] = self._request(
            "POST", "/v1/statistics/rebuild", params={"apply": str(apply).lower()}, timeout=timeout
        ).json()
        return result


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while data := source.read(CHUNK_BYTES):
            yield data


def error_from(response: httpx.Response) -> ApiError:
    try:
        problem = response.json()
        detail = str(problem.get("detail") or problem)
    except ValueError:
        problem, detail = {}, response.text[:500] or response.reason_phrase
    return ApiError(response.status_code, detail, problem if isinstance(problem, dict) else {})
