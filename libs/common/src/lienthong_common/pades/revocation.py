"""Revocation data (CRLs, OCSP responses) for chains that reach a trust anchor (docs/adr/0032).

Fetched by us, never by pyHanko, and only from the URLs of certificates that already chain,
signature by signature, to a trust anchor; kept in a :class:`RevocationCache` (memory, plus a
directory shared by processes) until its nextUpdate. The URLs are still chosen by whoever
issued the certificates, so every fetch goes through :mod:`lienthong_common.outbound`
(docs/adr/0080): the host is resolved and every address checked (loopback, private, link-local,
CGNAT, metadata… refused unless an operator allow-list admits them; metadata never), the
connection goes to the checked address, redirects are not followed, and the response is
bounded in size and time. A refused URL is an unusable source with the reason in the verdict.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp

from lienthong_common.outbound import (
    OutboundPolicy,
    OutboundRefused,
    checked_client,
    failure_reason,
    status_reason,
)
from lienthong_common.pades.verdicts import describe

log = logging.getLogger(__name__)


_NEGATIVE_TTL = 30.0  # seconds a failed source is not retried (an outage must not stall every check)
_OCSP_DEFAULT_TTL = timedelta(minutes=5)  # an OCSP response without nextUpdate
MAX_REVINFO_BYTES = 20 * 1024 * 1024  # a national CA's CRL is a few MB at most


@dataclass(frozen=True)
class CachedRevinfo:
    """A CRL or OCSP response (DER) and the moment it stops being current."""

    der: bytes
    next_update: datetime | None
    fetched_at: datetime


class RevocationCache:
    """CRLs and OCSP responses kept until their nextUpdate: in memory, and in ``directory``.

    The directory (one ``.der`` and one ``.json`` per source, written by atomic rename) is shared
    by every process of a host and survives restarts, which is what lets validation run offline.
    ``directory=None`` keeps the cache in memory only.
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self._memory: dict[str, CachedRevinfo] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedRevinfo | None:
        with self._lock:
            hit = self._memory.get(key)
        if hit is not None or self.directory is None:
            return hit
        name = hashlib.sha256(key.encode()).hexdigest()
        try:
            meta = json.loads((self.directory / f"{name}.json").read_text())
            der = (self.directory / f"{name}.der").read_bytes()
        except (OSError, ValueError):
            return None
        if hashlib.sha256(der).hexdigest() != meta.get("sha256"):
            return None  # torn or foreign file: refetch
        entry = CachedRevinfo(
            der=der,
            next_update=datetime.fromisoformat(meta["next_update"]) if meta.get("next_update") else None,
            fetched_at=datetime.fromisoformat(meta["fetched_at"]),
        )
        with self._lock:
            self._memory[key] = entry
        return entry

    def put(self, key: str, entry: CachedRevinfo) -> None:
        with self._lock:
            self._memory[key] = entry
        if self.directory is None:
            return
        name = hashlib.sha256(key.encode()).hexdigest()
        meta = {
            "source": key,
            "sha256": hashlib.sha256(entry.der).hexdigest(),
            "next_update": entry.next_update.isoformat() if entry.next_update else None,
            "fetched_at": entry.fetched_at.isoformat(),
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            _atomic_write(self.directory / f"{name}.der", entry.der)
            _atomic_write(self.directory / f"{name}.json", json.dumps(meta).encode())
        except OSError as exc:
            log.warning("cannot write the revocation cache in %s: %s", self.directory, exc)




@dataclass(frozen=True)
class Revinfo:
    crls: tuple[bytes, ...]
    ocsps: tuple[bytes, ...]
    evidence: tuple[str, ...]
    unavailable: tuple[str, ...] = ()
    # The earliest nextUpdate of the CRLs/OCSP responses above (None: none carries one, or none).
    current_until: datetime | None = None
    # Only data still current at collection time: a stale copy (offline) disables path caching.
    all_current: bool = True


class RevinfoCollector:
    """Finds revocation data for a trusted chain: cache first, then the certificate's URLs."""

    def __init__(
        self,
        cache: RevocationCache,
        *,
        allow_fetching: bool,
        timeout: float,
        max_age: timedelta,
        outbound: OutboundPolicy,
    ) -> None:
        self._cache = cache
        self._max_age = max_age
        self._allow_fetching = allow_fetching
        self._fetcher = RevocationFetcher(outbound, timeout=timeout)
        self._failed: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def collect(self, chain: list[x509.Certificate]) -> Revinfo:
        crls: list[bytes] = []
        ocsps: list[bytes] = []
        evidence: list[str] = []
        unavailable: list[str] = []
        horizons: list[datetime | None] = []
        # chain[-1] is the trust anchor: it needs no revocation check.
        for cert, issuer in itertools.pairwise(chain):
            subject = cert.subject.rfc4514_string()
            found: list[str] = []
            missed: list[str] = []
            for url in crl_urls(cert):
                fetch = functools.partial(self._fetch_crl, url, issuer)
                check = functools.partial(crl_signed_by, issuer=issuer)
                der, note, until = self._obtain(f"crl|{url}", url, fetch, check)
                if der is not None:
                    crls.append(der)
                    horizons.append(until)
                (found if der is not None else missed).append(f"CRL {url} for {subject}: {note}")
            if not found:
                for url in ocsp_urls(cert):
                    key = f"ocsp|{url}|{cert.issuer.rfc4514_string()}|{cert.serial_number}"
                    fetch = functools.partial(self._fetch_ocsp, url, cert, issuer)
                    der, note, until = self._obtain(key, url, fetch)
                    if der is not None:
                        ocsps.append(der)
                        horizons.append(until)
                    (found if der is not None else missed).append(f"OCSP {url} for {subject}: {note}")
                    if der is not None:
                        break
            evidence.extend(found)
            # A source that failed while another answered for the certificate: noted, not missing.
            (evidence if found else unavailable).extend(missed)
        now = datetime.now(UTC)
        known = [h for h in horizons if h is not None]
        return Revinfo(
            tuple(crls),
            tuple(ocsps),
            tuple(evidence + unavailable),
            tuple(unavailable),
            current_until=min(known) if known else None,
            all_current=all(h is None or h > now for h in horizons),
        )

    def _obtain(
        self, key: str, url: str, fetch: Any, check: Any = None
    ) -> tuple[bytes | None, str, datetime | None]:
        """(DER or None, what happened, the DER's nextUpdate).

        ``check(der)`` says whether a cached copy may still be used (a CRL's signature against
        its issuer): one that fails is dropped and fetched again, never trusted."""
        now = datetime.now(UTC)
        cached = self._cache.get(key)
        if cached is not None and check is not None and not check(cached.der):
            log.warning(
                "cached revocation data from %s no longer verifies with its issuer: fetching again", url
            )
            cached = None
            with self._lock:
                self._failed.pop(url, None)  # a failure noted before must not hide the refetch
        if (
            cached is not None
            and (cached.next_update is None or cached.next_update > now)
            and (not self._allow_fetching or now - cached.fetched_at < self._max_age)
        ):
            return (
                cached.der,
                f"cached {_iso(cached.fetched_at)}, current until {_iso(cached.next_update)}",
                cached.next_update,
            )
        reason = "offline: fetching disabled"
        if self._allow_fetching:
            with self._lock:
                failed = self._failed.get(url)
            if failed is not None and time.monotonic() - failed[0] < _NEGATIVE_TTL:
                reason = failed[1]
            else:
                try:
                    entry = fetch()
                except Exception as exc:  # noqa: BLE001 - any fetch or parse failure: source unusable
                    reason = _fetch_failure(exc)
                    with self._lock:
                        self._failed[url] = (time.monotonic(), reason)
                else:
                    with self._lock:
                        self._failed.pop(url, None)
                    self._cache.put(key, entry)
                    return (
                        entry.der,
                        f"fetched {_iso(entry.fetched_at)}, current until {_iso(entry.next_update)}",
                        entry.next_update,
                    )
        if cached is not None:
            # Offline from the cache: a stale copy still proves a revocation; pyHanko judges freshness.
            since = _iso(cached.next_update)
            stale = f"using the copy cached {_iso(cached.fetched_at)} (stale since {since})"
            return cached.der, f"{reason}; {stale}", cached.next_update
        return None, reason, None

    def _fetch_crl(self, url: str, issuer: x509.Certificate) -> CachedRevinfo:
        der = self._fetcher.fetch(url, accept="application/pkix-crl")
        if der.lstrip().startswith(b"-----BEGIN"):
            der = x509.load_pem_x509_crl(der).public_bytes(serialization.Encoding.DER)
        parsed = x509.load_der_x509_crl(der)
        if not crl_signed_by(der, issuer=issuer):
            raise ValueError(f"the CRL's signature does not verify with {issuer.subject.rfc4514_string()}")
        return CachedRevinfo(der=der, next_update=parsed.next_update_utc, fetched_at=datetime.now(UTC))

    def _fetch_ocsp(self, url: str, cert: x509.Certificate, issuer: x509.Certificate) -> CachedRevinfo:
        request = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()  # noqa: S303 - RFC 6960 CertID
        der = self._fetcher.fetch(
            url, body=request.public_bytes(serialization.Encoding.DER), accept="application/ocsp-response"
        )
        response = x509_ocsp.load_der_ocsp_response(der)
        if response.response_status is not x509_ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise ValueError(f"OCSP responder answered {response.response_status.name}")
        now = datetime.now(UTC)
        next_update = response.next_update_utc or now + _OCSP_DEFAULT_TTL
        asn1_ocsp.OCSPResponse.load(der)  # pyHanko reads it with asn1crypto: make sure it can
        return CachedRevinfo(der=der, next_update=next_update, fetched_at=now)


def crl_signed_by(der: bytes, *, issuer: x509.Certificate) -> bool:
    """Whether the CRL ``der`` is issued and signed by ``issuer``."""
    try:
        crl = x509.load_der_x509_crl(der)
        return crl.issuer == issuer.subject and crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False


class RevocationFetchError(Exception):
    """A revocation source that answered, but not with something usable (status, size, time)."""


def _fetch_failure(exc: BaseException) -> str:
    """What went wrong with a source, for the verdict: the rule that refused it, or the failure."""
    if isinstance(exc, OutboundRefused):
        return f"refused by the outbound-address checks: {exc.reason}"
    if isinstance(exc, httpx.HTTPError):
        return f"unreachable: {failure_reason(exc)}"
    return f"unreachable: {describe(exc)}"


class RevocationFetcher:
    """GETs a CRL / POSTs an OCSP request to a URL a certificate declares, through the outbound
    checks (:mod:`lienthong_common.outbound`): resolved and checked host, connection to the
    checked address, no redirects, no proxies from the environment, at most ``max_bytes`` read
    and about ``timeout`` seconds spent (each network step, and the whole body, within it)."""

    def __init__(self, policy: OutboundPolicy, *, timeout: float, max_bytes: int = MAX_REVINFO_BYTES) -> None:
        self._policy = policy
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def fetch(self, url: str, *, accept: str, body: bytes | None = None) -> bytes:
        """The response body; OutboundRefused for a URL the policy refuses, RevocationFetchError
        for an unusable answer, httpx's errors for transport failures."""
        parsed = self._policy.check_url(url)  # refuses before any connection (and non-http URLs)
        # identity: the size bound counts the bytes on the wire, no decompression to outgrow it
        headers = {"Accept": accept, "Accept-Encoding": "identity", "User-Agent": "lienthong-sigverify"}
        if body is not None:
            headers["Content-Type"] = "application/ocsp-request"
        deadline = time.monotonic() + self._timeout
        method = "POST" if body is not None else "GET"
        with self._http().stream(method, parsed, content=body, headers=headers) as response:
            if response.status_code != 200:
                raise RevocationFetchError(status_reason(response.status_code))
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._max_bytes:
                raise RevocationFetchError(f"the response is larger than {self._max_bytes} bytes")
            data = bytearray()
            for chunk in response.iter_raw():  # as sent: never inflated past the bound
                data += chunk
                if len(data) > self._max_bytes:
                    raise RevocationFetchError(f"the response is larger than {self._max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise RevocationFetchError(f"the response took longer than {self._timeout:g} s")
        return bytes(data)

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = checked_client(self._policy, timeout=self._timeout)
            return self._client


def crl_urls(cert: x509.Certificate) -> list[str]:
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [
        name.value
        for point in points
        for name in (point.full_name or [])
        if isinstance(name, x509.UniformResourceIdentifier)
    ]


def ocsp_urls(cert: x509.Certificate) -> list[str]:
    try:
        access = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [
        d.access_location.value
        for d in access
        if d.access_method == x509.oid.AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]


def trusted_chain(
    signer: x509.Certificate, embedded: list[x509.Certificate], anchors: list[x509.Certificate]
) -> list[x509.Certificate] | None:
    """signer -> ... -> anchor, each link's signature checked; None when it reaches no anchor."""
    chain = [signer]
    pool = embedded + anchors
    while len(chain) <= 8:
        current = chain[-1]
        if any(current == anchor for anchor in anchors):
            return chain
        for candidate in pool:
            if candidate.subject != current.issuer or candidate in chain:
                continue
            try:
                current.verify_directly_issued_by(candidate)
            except (ValueError, TypeError, InvalidSignature) as exc:
                log.debug("%s did not issue %s: %s", candidate.subject, current.subject, exc)
                continue
            chain.append(candidate)
            break
        else:
            return None
    return None


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "unknown"


def _atomic_write(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


