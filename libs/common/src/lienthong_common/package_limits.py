"""The edXML package size limit in the terms an agency can act on: the largest attachment that fits.

The gateway limits packages (``LIENTHONG_GATEWAY__MAX_REQUEST_BYTES``, 50 MiB by default), but
an agency knows the size of its file, not of the package it becomes: attachments travel
base64-encoded (4 bytes for every 3) inside an envelope of headers, manifest and the XML-DSig
signature with its certificate chain. The envelope is counted generously (``ENVELOPE_BYTES``,
a few KiB in practice), so an attachment up to :func:`max_attachment_bytes` always fits. Every
refusal (REST 413, the /vdxp/ FAIL, ``lienthong send``) and the documentation say it this way.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "DEFAULT_MAX_PACKAGE_BYTES",
    "ENVELOPE_BYTES",
    "base64_size",
    "describe_limit",
    "max_attachment_bytes",
    "package_size_bound",
]

# GatewaySettings.max_request_bytes' default (the limit assumed of a gateway that does not say).
DEFAULT_MAX_PACKAGE_BYTES = 50 * 1024 * 1024
# Headers, manifest and envelope signature: about 8 KiB for one attachment and its signer's
# certificate chain; each further attachment adds under 1 KiB of elements.
ENVELOPE_BYTES = 64 * 1024


def base64_size(size: int) -> int:
    """Bytes of ``size`` bytes once base64-encoded (no line breaks, as packages are written)."""
    return 4 * ((size + 2) // 3)


def max_attachment_bytes(max_package_bytes: int) -> int:
    """The largest attachment (several: their total) that fits in a package of at most
    ``max_package_bytes``."""
    return max(0, (max_package_bytes - ENVELOPE_BYTES) // 4 * 3)


def package_size_bound(attachment_sizes: Iterable[int]) -> int:
    """At most how large a package carrying attachments of these sizes is."""
    return ENVELOPE_BYTES + sum(base64_size(size) for size in attachment_sizes)


def mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def describe_limit(max_package_bytes: int) -> str:
    """The limit as one sentence: the largest attachment that fits, and why it is that."""
    largest = max_attachment_bytes(max_package_bytes)
    return (
        f"the largest attachment that fits is {mib(largest)} ({largest} bytes; several attachments: "
        f"their total): a package may be at most {mib(max_package_bytes)} ({max_package_bytes} bytes), "
        f"attachments travel base64-encoded (4 bytes for every 3) and the envelope takes up to "
        f"{ENVELOPE_BYTES // 1024} KiB"
    )
