"""The enveloped XML-DSig signature of an edXML package: sign, and verify with ETSI verdicts.

What is signed is what the VDXP SDKs sign: one ``Reference URI=""`` with the
``enveloped-signature`` transform, i.e. the whole package (header, manifest and the encoded
attachments) minus the ``Signature`` element itself, which sits in ``edXMLHeader`` right after
``TraceHeaderList`` (DESIGN.md §1). Signing uses SHA-256 (ECDSA or RSA by the key's type) and
inclusive C14N 1.0, as the SDKs do; a trace hop added after signing breaks the signature, so
hops are recorded by the platform outside the stored package.

:func:`verify_envelope` never raises for a bad package; every outcome is an
:class:`EnvelopeVerdict` in ETSI EN 319 102-1 terms (the same strings as
:mod:`lienthong_common.pades`):

* signature valid, chain to a trust root, certificate valid now -> TOTAL_PASSED
* the package changed after signing (reference digest mismatch) -> TOTAL_FAILED/HASH_FAILURE
* the signature value does not verify with the certificate's key -> TOTAL_FAILED/SIG_CRYPTO_FAILURE
* not well-formed XML, a DTD, a Signature that is not XML-DSig-shaped, no certificate in
  ``KeyInfo``, more than one signature -> TOTAL_FAILED/FORMAT_FAILURE
* rsa-sha1 (or a SHA-1 digest) when the policy does not allow it ->
  INDETERMINATE/CRYPTO_CONSTRAINTS_FAILURE_NO_POE
* no chain to a trust root -> INDETERMINATE/NO_CERTIFICATE_CHAIN_FOUND
* certificate expired -> INDETERMINATE/OUT_OF_BOUNDS_NO_POE; not yet valid ->
  INDETERMINATE/NOT_YET_VALID; revoked -> TOTAL_FAILED/REVOKED; revocation status required
  (``revocation="hard-fail"``) but unavailable -> INDETERMINATE/TRY_LATER
* no Signature at all -> INDETERMINATE/NO_SIGNATURE (as for PDFs: nothing proven false)

A Signature written in the QCVN default namespace instead of XML-DSig's (some SDK versions do
this) is read as XML-DSig and verified; the verdict carries a warning saying so.

Packages of any size up to the limit are signed and verified in bounded memory: the package is
read as a small tree whose attachment bodies wait in temporary files (``_skeleton``), and the
reference digest is taken over lxml's C14N of that tree with the bodies streamed back in
(``_xmldsig``); docs/adr/0004 says why this replaced signxml's whole-tree round trips.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import io
import re
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree  # type: ignore[import-untyped, unused-ignore]
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InsufficientRevinfoError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
)
from pyhanko_certvalidator.policy_decl import (
    NO_REVOCATION,
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)
from pyhanko_certvalidator.registry import SimpleTrustManager

from lienthong_common.pki import IssuedIdentity, agency_code_from_certificate, split_pem_certificates

from . import _xmldsig as dsig
from ._model import DSIG_NS, LENIENT, NS, EdxmlError, EdxmlPackage, ParsePolicy
from ._skeleton import Skeleton, read_skeleton
from .package import package_skeleton

__all__ = [
    "EnvelopeVerdict",
    "Indication",
    "sign_envelope",
    "sign_envelope_file",
    "verify_envelope",
    "write_signed_package",
]

RevocationMode = Literal["if-declared", "soft-fail", "hard-fail", "off"]
T = TypeVar("T")

HEADER_PATH = "edXML/edXMLEnvelope/edXMLHeader/Signature"
NO_SIGNATURE = "NO_SIGNATURE"
HASH_FAILURE = "HASH_FAILURE"
SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
FORMAT_FAILURE = "FORMAT_FAILURE"
CRYPTO_CONSTRAINTS_FAILURE_NO_POE = "CRYPTO_CONSTRAINTS_FAILURE_NO_POE"
NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"
OUT_OF_BOUNDS_NO_POE = "OUT_OF_BOUNDS_NO_POE"
NOT_YET_VALID = "NOT_YET_VALID"
REVOKED = "REVOKED"
TRY_LATER = "TRY_LATER"

_STRONG_METHODS = frozenset(uri for uri, (_, h) in dsig.SIGNATURE_METHODS.items() if h != "sha1")
_SHA1_METHODS = frozenset(uri for uri, (_, h) in dsig.SIGNATURE_METHODS.items() if h == "sha1")
_STRONG_DIGESTS = frozenset(uri for uri, h in dsig.DIGESTS.items() if h != "sha1")
_SHA1_DIGESTS = frozenset({dsig.SHA1})
# What we sign is a package we built (its size checked by whoever sends it); the reading stays
# hardened (no DTD, no entities, depth and element limits) but is not capped at a package limit.
_SIGNING_POLICY = replace(LENIENT, max_bytes=1 << 40)


class Indication(StrEnum):
    """ETSI EN 319 102-1 main indication; equal, as strings, to ``lienthong_common.pades.Indication``.

    Defined here rather than imported so reading and signing packages does not load pyHanko.
    """

    TOTAL_PASSED = "TOTAL_PASSED"
    TOTAL_FAILED = "TOTAL_FAILED"
    INDETERMINATE = "INDETERMINATE"


@dataclass(frozen=True)
class EnvelopeVerdict:
    """The verdict on a package's envelope signature (ETSI EN 319 102-1 terms).

    ``indication``: TOTAL_PASSED, TOTAL_FAILED or INDETERMINATE (a ``StrEnum``, compares equal
    to those strings); ``sub_indication``: None when passed, else one of the module constants
    (HASH_FAILURE, SIG_CRYPTO_FAILURE, FORMAT_FAILURE, REVOKED, CRYPTO_CONSTRAINTS_FAILURE_NO_POE,
    NO_CERTIFICATE_CHAIN_FOUND, OUT_OF_BOUNDS_NO_POE, NOT_YET_VALID, TRY_LATER, NO_SIGNATURE);
    ``message``: the reason in words. ``signature_method``/``digest_method``: the algorithm
    URIs the signature declares. ``signer_certificate_der``/``signer_subject``/``agency_code``
    (from the certificate's OU; the caller checks it against the sender), ``chain``: subjects
    from the signer to the trust root when one was found. ``warnings``: accepted deviations
    (legacy namespace, rsa-sha1 under a permissive policy).
    """

    indication: Indication
    sub_indication: str | None
    message: str
    signature_method: str = ""
    digest_method: str = ""
    signer_subject: str = ""
    signer_certificate_der: bytes = b""
    agency_code: str | None = None
    chain: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.indication is Indication.TOTAL_PASSED


# ---------------------------------------------------------------------------------------------
# sign
# ---------------------------------------------------------------------------------------------
def sign_envelope(
    package: bytes,
    identity: IssuedIdentity,
    *,
    legacy_rsa_sha1: bool = False,
) -> bytes:
    """Sign ``package`` with an enveloped XML-DSig placed after ``TraceHeaderList``.

    SHA-256 with ECDSA or RSA (by the key's type); the signer's certificate and its chain go
    in ``KeyInfo/X509Data``. ``legacy_rsa_sha1=True`` (RSA keys only) writes the rsa-sha1/sha1
    signature old SDKs make, for testing the verifier's policy; the platform never uses it.
    Raises EdxmlError when the package is not an edXML document or is already signed.
    For packages on disk, :func:`sign_envelope_file` keeps memory bounded.
    """
    out = io.BytesIO()
    with read_skeleton(package, policy=_SIGNING_POLICY) as skeleton:
        _sign(skeleton, out, identity, legacy_rsa_sha1)
    return out.getvalue()


def sign_envelope_file(
    source: Path,
    target: IO[bytes],
    identity: IssuedIdentity,
    *,
    legacy_rsa_sha1: bool = False,
    spill_dir: Path | None = None,
) -> int:
    """Sign the package in ``source`` as :func:`sign_envelope` does, writing the signed package
    to ``target``; returns the bytes written. Memory stays a few hundred KiB whatever the size:
    attachment bodies pass through temporary files (in ``spill_dir``, default the system's)."""
    with read_skeleton(source, policy=_SIGNING_POLICY, spill_dir=spill_dir) as skeleton:
        return _sign(skeleton, target, identity, legacy_rsa_sha1)


def write_signed_package(
    package: EdxmlPackage,
    out: IO[bytes],
    identity: IssuedIdentity,
    *,
    files: Mapping[str, Path] | None = None,
    legacy_rsa_sha1: bool = False,
) -> int:
    """Build ``package`` (as :func:`~lienthong_common.edxml.write_package`, attachments in
    ``files`` streamed from disk) and sign it on the way out: the same bytes as
    ``sign_envelope(build_package(package))``, in bounded memory and without temporary files
    (each attachment is read twice, once for the digest and once to be written)."""
    with package_skeleton(package, files=files) as skeleton:
        return _sign(skeleton, out, identity, legacy_rsa_sha1)


def _sign(skeleton: Skeleton, out: IO[bytes], identity: IssuedIdentity, legacy_rsa_sha1: bool) -> int:
    root = skeleton.root
    _check_root(root)
    header = _header(root)
    if _find_signature(header) is not None:
        raise EdxmlError(HEADER_PATH, "the package is already signed")
    trace_list = header.find(f"{{{NS}}}TraceHeaderList")
    if trace_list is None:
        raise EdxmlError("edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList", "required element is missing")

    key = serialization.load_pem_private_key(identity.key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if legacy_rsa_sha1:
            raise ValueError("rsa-sha1 needs an RSA key")
        method = dsig.ECDSA_SHA256
    elif isinstance(key, rsa.RSAPrivateKey):
        method = dsig.RSA_SHA1 if legacy_rsa_sha1 else dsig.RSA_SHA256
    else:
        raise ValueError("envelope signatures need an ECDSA or RSA key")
    chain = [identity.cert_pem, *identity.chain_pem[:-1]]  # the root is the verifier's
    template = dsig.signature_template(
        method=method, digest=dsig.SHA1 if legacy_rsa_sha1 else dsig.SHA256, certificates_pem=chain
    )
    # After TraceHeaderList, with its indentation; whitespace is signed content, so the rest
    # of the package is written back exactly as read.
    template.element.tail = trace_list.tail
    trace_list.addnext(template.element)
    dsig.sign_into(skeleton, root, template, key)
    return skeleton.write(root, out)


# ---------------------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------------------
def verify_envelope(
    package: bytes | Path,
    *,
    trust_roots: Sequence[bytes],
    allow_rsa_sha1: bool = False,
    at: datetime | None = None,
    revocation: RevocationMode = "soft-fail",
    policy: ParsePolicy = LENIENT,
    spill_dir: Path | None = None,
) -> EnvelopeVerdict:
    """Verify the package's envelope signature against ``trust_roots`` (PEM or DER); never raises.

    ``package``: its bytes, or the file holding it (read in bounded memory: attachment bodies
    pass through temporary files in ``spill_dir``; ``policy.max_bytes`` caps the size).
    ``allow_rsa_sha1`` accepts the legacy rsa-sha1 method and SHA-1 digests (with a warning);
    otherwise they are INDETERMINATE/CRYPTO_CONSTRAINTS_FAILURE_NO_POE. ``at`` is the validation
    time (default now). Revocation is checked from what the caller's trust store and the
    certificates provide, never fetched: ``off``, ``soft-fail`` (pass when unavailable) or
    ``hard-fail`` (INDETERMINATE/TRY_LATER when unavailable).
    """
    try:
        skeleton = read_skeleton(package, policy=policy, spill_dir=spill_dir)
    except EdxmlError as error:
        return _failed(FORMAT_FAILURE, str(error))
    with skeleton:
        return _verify(
            skeleton,
            trust_roots=trust_roots,
            allow_rsa_sha1=allow_rsa_sha1,
            at=at,
            revocation=revocation,
        )


def _verify(
    skeleton: Skeleton,
    *,
    trust_roots: Sequence[bytes],
    allow_rsa_sha1: bool,
    at: datetime | None,
    revocation: RevocationMode,
) -> EnvelopeVerdict:
    warnings: list[str] = []
    root = skeleton.root
    try:
        _check_root(root)
        header = _header(root)
    except EdxmlError as error:
        return _failed(FORMAT_FAILURE, str(error))
    signatures = [el for el in header if isinstance(el.tag, str) and etree.QName(el).localname == "Signature"]
    if not signatures:
        return EnvelopeVerdict(Indication.INDETERMINATE, NO_SIGNATURE, "the package is not signed")
    if len(signatures) > 1:
        return _failed(FORMAT_FAILURE, f"{HEADER_PATH}: {len(signatures)} signatures; one is expected")
    signature = signatures[0]
    if etree.QName(signature).namespace != DSIG_NS:
        warnings.append(
            f"{HEADER_PATH}: Signature is in namespace {etree.QName(signature).namespace!r}, "
            "not XML-DSig; read as XML-DSig"
        )
        # The tree is small (attachment bodies are placeholders): re-declare and read it again.
        rehomed = _rehome_default_namespace(skeleton.serialize(root))
        if rehomed is None:
            return _failed(
                FORMAT_FAILURE,
                f"{HEADER_PATH}: a Signature outside XML-DSig must be an unprefixed <Signature>",
            )
        root = skeleton.reparse(rehomed)
        signature = _find_signature(_header(root))

    method_uri = _algorithm(signature, "SignedInfo/SignatureMethod")
    digest_uri = _algorithm(signature, "SignedInfo/Reference/DigestMethod")
    known = {"signature_method": method_uri, "digest_method": digest_uri, "warnings": warnings}
    weak = "sha1" in method_uri.lower().rsplit("#", 1)[-1] or digest_uri.endswith("#sha1")
    if weak and not allow_rsa_sha1:
        return EnvelopeVerdict(
            Indication.INDETERMINATE,
            CRYPTO_CONSTRAINTS_FAILURE_NO_POE,
            f"{method_uri or digest_uri} is refused by policy: SHA-1 is allowed only for legacy "
            "senders (allow_rsa_sha1)",
            **known,  # type: ignore[arg-type]
        )
    if weak:
        warnings.append(f"{HEADER_PATH}: legacy {method_uri} / {digest_uri} accepted by policy")

    certificates = [
        "".join((el.text or "").split())
        for el in signature.iterfind(
            f"{{{DSIG_NS}}}KeyInfo/{{{DSIG_NS}}}X509Data/{{{DSIG_NS}}}X509Certificate"
        )
    ]
    if not certificates:
        return _failed(FORMAT_FAILURE, f"{HEADER_PATH}: KeyInfo carries no X509Certificate", **known)
    try:
        certs = [x509.load_der_x509_certificate(_b64(c)) for c in certificates]
    except ValueError as error:
        return _failed(FORMAT_FAILURE, f"{HEADER_PATH}: unreadable X509Certificate ({error})", **known)
    signer_cert = certs[0]
    signer_der = signer_cert.public_bytes(serialization.Encoding.DER)
    who = {
        "signer_subject": signer_cert.subject.rfc4514_string(),
        "signer_certificate_der": signer_der,
        "agency_code": agency_code_from_certificate(signer_der),
    }
    try:
        dsig.check(
            skeleton,
            root,
            signature,
            signer_cert,
            methods=_STRONG_METHODS | (_SHA1_METHODS if allow_rsa_sha1 else frozenset()),
            digests=_STRONG_DIGESTS | (_SHA1_DIGESTS if allow_rsa_sha1 else frozenset()),
        )
    except dsig.DigestMismatch:
        return _failed(
            HASH_FAILURE, "the package was changed after it was signed (digest mismatch)", **known, **who
        )
    except dsig.SignatureValueInvalid as error:
        return _failed(SIG_CRYPTO_FAILURE, f"the signature value does not verify: {error}", **known, **who)
    except (dsig.FormatProblem, EdxmlError, ValueError) as error:
        return _failed(FORMAT_FAILURE, f"{HEADER_PATH}: {error}", **known, **who)

    indication, sub, message, chain = _validate_chain(
        signer_der,
        [c.public_bytes(serialization.Encoding.DER) for c in certs[1:]],
        trust_roots,
        at,
        revocation,
    )
    return EnvelopeVerdict(indication, sub, message, chain=chain, **known, **who)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _check_root(root: Any) -> None:
    if root.tag != f"{{{NS}}}edXML":
        raise EdxmlError("edXML", f"root element is {root.tag!r}, expected edXML in namespace {NS}")


def _header(root: Any) -> Any:
    envelope = root.find(f"{{{NS}}}edXMLEnvelope")
    header = envelope.find(f"{{{NS}}}edXMLHeader") if envelope is not None else None
    if header is None:
        raise EdxmlError("edXML/edXMLEnvelope/edXMLHeader", "required element is missing")
    return header


def _find_signature(header: Any) -> Any:
    for element in header:
        if isinstance(element.tag, str) and etree.QName(element).localname == "Signature":
            return element
    return None


_UNPREFIXED_SIGNATURE = re.compile(rb"<Signature(?=[\s>/])")


def _rehome_default_namespace(package: bytes) -> bytes | None:
    """Declare XML-DSig as the default namespace on an unprefixed ``<Signature>``, or None.

    The SDKs that lose the namespace signed ``<Signature xmlns="…xmldsig#">`` (the Java
    default) and wrote it without the declaration, so its unprefixed children fell into the
    QCVN default namespace. Re-declaring it restores the signed form, SignedInfo included.
    """
    found = _UNPREFIXED_SIGNATURE.findall(package)
    if len(found) != 1:
        return None
    return _UNPREFIXED_SIGNATURE.sub(f'<Signature xmlns="{DSIG_NS}"'.encode(), package, count=1)


def _algorithm(signature: Any, path: str) -> str:
    element = signature.find("/".join(f"{{{DSIG_NS}}}{part}" for part in path.split("/")))
    return str(element.get("Algorithm", "")) if element is not None else ""


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"not base64: {error}") from None


def _failed(sub: str, message: str, **known: Any) -> EnvelopeVerdict:
    return EnvelopeVerdict(Indication.TOTAL_FAILED, sub, message, **known)


def _revinfo_policy(mode: RevocationMode) -> CertRevTrustPolicy:
    if mode == "off":
        return CertRevTrustPolicy(NO_REVOCATION)
    if mode == "soft-fail":
        return CertRevTrustPolicy(RevocationCheckingPolicy.from_legacy("soft-fail"))
    if mode == "if-declared":  # as in pades: a declared source must give data
        return CertRevTrustPolicy(RevocationCheckingPolicy.from_legacy("hard-fail"))
    return CertRevTrustPolicy(
        RevocationCheckingPolicy(
            ee_certificate_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
            intermediate_ca_cert_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
        )
    )


def _validate_chain(
    signer_der: bytes,
    intermediates_der: list[bytes],
    trust_roots: Sequence[bytes],
    at: datetime | None,
    revocation: RevocationMode,
) -> tuple[Indication, str | None, str, list[str]]:
    roots: list[asn1_x509.Certificate] = []
    for item in trust_roots:
        if item.lstrip().startswith(b"-----BEGIN"):
            roots.extend(
                asn1_x509.Certificate.load(
                    x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
                )
                for pem in split_pem_certificates(item)
            )
        else:
            roots.append(asn1_x509.Certificate.load(item))
    signer = asn1_x509.Certificate.load(signer_der)

    async def validate() -> tuple[Indication, str | None, str, list[str]]:
        context = ValidationContext(
            trust_manager=SimpleTrustManager.build(trust_roots=roots),
            revinfo_policy=_revinfo_policy(revocation),
            allow_fetching=False,
            moment=at,
            crls=[],
            ocsps=[],
        )
        validator = CertificateValidator(
            signer,
            intermediate_certs=[asn1_x509.Certificate.load(d) for d in intermediates_der],
            validation_context=context,
        )
        try:
            path = await validator.async_validate_usage({"digital_signature"})  # type: ignore[no-untyped-call]
        except RevokedError as error:
            return (
                Indication.TOTAL_FAILED,
                REVOKED,
                f"the signer's certificate was revoked: {error.failure_msg}",
                [],
            )
        except ExpiredError as error:
            return (
                Indication.INDETERMINATE,
                OUT_OF_BOUNDS_NO_POE,
                "the signer's certificate expired and no timestamp proves the signature was "
                f"made before: {error.failure_msg}",
                [],
            )
        except NotYetValidError as error:
            return Indication.INDETERMINATE, NOT_YET_VALID, error.failure_msg, []
        except InsufficientRevinfoError as error:
            return (
                Indication.INDETERMINATE,
                TRY_LATER,
                f"revocation status required ({revocation}) but unavailable: {error.failure_msg}",
                [],
            )
        except PathBuildingError:
            subject = signer.subject.human_friendly
            return (
                Indication.INDETERMINATE,
                NO_CERTIFICATE_CHAIN_FOUND,
                f"no chain from {subject!r} to a trusted root",
                [],
            )
        except PathValidationError as error:
            return (
                Indication.INDETERMINATE,
                NO_CERTIFICATE_CHAIN_FOUND,
                f"certificate path invalid: {error.failure_msg}",
                [],
            )
        finally:
            await context.aclose()  # type: ignore[no-untyped-call]
        chain = [cert.subject.human_friendly for cert in reversed(list(path))]
        return Indication.TOTAL_PASSED, None, "envelope signature valid", chain

    return _run(validate())


_pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="envelope-verify")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion whether or not the calling thread has an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    return _pool.submit(asyncio.run, coro).result()
