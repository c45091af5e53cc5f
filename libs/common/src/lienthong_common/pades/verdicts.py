"""What validation says: ETSI EN 319 102-1 indications, per signature and per PDF.

The sub-indication constants, the revocation modes, and the small helpers every part of
:mod:`lienthong_common.pades` shares (a verdict for an unreadable PDF, exception text).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

RevocationMode = Literal["if-declared", "soft-fail", "hard-fail", "off"]
REVOCATION_MODES: tuple[RevocationMode, ...] = ("if-declared", "soft-fail", "hard-fail", "off")
T = TypeVar("T")

NO_SIGNATURE = "NO_SIGNATURE"
HASH_FAILURE = "HASH_FAILURE"
SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
FORMAT_FAILURE = "FORMAT_FAILURE"
REVOKED = "REVOKED"
CRYPTO_CONSTRAINTS_FAILURE = "CRYPTO_CONSTRAINTS_FAILURE"


class Indication(StrEnum):
    """Main status indication of ETSI EN 319 102-1, clause 5.1.3."""

    TOTAL_PASSED = "TOTAL_PASSED"
    TOTAL_FAILED = "TOTAL_FAILED"
    INDETERMINATE = "INDETERMINATE"


SEVERITY = {Indication.TOTAL_PASSED: 0, Indication.INDETERMINATE: 1, Indication.TOTAL_FAILED: 2}


@dataclass(frozen=True)
class SignatureVerdict:
    """The verdict on one signature field.

    ``modified_after_signing`` is True when a later incremental update changed the document
    beyond what is allowed after a signature (form filling, further signatures); later
    signatures alone leave it False.
    """

    field_name: str
    indication: Indication
    sub_indication: str | None
    signer_subject: str
    signer_certificate_der: bytes
    agency_code: str | None
    signing_time: datetime | None
    chain: list[str]
    modified_after_signing: bool
    message: str
    # What revocation information was used (or could not be had), one line per source.
    revocation: tuple[str, ...] = ()
    # False when some declared source could not be reached (soft-fail passed without it).
    revocation_confirmed: bool = True


@dataclass(frozen=True)
class PdfVerdict:
    """The verdict on a whole PDF: the worst of its signatures."""

    indication: Indication
    sub_indication: str | None
    signatures: list[SignatureVerdict]
    message: str

    @property
    def passed(self) -> bool:
        return self.indication is Indication.TOTAL_PASSED

def format_failure(message: str) -> PdfVerdict:
    return PdfVerdict(
        indication=Indication.TOTAL_FAILED,
        sub_indication=FORMAT_FAILURE,
        signatures=[],
        message=message,
    )


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def safe(func: Any, default: T) -> T:
    try:
        return func()  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - best-effort detail for a verdict on a broken signature
        return default


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def pem_to_der(data: bytes) -> bytes:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    return data
