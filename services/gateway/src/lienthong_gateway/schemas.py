"""Response models and examples of the REST API, so /docs and /openapi.json say exactly what is sent."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lienthong_gateway.problems import PROBLEM_JSON

DOC_ID = "6f1c2f0e-8a0b-4f5e-9d3c-1b2a3c4d5e6f"
EDXML_ID = "000.00.00.H49,2026/11/26,7816/UBND-VP"


class ProblemModel(BaseModel):
    """RFC 9457 problem details; `type` ends with a stable, machine-readable reason."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    instance: str
    trace_id: str | None = None


_PROBLEM_EXAMPLES: dict[int, tuple[str, str]] = {
    400: ("unsupported-grant-type", "grant_type 'password' is not supported; use client_credentials"),
    401: ("missing-credentials", "missing bearer token: obtain one with POST /v1/oauth/token"),
    403: ("status-not-allowed", "only the sender posts 13 (recall); 000.00.02.H49 is a recipient"),
    404: ("document-not-found", f"document {DOC_ID} was not found"),
    409: ("conflict", "delivery to 000.00.02.H49 is accepted; 01 cannot follow"),
    413: (
        "package-too-large",
        "package is 60000000 bytes; the limit is 52428800 bytes: the largest attachment that fits is "
        "37.5 MiB (39272448 bytes; several attachments: their total): a package may be at most "
        "50.0 MiB (52428800 bytes), attachments travel base64-encoded (4 bytes for every 3) and the "
        "envelope takes up to 64 KiB",
    ),
    422: ("invalid-edxml", "edXML package is not valid: MessageHeader/From/OrganId is missing"),
    429: ("rate-limited", "000.00.00.H49 is over its rate limit of 50 requests/s (burst 200)"),
    502: ("bad-gateway", "a platform service failed"),
    503: ("service-unavailable", "a platform service is unavailable; try again"),
    504: ("gateway-timeout", "a platform service did not answer in time"),
}

STANDARD_ERRORS = (401, 403, 422, 429, 502, 503, 504)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for problem+json replies, each with an example."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, *STANDARD_ERRORS}):
        kind, detail = _PROBLEM_EXAMPLES.get(status, ("error", "error"))
        headers = (
            {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}}
            if status == 429
            else {}
        )
        out[status] = {
            "description": kind.replace("-", " "),
            "model": ProblemModel,
            "headers": headers,
            "content": {
                PROBLEM_JSON: {
                    "schema": {"$ref": "#/components/schemas/ProblemModel"},
                    "example": {
                        "type": f"https://lienthong.gov.vn/problems/{kind}",
                        "title": kind.replace("-", " ").capitalize(),
                        "status": status,
                        "detail": detail,
                        "instance": f"/v1/documents/{DOC_ID}",
                        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                    },
                }
            },
        }
    return out


def examples(*items: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(items)})


class TokenReply(BaseModel):
    model_config = examples(
        {"access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6…", "token_type": "Bearer", "expires_in": 900}
    )
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class RecipientState(BaseModel):
    code: str = Field(description="the agency that receives (a successor when redirected)")
    state: str = Field(description="queued | delivered | arrived | accepted | … | refused")
    last_status_code: str | None = None
    updated_at: str | None = None
    requested_code: str | None = Field(default=None, description="the code addressed, when redirected")


class PackageLimits(BaseModel):
    """How large a package may be, and so the largest attachment that fits."""

    model_config = examples(
        {
            "max_package_bytes": 52428800,
            "max_attachment_bytes": 39272448,
            "envelope_bytes": 65536,
            "detail": "the largest attachment that fits is 37.5 MiB (39272448 bytes; several "
            "attachments: their total): a package may be at most 50.0 MiB (52428800 bytes), "
            "attachments travel base64-encoded (4 bytes for every 3) and the envelope takes up to 64 KiB",
        }
    )
    max_package_bytes: int
    max_attachment_bytes: int
    envelope_bytes: int
    detail: str


class SubmitReply(BaseModel):
    model_config = examples(
        {
            "id": DOC_ID,
            "document_id": EDXML_ID,
            "recipients": [{"code": "000.00.02.H49", "state": "queued"}],
            "duplicate": False,
            "warnings": [],
        }
    )
    id: str
    document_id: str
    recipients: list[RecipientState]
    duplicate: bool = False
    warnings: list[str] = Field(default_factory=list)


class SignatureReport(BaseModel):
    attachment: str
    field: str
    indication: str
    sub_indication: str | None = None
    signer: str
    signer_agency: str | None = None
    signing_time: str | None = None
    chain: list[str] = Field(default_factory=list)
    message: str = ""


class Validation(BaseModel):
    indication: str = Field(description="TOTAL_PASSED | TOTAL_FAILED | INDETERMINATE (ETSI EN 319 102-1)")
    sub_indication: str | None = None
    reason: str | None = None
    verified_at: str | None = None
    signatures: list[SignatureReport] = Field(default_factory=list)


class VerificationHold(BaseModel):
    """Why a document is still verifying: its signer's revocation status (CRL/OCSP) could not be
    confirmed; sigverify tries again and refuses it only once the deadline has passed."""

    waiting_for: str = Field(description="what verification waits for: revocation data")
    reason: str = Field(description="the sources that gave no current data at the last attempt")
    held_since: str | None = None
    next_attempt_at: str | None = None
    attempts: int
    deadline: str | None = Field(default=None, description="refused then if still unconfirmed")


class AttachmentInfo(BaseModel):
    name: str
    content_type: str
    sha256: str
    size: int


class PackageInfo(BaseModel):
    sha256: str
    size: int


class TimelineEntry(BaseModel):
    recipient: str
    code: str | None = None
    state: str
    description: str = ""
    actor: str = ""
    at: str | None = None


class DocumentView(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "id": DOC_ID,
                    "document_id": EDXML_ID,
                    "sender": "000.00.00.H49",
                    "subject": "Về việc triển khai liên thông văn bản điện tử",
                    "submitted_at": "2026-11-26T02:15:00+00:00",
                    "package": {"sha256": "9f86d081884c7d65…", "size": 48211},
                    "attachments": [
                        {
                            "name": "cv.pdf",
                            "content_type": "application/pdf",
                            "sha256": "e3b0c442…",
                            "size": 40100,
                        }
                    ],
                    "warnings": [],
                    "state": "routed",
                    "validation": {
                        "indication": "TOTAL_PASSED",
                        "sub_indication": None,
                        "reason": None,
                        "verified_at": "2026-11-26T02:15:01+00:00",
                        "signatures": [],
                    },
                    "recipients": [
                        {
                            "code": "000.00.02.H49",
                            "state": "accepted",
                            "last_status_code": "03",
                            "updated_at": "2026-11-26T03:00:00+00:00",
                        }
                    ],
                    "timeline": [
                        {
                            "recipient": "000.00.02.H49",
                            "code": "03",
                            "state": "accepted",
                            "description": "Đã tiếp nhận",
                            "actor": "000.00.02.H49",
                            "at": "2026-11-26T03:00:00+00:00",
                        }
                    ],
                }
            ]
        },
    )
    id: str
    document_id: str
    sender: str
    subject: str
    submitted_at: str | None = None
    package: PackageInfo
    attachments: list[AttachmentInfo]
    warnings: list[str]
    state: str = Field(description="verifying | routed | refused")
    validation: Validation | None = None
    hold: VerificationHold | None = Field(
        default=None,
        description="present while the document is held, still verifying, because its signer's "
        "revocation status could not be confirmed yet",
    )
    refusal_reason: str | None = None
    recipients: list[RecipientState]
    timeline: list[TimelineEntry]


class InboxItem(BaseModel):
    id: str
    document_id: str
    sender: str
    subject: str
    state: str
    delivered_at: str | None = None


class InboxPage(BaseModel):
    model_config = examples(
        {
            "items": [
                {
                    "id": DOC_ID,
                    "document_id": EDXML_ID,
                    "sender": "000.00.00.H49",
                    "subject": "Về việc triển khai liên thông văn bản điện tử",
                    "state": "delivered",
                    "delivered_at": "2026-11-26T02:15:02+00:00",
                }
            ],
            "next_cursor": "MjAyNi0xMS0yNlQwMjoxNTowMnw2ZjFj",
        }
    )
    items: list[InboxItem]
    next_cursor: str | None = Field(
        default=None, description="pass as ?cursor= for the next page; null at the end"
    )


class StatusBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"code": "03", "description": "Đã tiếp nhận"}]},
    )
    code: str = Field(
        pattern=r"^(0[1-6]|13|15|16)$",
        description="01..06, 15, 16 from a recipient; 13 (recall) from the sender",
    )
    description: str = Field(default="", max_length=2000)


class StatusReply(BaseModel):
    model_config = examples(
        {
            "id": DOC_ID,
            "recipients": [{"code": "000.00.02.H49", "state": "accepted", "last_status_code": "03"}],
        }
    )
    id: str
    recipients: list[RecipientState]


class HealthReply(BaseModel):
    model_config = examples({"status": "ok"})
    status: str


class ReadinessReply(BaseModel):
    model_config = examples({"status": "ready", "services": {"directory": "SERVING", "docstore": "SERVING"}})
    status: str
    services: dict[str, str]
