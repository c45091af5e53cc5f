"""The trust store: the root and intermediate CA certificates document signatures must chain to.

Administrators manage it (AddTrustAnchor / RemoveTrustAnchor); every change is a new version,
and cached verdicts carry the version they were reached under. Certificates named in
``settings.sigverify.trust_roots`` (and, in development, the dev PKI root) are seeded into it
once: an administrator's removal is not undone by the next start.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session, sessionmaker

from lienthong_common.db import transaction
from lienthong_common.pki import certificate_fingerprint, split_pem_certificates
from lienthong_common.settings import Settings
from lienthong_sigverify import repository
from lienthong_sigverify.repository import TrustAnchor

CONFIG_SOURCE = "config"

log = logging.getLogger(__name__)


class TrustStoreError(RuntimeError):
    """The configured trust roots cannot be used; the message names the file or setting."""


def dev_root_path(settings: Settings) -> Path:
    """Where `lienthong demo` writes the dev PKI's root certificate."""
    return settings.data_dir / "pki" / "root.pem"


def load_trust_roots(settings: Settings) -> list[bytes]:
    """PEM certificates from settings.sigverify.trust_roots (the dev PKI root as a dev fallback)."""
    paths = list(settings.sigverify.trust_roots)
    if not paths and settings.environment == "development":
        fallback = dev_root_path(settings)
        if fallback.exists():
            log.info("no trust roots configured; using the dev PKI root at %s", fallback)
            paths = [fallback]
    if not paths:
        if settings.environment == "production":
            raise TrustStoreError(
                "no trust roots configured: set LIENTHONG_SIGVERIFY__TRUST_ROOTS to the PEM files "
                "of the CAs document signatures must chain to"
            )
        log.warning(
            "no trust roots: none configured and no dev PKI at %s; every signature will be "
            "INDETERMINATE until `lienthong demo` has run and sigverify restarts",
            dev_root_path(settings),
        )
        return []
    roots: list[bytes] = []
    for path in paths:
        roots.extend(_read_pem_file(path))
    for pem in roots:
        cert = x509.load_pem_x509_certificate(pem)
        log.info("trust root loaded: %s", cert.subject.rfc4514_string())
    return roots


def _read_pem_file(path: Path) -> list[bytes]:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TrustStoreError(f"cannot read trust root file {path}: {error.strerror}") from error
    try:
        certificates = split_pem_certificates(data)
    except ValueError as error:
        raise TrustStoreError(f"trust root file {path} holds no readable PEM certificate") from error
    if not certificates:
        raise TrustStoreError(f"trust root file {path} holds no certificate")
    return certificates


class InvalidAnchor(ValueError):
    """The certificate cannot be a trust anchor; the message says why."""


@dataclass(frozen=True)
class AnchorCertificate:
    """A parsed CA certificate, ready to be stored."""

    fingerprint: str
    subject: str
    pem: str
    self_signed: bool
    not_before: datetime
    not_after: datetime


def parse_anchor(pem: str | bytes) -> AnchorCertificate:
    """Parse exactly one CA certificate (PEM); InvalidAnchor says what is wrong."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise InvalidAnchor("not a PEM certificate") from error
    if len(certs) != 1:
        raise InvalidAnchor(f"expected exactly one certificate, got {len(certs)}; add them one at a time")
    cert = certs[0]
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise InvalidAnchor(
            f"{cert.subject.rfc4514_string()} is not a CA certificate (basicConstraints cA is not set); "
            "only root and intermediate CAs can be trust anchors"
        )
    text = cert.public_bytes(serialization.Encoding.PEM)
    return AnchorCertificate(
        fingerprint=certificate_fingerprint(text),
        subject=cert.subject.rfc4514_string(),
        pem=text.decode(),
        self_signed=cert.subject == cert.issuer,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


@dataclass(frozen=True)
class TrustSnapshot:
    """The anchors of one trust-store version (PEM), what a verification runs against."""

    version: int
    anchors: tuple[bytes, ...]


class TrustStore:
    """The database-backed trust store, with a snapshot cached for `refresh_seconds`.

    Changes made through this object are seen at once; changes made by another replica within
    `refresh_seconds`.
    """

    def __init__(
        self, *, sessions: sessionmaker[Session], settings: Settings, refresh_seconds: float = 2.0
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._refresh = refresh_seconds
        self._lock = threading.Lock()
        self._snapshot: TrustSnapshot | None = None
        self._loaded_at = 0.0
        self._seeded: dict[Path, float] = {}

    def add(self, pem: str | bytes, *, added_by: str, note: str = "") -> tuple[TrustAnchor, bool, int]:
        """Trust a CA certificate; returns the anchor, whether it is new, the store version."""
        cert = parse_anchor(pem)
        with transaction(self._sessions) as session:
            anchor, created = repository.add_anchor(
                session,
                fingerprint=cert.fingerprint,
                subject=cert.subject,
                certificate_pem=cert.pem,
                self_signed=cert.self_signed,
                not_before=cert.not_before,
                not_after=cert.not_after,
                added_by=added_by,
                note=note,
                at=datetime.now(UTC),
            )
            version = repository.trust_store_version(session)
        self.invalidate()
        if created:
            log.info("trust anchor added by %s: %s (version %d)", added_by, cert.subject, version)
        return anchor, created, version

    def remove(self, fingerprint: str, *, removed_by: str) -> tuple[TrustAnchor, int]:
        """Stop trusting an anchor; repository.UnknownAnchor when none matches."""
        with transaction(self._sessions) as session:
            anchor = repository.remove_anchor(
                session, fingerprint=fingerprint, removed_by=removed_by, at=datetime.now(UTC)
            )
            version = repository.trust_store_version(session)
        self.invalidate()
        log.info("trust anchor removed by %s: %s (version %d)", removed_by, anchor.subject, version)
        return anchor, version

    def anchors(self, *, include_removed: bool = False) -> tuple[list[TrustAnchor], int]:
        with transaction(self._sessions) as session:
            return (
                repository.list_anchors(session, include_removed=include_removed),
                repository.trust_store_version(session),
            )

    def invalidate(self) -> None:
        with self._lock:
            self._snapshot = None

    def snapshot(self, *, seed: bool = True) -> TrustSnapshot:
        """The current anchors and version (re-read at most every `refresh_seconds`).

        `seed=False` never writes (call it inside another transaction: on SQLite a second
        writer would wait for that transaction's lock forever).
        """
        with self._lock:
            if self._snapshot is not None and time.monotonic() - self._loaded_at < self._refresh:
                return self._snapshot
        if seed:
            self.seed_from_settings()
        with transaction(self._sessions) as session:
            anchors = repository.list_anchors(session)
            version = repository.trust_store_version(session)
        snapshot = TrustSnapshot(version, tuple(a.certificate_pem.encode() for a in anchors))
        with self._lock:
            self._snapshot, self._loaded_at = snapshot, time.monotonic()
        return snapshot

    def seed_from_settings(self) -> int:
        """Add the configured roots the store has never seen; returns how many were added.

        A file that does not exist yet (the dev PKI before `lienthong demo`) is retried on the
        next refresh; each file is read again only when it changes.
        """
        added = 0
        for path in self._configured_paths():
            try:
                stamp = path.stat().st_mtime
            except OSError:
                continue
            if self._seeded.get(path) == stamp:
                continue
            try:
                pems = _read_pem_file(path)
            except TrustStoreError as error:
                log.warning("%s", error)
                continue
            for pem in pems:
                try:
                    cert = parse_anchor(pem)
                except InvalidAnchor as error:
                    log.warning("configured trust root in %s skipped: %s", path, error)
                    continue
                with transaction(self._sessions) as session:
                    if repository.anchor_known(session, fingerprint=cert.fingerprint):
                        continue
                self.add(pem, added_by=CONFIG_SOURCE, note=f"seeded from {path}")
                added += 1
            self._seeded[path] = stamp
        return added

    def check_usable(self) -> None:
        """Refuse to start in production with nothing to trust (TrustStoreError)."""
        if self._settings.environment != "production":
            return
        for path in self._settings.sigverify.trust_roots:
            _read_pem_file(path)  # a configured file that cannot be read is an error in production
        if not self.snapshot().anchors:
            raise TrustStoreError(
                "no trust roots: the trust store is empty; set LIENTHONG_SIGVERIFY__TRUST_ROOTS to the "
                "PEM files of the CAs document signatures must chain to, or add them with "
                "`lienthong trust add`"
            )

    def _configured_paths(self) -> list[Path]:
        paths = list(self._settings.sigverify.trust_roots)
        if not paths and self._settings.environment == "development":
            paths.append(dev_root_path(self._settings))
        return paths
