"""The trust store: the root and intermediate CA certificates document signatures must chain to."""

from __future__ import annotations

import logging
from pathlib import Path

from cryptography import x509

from lienthong_common.pki import split_pem_certificates
from lienthong_common.settings import Settings

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
