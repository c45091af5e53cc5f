"""The VDXP wire protocol as VNPT's Java SDK 2.0.1 speaks it (docs/vdxp.md, VDXP-WIRE.md).

Every parameter arrives as an `XroadVnpt-<name>` header. The SDK signs them: the
`XroadVnpt-sign-header` value is a JSON object of `"XroadVnpt-<name>": "<value>"` pairs and
`XroadVnpt-hash-header` is hex HMAC-SHA256(secret, those raw bytes). The rules this module
protects:

- the HMAC is computed over the raw bytes received, never a re-serialisation (the SDK's JSON
  escaping is its own);
- only signed values are acted on, and each must equal the header actually sent (names
  case-insensitively), so an unsigned header can neither add nor change a parameter;
- the timestamp is the SDK's `ddMMyyyy'T'HHmmss+SSSS` (the `+SSSS` is milliseconds, not a zone)
  and is fixed per SDK object for days, so its age is not checked (only, if configured, a
  timestamp too far in the future);
- `hash-file` is SHA-256 of the file without the CRLF the SDK appends to the body, written
  per byte as unpadded hex; standard and BigInteger-style hex are accepted too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse

from lienthong_common.clock import VIETNAM

PREFIX = "xroadvnpt-"
SIGN_HEADER = "xroadvnpt-sign-header"
SIGN_KEYS = "xroadvnpt-sign-header-key"
HASH_HEADER = "xroadvnpt-hash-header"
TIMESTAMP = re.compile(r"\d{8}T\d{6}\+0\d{3}")
HEX = re.compile(r"[0-9a-fA-F]{64}")


class WireError(Exception):
    """A request the facade refuses before acting: (VDXP error code, reason)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class SignedRequest:
    """The signed parameters of one call, before the signature itself is checked."""

    system_id: str
    signed_bytes: bytes
    signature: str
    # Lower-cased parameter name -> [(name as the SDK spelled it, value)], in signed order.
    params: Mapping[str, list[tuple[str, str]]] = field(default_factory=dict)
    timestamp: dt.datetime | None = None

    def get(self, name: str) -> str:
        """A signed parameter's value ('' when absent); the exact spelling wins over case variants."""
        spellings = self.params.get(name.lower(), [])
        for spelled, value in spellings:
            if spelled == name:
                return value.strip()
        return spellings[0][1].strip() if spellings else ""


def raw_headers(scope_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, list[bytes]]:
    """Header name (lower-cased) -> every raw value received, in order."""
    found: dict[str, list[bytes]] = {}
    for name, value in scope_headers:
        found.setdefault(name.decode("latin-1").lower(), []).append(value)
    return found


def parse_timestamp(value: str) -> dt.datetime:
    """`ddMMyyyy'T'HHmmss+SSSS`: local (Vietnam) time, the last four digits milliseconds."""
    if not TIMESTAMP.fullmatch(value):
        raise WireError(401, f"XroadVnpt-timestamp {value[:40]!r} is not ddMMyyyyTHHmmss+SSSS")
    try:
        moment = dt.datetime.strptime(value[:15], "%d%m%YT%H%M%S")
    except ValueError as error:
        raise WireError(401, f"XroadVnpt-timestamp {value!r} is not a real date and time") from error
    return moment.replace(microsecond=int(value[16:]) * 1000, tzinfo=VIETNAM)


def read_signed_request(
    scope_headers: Iterable[tuple[bytes, bytes]],
    *,
    max_future_skew: dt.timedelta | None = None,
    now: dt.datetime | None = None,
) -> SignedRequest:
    """Check the signed header against the headers sent; the HMAC is checked by the caller."""
    headers = raw_headers(scope_headers)
    system_id = _single(headers, "xroadvnpt-systemid")
    signed_bytes = _single_bytes(headers, SIGN_HEADER)
    signature = _single(headers, HASH_HEADER)
    if not system_id or not signed_bytes or not signature:
        missing = [
            name
            for name, value in (
                ("XroadVnpt-systemid", system_id),
                ("XroadVnpt-sign-header", signed_bytes),
                ("XroadVnpt-hash-header", signature),
            )
            if not value
        ]
        raise WireError(401, f"missing {', '.join(missing)}: sign the request as the VDXP SDK does")
    if not HEX.fullmatch(signature):
        raise WireError(401, "XroadVnpt-hash-header is not 64 hex digits (HMAC-SHA256)")
    try:
        signed = json.loads(signed_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise WireError(401, "XroadVnpt-sign-header is not a JSON object") from error
    if not isinstance(signed, dict) or not all(isinstance(v, str) for v in signed.values()):
        raise WireError(401, "XroadVnpt-sign-header must be a JSON object of strings")
    params: dict[str, list[tuple[str, str]]] = {}
    for key, value in signed.items():
        if not key.lower().startswith(PREFIX) or len(key) == len(PREFIX):
            raise WireError(401, f"signed key {key[:60]!r} is not an XroadVnpt- header")
        name = key[len(PREFIX) :]
        sent = headers.get(key.lower(), [])
        if not any(_text(v) == value for v in sent):
            raise WireError(401, f"signed header {key} does not match the {key} header sent")
        params.setdefault(name.lower(), []).append((name, value))
    request = SignedRequest(
        system_id=system_id, signed_bytes=signed_bytes, signature=signature, params=params
    )
    if request.get("systemid") != system_id:
        raise WireError(401, "XroadVnpt-systemid is not signed, or the signed value differs")
    timestamp = parse_timestamp(request.get("timestamp"))
    if max_future_skew is not None and timestamp - (now or dt.datetime.now(VIETNAM)) > max_future_skew:
        raise WireError(401, f"XroadVnpt-timestamp {request.get('timestamp')} is in the future")
    return SignedRequest(
        system_id=system_id,
        signed_bytes=signed_bytes,
        signature=signature,
        params=params,
        timestamp=timestamp,
    )


def _single_bytes(headers: Mapping[str, list[bytes]], name: str) -> bytes:
    values = headers.get(name, [])
    if len(values) > 1:
        raise WireError(401, f"{name} was sent {len(values)} times")
    return values[0].strip() if values else b""


def _single(headers: Mapping[str, list[bytes]], name: str) -> str:
    return _text(_single_bytes(headers, name))


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return raw.decode("latin-1").strip()


def sdk_hex(digest: bytes) -> str:
    """The SDK's hash-file spelling: each byte as hex without zero padding."""
    return "".join(format(b, "x") for b in digest)


def match_hash_file(declared: str, body: bytes) -> bytes | None:
    """The file the body carries if `hash-file` matches it (without the SDK's CRLF), else None."""
    want = declared.strip().lower()
    candidates = ([body[:-2]] if body.endswith(b"\r\n") else []) + [body]
    for content in candidates:
        digest = hashlib.sha256(content).digest()
        if want in (sdk_hex(digest), digest.hex(), format(int.from_bytes(digest, "big"), "x")):
            return content
    return None


def recipient_codes(to: str) -> list[str]:
    """`to` as the SDK sends it: a JSON array, a JSON string, or a comma list."""
    text = to.strip()
    if not text:
        return []
    if text[0] in '["':
        try:
            parsed: Any = json.loads(text)
        except ValueError as error:
            raise WireError(422, f"to {text[:80]!r} is not valid JSON") from error
        listed = parsed if isinstance(parsed, list) else [parsed]
    else:
        listed = text.split(",")
    return [str(code).strip() for code in listed if str(code).strip()]


class VdxpResponse(JSONResponse):
    """A VDXP reply: compact JSON, ASCII only (`\\uXXXX`), which the SDK reads under any charset."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def reply_ok(**fields: Any) -> VdxpResponse:
    """Success: omit empty fields rather than send null, which the SDK cannot read."""
    return VdxpResponse({"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success", **_without_nulls(fields)})


def reply_fail(code: int, reason: str, *, http_status: int = 200, **fields: Any) -> VdxpResponse:
    return VdxpResponse(
        {"status": "FAIL", "ErrorCode": str(code), "ErrorDesc": reason, **_without_nulls(fields)},
        status_code=http_status,
    )


def _without_nulls(fields: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, list):
            value = [_without_nulls(v) if isinstance(v, Mapping) else v for v in value]
        out[key] = value
    return out


def vdxp_time(moment: dt.datetime | None) -> str | None:
    """Times in replies as the axis writes them (Vietnam local, with offset); None when unknown."""
    if moment is None:
        return None
    return moment.astimezone(VIETNAM).isoformat(timespec="seconds")
