"""Mutual TLS on every gRPC hop: the service CA, service identities, server and client credentials.

A service identity is a name (`directory`, `gateway`, `admin`, ...) carried in its certificate
as the DNS subject alternative name `<name>.lienthong.internal` (and as the common name), issued
by the platform's internal service CA (docs/adr/0065-grpc-mtls-service-identities.md). A DNS SAN,
not a SPIFFE URI, because Helm's `genSignedCert` can only write DNS names and IPs, and one
certificate shape must serve `lienthong run`, the e2e stack and the chart alike.

Clients verify the server by that name, whatever address they dial (`ssl_target_name_override`),
so a process that took over the docstore's port without the docstore's key is refused. Servers
require a client certificate from the CA and hand the caller's identity to the authorisation
interceptor (:mod:`lienthong_common.authz`). Servers re-read their certificate, key and CA
bundle when the files change (rotation, docs/operations.md); clients read theirs when a channel
is made.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    import grpc

    from lienthong_common.settings import Settings

log = logging.getLogger(__name__)

IDENTITY_DOMAIN = "lienthong.internal"
# The identities lienthong itself issues: the six services and the administrators' tooling
# (the demo seeder, e2e fixtures, `lienthong run`'s health checks).
SERVICE_IDENTITIES = ("gateway", "directory", "docstore", "sigverify", "routing", "statistics")
ADMIN_IDENTITY = "admin"
CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
TLS_DIR = "grpc-tls"

_CA_VALIDITY = timedelta(days=10 * 365)
_LEAF_VALIDITY = timedelta(days=365)
_CLOCK_SKEW = timedelta(minutes=5)


class TlsConfigurationError(ValueError):
    """The gRPC TLS files are missing or unusable; the message names the file and the setting."""


def identity_name(identity: str) -> str:
    """The DNS name that carries an identity in a certificate: `directory.lienthong.internal`."""
    return f"{identity}.{IDENTITY_DOMAIN}"


def identity_from_names(names: list[str]) -> str | None:
    """The identity among a certificate's DNS names (`<name>.lienthong.internal`), or None."""
    suffix = "." + IDENTITY_DOMAIN
    for name in names:
        if name.endswith(suffix) and name.count(".") == IDENTITY_DOMAIN.count(".") + 1:
            return name[: -len(suffix)]
    return None


def peer_identity(context: grpc.ServicerContext) -> str | None:
    """The caller's identity from its verified client certificate, or None (no TLS, no name)."""
    auth: dict[str, list[bytes]] = context.auth_context()  # type: ignore[assignment]
    names = [v.decode() for v in auth.get("x509_subject_alternative_name", [])]
    identity = identity_from_names(names)
    if identity is None:
        # Older gRPC cores list only some SAN kinds: read the certificate itself.
        for pem in auth.get("x509_pem_cert", []):
            cert = x509.load_pem_x509_certificate(pem)
            identity = identity_from_names(_dns_names(cert))
    return identity


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in san.get_values_for_type(x509.DNSName)]


# --- files -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """Where one identity's CA bundle, certificate and key are."""

    ca: Path
    cert: Path
    key: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(CA bundle, certificate chain, key), each refused with the file and setting named."""
        out = []
        for path, setting in ((self.ca, "CA_FILE"), (self.cert, "CERT_FILE"), (self.key, "KEY_FILE")):
            try:
                data = path.read_bytes()
            except OSError as error:
                raise TlsConfigurationError(
                    f"gRPC mTLS: cannot read {path} (LIENTHONG_GRPC__TLS__{setting}): {error.strerror}"
                ) from None
            if b"-----BEGIN" not in data:
                raise TlsConfigurationError(
                    f"gRPC mTLS: {path} (LIENTHONG_GRPC__TLS__{setting}) holds no PEM data"
                )
            out.append(data)
        return out[0], out[1], out[2]

    def stamp(self) -> tuple[tuple[int, int, int], ...]:
        """What changes when any of the files is replaced (mtime, size, inode)."""
        stamps = []
        for path in (self.ca, self.cert, self.key):
            try:
                st = path.stat()
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                stamps.append((0, 0, 0))
        return tuple(stamps)


def tls_files(settings: Settings, identity: str) -> TlsFiles | None:
    """The TLS files of `identity`, or None when plaintext is configured (LIENTHONG_GRPC__TLS__ENABLED
    false). Unset files default to data_dir/grpc-tls/{ca.pem,<identity>.pem,<identity>-key.pem},
    where `lienthong run` and the e2e stack issue them."""
    tls = settings.grpc.tls
    if not tls.enabled:
        return None
    base = settings.data_dir / TLS_DIR
    return TlsFiles(
        ca=tls.ca_file or base / CA_FILE,
        cert=tls.cert_file or base / f"{identity}.pem",
        key=tls.key_file or base / f"{identity}-key.pem",
    )


# --- issuing (local stack, e2e, tests) ----------------------------------------------------------


def _write_private(path: Path, data: bytes) -> None:
    # 0600 from creation: never a moment where the key is readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class ServiceCa:
    """The internal service CA: signs the services' and the tools' certificates."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, common_name: str = "lienthong service CA") -> ServiceCa:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lienthong"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        start = datetime.now(UTC) - _CLOCK_SKEW
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + _CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, directory: Path) -> ServiceCa:
        cert = x509.load_pem_x509_certificate((directory / CA_FILE).read_bytes())
        key = serialization.load_pem_private_key((directory / CA_KEY_FILE).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TlsConfigurationError(f"{directory / CA_KEY_FILE} is not an ECDSA key")
        return cls(cert, key)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, identity: str, *, validity: timedelta = _LEAF_VALIDITY) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) for `identity`: client and server use, DNS SAN
        `<identity>.lienthong.internal` (plus localhost and 127.0.0.1 for local tools)."""
        key = ec.generate_private_key(ec.SECP256R1())
        start = datetime.now(UTC) - _CLOCK_SKEW
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(min(start + validity, self.cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName(identity_name(identity)),
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    def write_identity(self, directory: Path, identity: str) -> TlsFiles:
        cert, key = self.issue(identity)
        files = TlsFiles(
            directory / CA_FILE, directory / f"{identity}.pem", directory / f"{identity}-key.pem"
        )
        _write_private(files.key, key)
        files.cert.write_bytes(cert)
        return files


def ensure_identities(
    directory: Path, identities: tuple[str, ...] = (*SERVICE_IDENTITIES, ADMIN_IDENTITY)
) -> ServiceCa:
    """Create, once, the service CA and a certificate + key (0600) per identity in `directory`;
    what exists is kept (so running services keep trusting each other), what is missing is added."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    lock = _DIRECTORY_LOCKS.setdefault(directory.resolve(), threading.Lock())
    with lock:
        if (directory / CA_FILE).exists() and (directory / CA_KEY_FILE).exists():
            ca = ServiceCa.load(directory)
        else:
            ca = ServiceCa.create()
            _write_private(directory / CA_KEY_FILE, _key_pem(ca.key))
            (directory / CA_FILE).write_bytes(ca.cert_pem)
        for identity in identities:
            cert, key = directory / f"{identity}.pem", directory / f"{identity}-key.pem"
            if not (cert.exists() and key.exists()):
                ca.write_identity(directory, identity)
    return ca


_DIRECTORY_LOCKS: dict[Path, threading.Lock] = {}


# --- gRPC credentials ---------------------------------------------------------------------------


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """Server credentials requiring a client certificate from the CA bundle, re-reading the
    certificate, key and bundle when any of the files changes (checked at each new handshake)."""
    import grpc

    lock = threading.Lock()
    seen = [files.stamp()]

    def configuration() -> grpc.ServerCertificateConfiguration:
        ca, cert, key = files.read()
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        with lock:
            stamp = files.stamp()
            if stamp == seen[0]:
                return None
            try:
                config = configuration()
            except TlsConfigurationError as error:  # a half-written rotation: keep the old one
                log.warning("gRPC mTLS: keeping the current certificate: %s", error)
                return None
            seen[0] = stamp
            log.info("gRPC mTLS: certificate files changed; new connections use %s", files.cert)
            return config

    # The fetcher returns None for "unchanged", which grpc allows but its stubs do not say.
    return grpc.dynamic_ssl_server_credentials(
        configuration(),
        fetch,  # type: ignore[arg-type]
        require_client_authentication=True,
    )


@dataclass(frozen=True)
class ClientTls:
    """A client identity: channel credentials presenting its certificate and trusting the CA."""

    credentials: grpc.ChannelCredentials
    identity: str

    @classmethod
    def from_files(cls, files: TlsFiles, identity: str) -> ClientTls:
        import grpc

        ca, cert, key = files.read()
        return cls(grpc.ssl_channel_credentials(ca, key, cert), identity)


def client_tls(settings: Settings, identity: str) -> ClientTls | None:
    """The channel credentials of `identity` from the settings, None when plaintext is configured."""
    files = tls_files(settings, identity)
    return None if files is None else ClientTls.from_files(files, identity)


def local_tls(data_dir: Path, identity: str = ADMIN_IDENTITY) -> ClientTls:
    """The credentials of `identity` among those `lienthong run` and the e2e stack issued in
    data_dir/grpc-tls (by default the administrators' tooling's)."""
    base = data_dir / TLS_DIR
    files = TlsFiles(base / CA_FILE, base / f"{identity}.pem", base / f"{identity}-key.pem")
    return ClientTls.from_files(files, identity)
