"""A small client for the gateway's REST API: what an agency's software integrates with."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx


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
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        try:
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as error:
            raise ApiError(0, f"gateway at {self.base_url} is unreachable: {error}") from error
        if response.status_code >= 400:
            raise error_from(response)
        return response

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
        headers = {"Content-Type": "application/xml"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        result: dict[str, Any] = self._request(
            "POST", "/v1/documents", content=package, headers=headers
        ).json()
        return result

    def document(self, document_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/v1/documents/{document_id}").json()
        return result

    def content(self, document_id: str) -> bytes:
        return self._request("GET", f"/v1/documents/{document_id}/content").content

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

    def post_status(self, document_id: str, code: str, description: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            "POST",
            f"/v1/documents/{document_id}/status",
            json={"code": code, "description": description},
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
        self, *, province: str = "", from_month: str = "", to_month: str = "", format: str = "json"
    ) -> Any:
        response = self._request(
            "GET",
            "/v1/statistics/report",
            params={"province": province, "from": from_month, "to": to_month, "format": format},
        )
        return response.text if format == "csv" else response.json()


def error_from(response: httpx.Response) -> ApiError:
    try:
        problem = response.json()
        detail = str(problem.get("detail") or problem)
    except ValueError:
        problem, detail = {}, response.text[:500] or response.reason_phrase
    return ApiError(response.status_code, detail, problem if isinstance(problem, dict) else {})
