"""Development PKI: a root CA, one issuing CA and signing certificates for agencies.

Everything is ECDSA P-256 (keys are generated in microseconds, so ``lienthong demo`` can issue
a certificate for every demo agency at once). The hierarchy mirrors a real one:
root CA -> "lienthong dev issuing CA" -> end-entity certificates with digitalSignature and
nonRepudiation key usage. The agency code (QCVN 102:2016 ``OrganId``) sits in the subject's
organizationalUnitName; :func:`agency_code_from_certificate` reads it back.

Revocation: a PKI initialised with ``crl_base_url`` (kept in ``crl.json`` beside the keys)
puts a CRL distribution point in every certificate it issues afterwards
(``{base}/issuing.crl`` for agency certificates, ``{base}/root.crl`` for the issuing CA), and
:meth:`DevPki.revoke` / :meth:`DevPki.crl_der` produce the CRLs to serve there. Without a base
URL the certificates declare no revocation source: soft-fail passes them and hard-fail makes
them INDETERMINATE/TRY_LATER (see :mod:`lienthong_common.pades`).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

__all__ = [
    "CERT_POLICY_SEAL",
    "CERT_POLICY_SIGNER",
    "DevCrlServer",
    "DevPki",
    "IssuedIdentity",
    "agency_code_from_certificate",
    "certificate_fingerprint",
    "certificate_serial",
    "load_identity",
    "split_pem_certificates",
    "write_identity",
]

ISSUING_CA_NAME = "lienthong dev issuing CA"
ORGANIZATION = "lienthong dev PKI"

# Private OIDs (UUID arc 2.25) telling a person's signing certificate from an agency seal's,
# the way ETSI EN 319 411 policies tell natural-person from legal-person certificates.
CERT_POLICY_SIGNER = x509.ObjectIdentifier("2.25.200375148290381829613593155498853361171")
CERT_POLICY_SEAL = x509.ObjectIdentifier("2.25.200375148290381829613593155498853361172")

_ROOT_VALIDITY = timedelta(days=20 * 365)
_ISSUING_VALIDITY = timedelta(days=10 * 365)
_SIGNER_VALIDITY = timedelta(days=2 * 365)
# Backdate new certificates slightly so a verifier with a lagging clock still accepts them.
_CLOCK_SKEW = timedelta(minutes=5)
# How long a dev CRL is valid (nextUpdate - thisUpdate); verifiers cache it that long.
CRL_VALIDITY = timedelta(days=1)
ISSUING_CRL_NAME = "issuing.crl"
ROOT_CRL_NAME = "root.crl"


@dataclass(frozen=True)
class IssuedIdentity:
    """A private key with its certificate and chain (intermediates then root), all PEM."""

    key_pem: bytes
    cert_pem: bytes
    chain_pem: list[bytes]


def certificate_fingerprint(cert_pem_or_der: bytes) -> str:
    """SHA-256 hex of a certificate's DER encoding (accepts PEM or DER)."""
    return hashlib.sha256(_to_der(cert_pem_or_der)).hexdigest()


def agency_code_from_certificate(cert_der: bytes) -> str | None:
    """The agency code in the subject's organizationalUnitName, or None (PEM also accepted)."""
    try:
        cert = x509.load_der_x509_certificate(_to_der(cert_der))
        attributes = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    except ValueError:
        return None
    for attribute in attributes:
        value = attribute.value
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if text.strip():
            return text.strip()
    return None


def split_pem_certificates(pem: bytes) -> list[bytes]:
    """Split concatenated PEM certificates into one PEM block each."""
    return (
        [cert.public_bytes(serialization.Encoding.PEM) for cert in x509.load_pem_x509_certificates(pem)]
        if pem.strip()
        else []
    )


def write_identity(identity: IssuedIdentity, directory: Path, name: str) -> Path:
    """Store an identity as ``directory/name/{key,cert,chain}.pem`` (key 0600); return its folder."""
    folder = Path(directory) / name
    folder.mkdir(parents=True, exist_ok=True)
    _write_private(folder / "key.pem", identity.key_pem)
    (folder / "cert.pem").write_bytes(identity.cert_pem)
    (folder / "chain.pem").write_bytes(b"".join(identity.chain_pem))
    return folder


def load_identity(directory: Path, name: str) -> IssuedIdentity:
    """Load an identity stored by :func:`write_identity`."""
    folder = Path(directory) / name
    chain_file = folder / "chain.pem"
    return IssuedIdentity(
        key_pem=(folder / "key.pem").read_bytes(),
        cert_pem=(folder / "cert.pem").read_bytes(),
        chain_pem=split_pem_certificates(chain_file.read_bytes()) if chain_file.exists() else [],
    )


class DevPki:
    """A root and an issuing CA kept as PEM files in one directory."""

    def __init__(
        self,
        directory: Path,
        *,
        root_cert: x509.Certificate,
        issuing_cert: x509.Certificate,
        issuing_key: ec.EllipticCurvePrivateKey,
        crl_base_url: str | None = None,
    ) -> None:
        self.directory = directory
        self._root_cert = root_cert
        self._issuing_cert = issuing_cert
        self._issuing_key = issuing_key
        self.crl_base_url = crl_base_url

    @classmethod
    def init(
        cls,
        directory: Path,
        *,
        common_name: str = "lienthong dev root CA",
        crl_base_url: str | None = None,
    ) -> DevPki:
        """Create the CA files under ``directory``, or load them if they are already there.

        ``crl_base_url`` (e.g. ``http://127.0.0.1:8000/crl``) is remembered in ``crl.json``;
        certificates issued from then on point their CRL distribution point below it.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if crl_base_url:
            (directory / "crl.json").write_text(json.dumps({"base_url": crl_base_url.rstrip("/")}))
        root_pem, root_key_pem = directory / "root.pem", directory / "root.key"
        if not (root_pem.exists() and root_key_pem.exists()):
            root_key = ec.generate_private_key(ec.SECP256R1())
            root_cert = _make_root(root_key, common_name, instance=os.urandom(8).hex())
            _write_private(root_key_pem, _key_to_pem(root_key))
            root_pem.write_bytes(root_cert.public_bytes(serialization.Encoding.PEM))
        issuing_pem, issuing_key_pem = directory / "issuing.pem", directory / "issuing.key"
        if not (issuing_pem.exists() and issuing_key_pem.exists()):
            root_cert = x509.load_pem_x509_certificate(root_pem.read_bytes())
            root_key = _load_ec_key(root_key_pem.read_bytes())
            issuing_key = ec.generate_private_key(ec.SECP256R1())
            issuing_cert = _make_issuing(
                issuing_key, root_cert, root_key, crl_url=_crl_url(directory, ROOT_CRL_NAME)
            )
            _write_private(issuing_key_pem, _key_to_pem(issuing_key))
            issuing_pem.write_bytes(issuing_cert.public_bytes(serialization.Encoding.PEM))
        return cls.load(directory)

    @classmethod
    def load(cls, directory: Path) -> DevPki:
        """Load a PKI created by :meth:`init`; FileNotFoundError names what is missing."""
        directory = Path(directory)
        for name in ("root.pem", "issuing.pem", "issuing.key"):
            if not (directory / name).exists():
                raise FileNotFoundError(
                    f"dev PKI file {directory / name} is missing; run `lienthong pki init`"
                )
        return cls(
            directory,
            root_cert=x509.load_pem_x509_certificate((directory / "root.pem").read_bytes()),
            issuing_cert=x509.load_pem_x509_certificate((directory / "issuing.pem").read_bytes()),
            issuing_key=_load_ec_key((directory / "issuing.key").read_bytes()),
            crl_base_url=_crl_base(directory),
        )

    @property
    def root_path(self) -> Path:
        """The root CA certificate (PEM) to hand to verifiers as a trust root."""
        return self.directory / "root.pem"

    @property
    def root_cert_pem(self) -> bytes:
        return self._root_cert.public_bytes(serialization.Encoding.PEM)

    @property
    def issuing_cert_pem(self) -> bytes:
        return self._issuing_cert.public_bytes(serialization.Encoding.PEM)

    def issue_signer(
        self,
        *,
        agency_code: str,
        common_name: str,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        purpose: Literal["signer", "seal"] = "signer",
        key_type: Literal["ec", "rsa"] = "ec",
    ) -> IssuedIdentity:
        """Issue a signing certificate binding ``common_name`` to ``agency_code``.

        ``purpose="seal"`` marks the agency's seal (a legal-person certificate) by policy OID;
        key usage is digitalSignature+nonRepudiation either way. Validity defaults to two years
        from now; past or future dates are allowed so tests can build expired certificates.
        ``key_type="rsa"`` issues an RSA-2048 key (legacy senders' rsa-sha1 XML-DSig tests).
        """
        if purpose not in ("signer", "seal"):
            raise ValueError(f"certificate purpose must be 'signer' or 'seal', not {purpose!r}")
        if not agency_code.strip():
            raise ValueError("agency_code must not be empty")
        now = datetime.now(UTC)
        start = _aware(not_before) if not_before is not None else now - _CLOCK_SKEW
        end = _aware(not_after) if not_after is not None else start + _SIGNER_VALIDITY
        if end <= start:
            raise ValueError(f"certificate validity ends ({end}) before it starts ({start})")
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if key_type == "rsa"
            else ec.generate_private_key(ec.SECP256R1())
        )
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, agency_code.strip()),
                # commonName is capped at 64 (cryptography counts UTF-8 bytes); long names are cut.
                x509.NameAttribute(
                    NameOID.COMMON_NAME,
                    common_name.strip().encode()[:64].decode(errors="ignore") or agency_code,
                ),
            ]
        )
        policy = CERT_POLICY_SEAL if purpose == "seal" else CERT_POLICY_SIGNER
        builder = _builder(subject, self._issuing_cert.subject, key.public_key(), start, end)
        if self.crl_base_url:
            builder = builder.add_extension(
                _distribution_point(f"{self.crl_base_url}/{ISSUING_CRL_NAME}"), critical=False
            )
        cert = (
            builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,  # nonRepudiation
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._issuing_key.public_key()),
                critical=False,
            )
            .add_extension(x509.CertificatePolicies([x509.PolicyInformation(policy, None)]), critical=False)
            .sign(self._issuing_key, hashes.SHA256())
        )
        return IssuedIdentity(
            key_pem=_key_to_pem(key),
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            chain_pem=[self.issuing_cert_pem, self.root_cert_pem],
        )

    # ------------------------------------------------------------------ revocation

    def revoke(self, serial: int, *, at: datetime | None = None) -> None:
        """Revoke the certificate with ``serial`` (issued by the issuing CA) from ``at`` (now)."""
        revoked = self._revoked()
        revoked[str(serial)] = _aware(at or datetime.now(UTC)).isoformat()
        (self.directory / "revoked.json").write_text(json.dumps(revoked, indent=1))

    def crl_der(self, *, this_update: datetime | None = None, validity: timedelta = CRL_VALIDITY) -> bytes:
        """The issuing CA's current CRL (DER), listing every certificate revoked so far."""
        start = _aware(this_update) if this_update is not None else datetime.now(UTC) - _CLOCK_SKEW
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._issuing_cert.subject)
            .last_update(start)
            .next_update(start + validity)
            .add_extension(x509.CRLNumber(int(start.timestamp())), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._issuing_key.public_key()),
                critical=False,
            )
        )
        for serial, when in sorted(self._revoked().items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(int(serial))
                .revocation_date(datetime.fromisoformat(when))
                .build()
            )
        crl = builder.sign(self._issuing_key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.DER)

    def crl_pem(self) -> bytes:
        """The issuing CA's current CRL, PEM."""
        return x509.load_der_x509_crl(self.crl_der()).public_bytes(serialization.Encoding.PEM)

    def root_crl_der(self, *, validity: timedelta = CRL_VALIDITY) -> bytes:
        """The root's CRL (DER, nothing revoked), covering the issuing CA; needs the root key."""
        root_key = _load_ec_key((self.directory / "root.key").read_bytes())
        start = datetime.now(UTC) - _CLOCK_SKEW
        crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._root_cert.subject)
            .last_update(start)
            .next_update(start + validity)
            .add_extension(x509.CRLNumber(int(start.timestamp())), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
            )
            .sign(root_key, hashes.SHA256())
        )
        return crl.public_bytes(serialization.Encoding.DER)

    def _revoked(self) -> dict[str, str]:
        path = self.directory / "revoked.json"
        return dict(json.loads(path.read_text())) if path.exists() else {}


class DevCrlServer:
    """Serves a dev PKI's CRLs over HTTP on loopback (tests, local demos); a context manager.

    ``GET {base_url}/issuing.crl`` and ``/root.crl`` answer the PKI's current CRLs (DER);
    with ``available = False`` every request gets 503, as an unreachable CRL server would.
    Create it first, then ``DevPki.init(dir, crl_base_url=server.base_url)`` and ``attach``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.pki: DevPki | None = None
        self.available = True
        self.requests: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                body = owner._body(self.path)
                if body is None:
                    self.send_error(503 if not owner.available else 404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        self.base_url = f"http://{host}:{self._httpd.server_address[1]}/crl"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="dev-crl", daemon=True)
        self._thread.start()

    def attach(self, pki: DevPki) -> DevPki:
        self.pki = pki
        return pki

    def _body(self, path: str) -> bytes | None:
        if not self.available or self.pki is None:
            return None
        if path.endswith(f"/{ISSUING_CRL_NAME}"):
            return self.pki.crl_der()
        if path.endswith(f"/{ROOT_CRL_NAME}"):
            return self.pki.root_crl_der()
        return None

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> DevCrlServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def certificate_serial(cert_pem_or_der: bytes) -> int:
    """The serial number of a certificate (PEM or DER)."""
    return x509.load_der_x509_certificate(_to_der(cert_pem_or_der)).serial_number


def _crl_base(directory: Path) -> str | None:
    path = directory / "crl.json"
    if not path.exists():
        return None
    base = json.loads(path.read_text()).get("base_url")
    return str(base) if base else None


def _crl_url(directory: Path, name: str) -> str | None:
    base = _crl_base(directory)
    return f"{base}/{name}" if base else None


def _distribution_point(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(url)],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        ]
    )


def _to_der(cert_pem_or_der: bytes) -> bytes:
    if cert_pem_or_der.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(cert_pem_or_der).public_bytes(serialization.Encoding.DER)
    return cert_pem_or_der


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _key_to_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_ec_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("dev PKI CA keys must be ECDSA keys")
    return key


def _write_private(path: Path, data: bytes) -> None:
    # Create with 0600 from the start: never a moment where the key is world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _make_root(key: ec.EllipticCurvePrivateKey, common_name: str, instance: str) -> x509.Certificate:
    # Every dev PKI has the same CA names; the per-instance serialNumber keeps two developers'
    # CAs apart, so a foreign chain reads as "no chain" instead of "bad CA signature".
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, instance),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    start = datetime.now(UTC) - _CLOCK_SKEW
    return (
        _builder(name, name, key.public_key(), start, start + _ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .sign(key, hashes.SHA256())
    )


def _make_issuing(
    key: ec.EllipticCurvePrivateKey,
    root_cert: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    *,
    crl_url: str | None = None,
) -> x509.Certificate:
    instance = root_cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            *instance,
            x509.NameAttribute(NameOID.COMMON_NAME, ISSUING_CA_NAME),
        ]
    )
    start = datetime.now(UTC) - _CLOCK_SKEW
    # Never outlive the root: a chain whose CA expires after its root fails path validation.
    end = min(start + _ISSUING_VALIDITY, root_cert.not_valid_after_utc)
    builder = _builder(name, root_cert.subject, key.public_key(), start, end)
    if crl_url:
        builder = builder.add_extension(_distribution_point(crl_url), critical=False)
    return (
        builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
