"""A cache of successful certificate-path validations (docs/adr/0034).

Used only when the accelerators are installed (:mod:`lienthong_common.pades.accelerators`
replaces pyHanko's ``validate_cert_usage`` with a version that consults it for contexts a
:class:`~lienthong_common.pades.validation.PdfVerifier` tagged); otherwise every path is
validated from scratch.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pyhanko_certvalidator import ValidationContext

# A successful path validation is reused for at most this long, even if every input is unchanged.
_PATH_CACHE_TTL = timedelta(minutes=5)
_PATH_CACHE_SIZE = 4096


class PathCache:
    """Successful certificate path validations, reused across documents of the same signer.

    The same agency signs thousands of PDFs with one certificate: validating its path (path
    building, the CA links' signatures, validity periods, revocation against the CRLs) once is
    enough while nothing it depends on changes. The key holds everything the outcome depends on:

    * the certificate validated (DER) and every certificate the validation could build paths
      from (the context's registry: what the document embeds), all by SHA-256;
    * the trust store (every anchor's SHA-256) and the revocation policy, via the verifier;
    * the exact revocation data given to the validation (SHA-256 of each CRL / OCSP response):
      a new CRL that revokes the signer is a different key, so the path is validated again;
    * the key-usage constraints and PKIX parameters asked for.

    Only successes are stored, only for validation at "now" (``at`` unset) with revocation
    data that was current, and each entry expires at the earliest of: the notAfter of every
    certificate on the path, the nextUpdate of the revocation data used, and a five-minute
    TTL; a clock that moved back before the entry's creation also misses. Failures are never
    cached, so every failing document is diagnosed afresh.
    """

    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[datetime, datetime, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: bytes, now: datetime) -> Any:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return None
        created, expires, result = entry
        if not created <= now < expires:
            with self._lock:
                self._entries.pop(key, None)
            return None
        return result

    def put(self, key: bytes, now: datetime, expires: datetime, result: Any) -> None:
        if expires <= now:
            return
        with self._lock:
            if len(self._entries) >= _PATH_CACHE_SIZE:
                self._entries.clear()
            self._entries[key] = (now, expires, result)


@dataclass(frozen=True)
class PathScope:
    """Tags a ValidationContext whose successful path validations may be cached."""

    cache: PathCache
    digest: bytes  # trust store, policy and the revocation data given to the context
    revinfo_current_until: datetime | None

    def key(self, cert: Any, context: ValidationContext, key_usage: Any, params: Any) -> bytes:
        known = sorted(hashlib.sha256(c.dump()).digest() for c in context.certificate_registry)
        digest = hashlib.sha256(self.digest)
        digest.update(hashlib.sha256(cert.dump()).digest())
        digest.update(b"".join(known))
        digest.update(repr((key_usage, params)).encode())
        return digest.digest()

    def expiry(self, result: Any, now: datetime) -> datetime:
        limits = [now + _PATH_CACHE_TTL]
        if self.revinfo_current_until is not None:
            limits.append(self.revinfo_current_until)
        for cert in result.success_result.iter_certs(include_root=True):
            limits.append(cert.not_valid_after)
        return min(limits)


