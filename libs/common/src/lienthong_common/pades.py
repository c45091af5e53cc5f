"""PAdES signing and validation (pyHanko) with verdicts in ETSI EN 319 102-1 terms.

Signing produces PAdES baseline B-B signatures (SubFilter ``ETSI.CAdES.detached``) as
incremental updates, so a document can carry the signer's signature and then the agency seal.

Validation never raises for a bad document: every outcome is a :class:`PdfVerdict`. Mapping
(indication/sub-indication):

* content digest mismatch -> TOTAL_FAILED/HASH_FAILURE
* signature value does not verify -> TOTAL_FAILED/SIG_CRYPTO_FAILURE
* not a PDF, unreadable PDF, broken signature dictionary or CMS -> TOTAL_FAILED/FORMAT_FAILURE
* an incremental update after the signature that goes beyond form filling and further
  signatures (new page content, annotations, anything else) -> TOTAL_FAILED/HASH_FAILURE with
  ``modified_after_signing=True``: the signed bytes are intact but no longer what the document
  shows, which is the same consequence for the recipient as a digest mismatch
* no chain to a trust root -> INDETERMINATE/NO_CERTIFICATE_CHAIN_FOUND
* signer certificate expired at validation time -> INDETERMINATE/OUT_OF_BOUNDS_NO_POE (there is
  no signature timestamp to prove it was signed while valid)
* signer certificate not yet valid -> INDETERMINATE/NOT_YET_VALID
* signer certificate revoked -> TOTAL_FAILED/REVOKED (no timestamp proves the signature predates
  the revocation; a revoked CA gives INDETERMINATE/REVOKED_CA_NO_POE as in the standard)
* revocation status unobtainable under ``hard-fail`` or ``if-declared`` -> INDETERMINATE/TRY_LATER
* a SHA-1 digest or signature algorithm while ``allow_sha1`` is off (the default) ->
  INDETERMINATE/CRYPTO_CONSTRAINTS_FAILURE, the message naming the algorithm and the policy
* a PDF without any signature -> INDETERMINATE/NO_SIGNATURE (not an ETSI sub-indication: the
  platform requires at least one signature, and nothing has been proven false, only missing)

Revocation modes: ``off`` checks nothing; ``soft-fail`` checks what certificates declare (CRL
distribution points, OCSP) and passes when that information cannot be had (the verdict's
``revocation`` evidence says so, and ``revocation_confirmed`` is False); ``if-declared`` (the
CLI's default, docs/adr/0064) requires an answer from every source a certificate declares, so
an unreachable CRL is INDETERMINATE/TRY_LATER — never a pass for a signer who may be revoked —
while a certificate declaring no source is not checked; ``hard-fail`` *requires* revocation
information for the signer and every CA below the trust anchor, so a certificate that declares
none, or whose sources cannot be reached and have nothing usable cached, is
INDETERMINATE/TRY_LATER — never a silent pass.

Revocation data is fetched by this module (not by pyHanko) from the URLs of certificates that
already chain, signature by signature, to a trust anchor — a forged certificate cannot make the
verifier fetch URLs of its choosing — and kept in a :class:`RevocationCache` (memory, plus a
directory shared by processes) until its nextUpdate. When a source is unreachable the last
cached copy is used even if stale (pyHanko then judges its freshness), so validation works
offline from the cache. A CRL, cached or fetched, is used only if its signature verifies with
the issuing certificate's key: a cached copy that no longer does (the CA re-keyed, same URL) is
dropped and fetched again, never trusted.

A document's verdict is the worst of its signatures' (TOTAL_FAILED, then INDETERMINATE).
"""

from __future__ import annotations

import asyncio
import binascii
import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import logging
import os
import re
import tempfile
import threading
import time
import urllib.request
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar

from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp
from pyhanko.keys import load_private_key_from_pemder_data
from pyhanko.pdf_utils import generic as pdf_generic
from pyhanko.pdf_utils import misc as pdf_misc
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign import general as pdf_sign_general
from pyhanko.sign.ades.report import AdESIndeterminate
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import async_validate_pdf_signature, generic_cms
from pyhanko.sign.validation import pdf_embedded as pdf_embedded_module
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko.sign.validation.utils import CMSAlgorithmUsagePolicy
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import InsufficientRevinfoError, NotYetValidError
from pyhanko_certvalidator.policy_decl import (
    NO_REVOCATION,
    CertRevTrustPolicy,
    DisallowWeakAlgorithmsPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)
from pyhanko_certvalidator.registry import SimpleCertificateStore, SimpleTrustManager

# What a package carries lived here first; its callers still import it from this module.
from lienthong_common.carried_pdfs import (
    MAX_UNZIPPED_BYTES,
    AttachmentRefused,
    CarriedPdf,
    PdfFile,
    UnzipBudget,
    pdf_files_in_attachment,
    pdfs_in_attachment,
)
from lienthong_common.pki import IssuedIdentity, agency_code_from_certificate, split_pem_certificates

__all__ = [
    "MAX_UNZIPPED_BYTES",
    "REVOCATION_MODES",
    "AttachmentRefused",
    "CarriedPdf",
    "Indication",
    "PdfFile",
    "PdfVerdict",
    "PdfVerifier",
    "RevocationCache",
    "RevocationMode",
    "SignatureVerdict",
    "UnzipBudget",
    "pdf_files_in_attachment",
    "pdfs_in_attachment",
    "sign_pdf",
    "verify_pdf",
]

RevocationMode = Literal["if-declared", "soft-fail", "hard-fail", "off"]
REVOCATION_MODES: tuple[RevocationMode, ...] = ("if-declared", "soft-fail", "hard-fail", "off")
T = TypeVar("T")
log = logging.getLogger(__name__)

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


_SEVERITY = {Indication.TOTAL_PASSED: 0, Indication.INDETERMINATE: 1, Indication.TOTAL_FAILED: 2}


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


# --------------------------------------------------------------------------- signing


def sign_pdf(
    pdf: bytes,
    identity: IssuedIdentity,
    *,
    field_name: str = "Signature1",
    reason: str = "",
    location: str = "",
) -> bytes:
    """Sign ``pdf`` with a PAdES B-B signature in a new field, as an incremental update.

    Call it again with another ``field_name`` to add a second signature (signer, then seal).
    Raises ValueError if the PDF cannot be read or ``field_name`` is already signed.
    """
    signing_cert = asn1_x509.Certificate.load(_pem_to_der(identity.cert_pem))
    chain = [
        asn1_x509.Certificate.load(_pem_to_der(pem))
        for block in identity.chain_pem
        for pem in split_pem_certificates(block)
    ]
    signer = signers.SimpleSigner(
        signing_cert=signing_cert,
        signing_key=load_private_key_from_pemder_data(identity.key_pem, passphrase=None),
        cert_registry=SimpleCertificateStore.from_certs(chain),  # type: ignore[no-untyped-call]
    )
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason or None,
        location=location or None,
    )
    try:
        writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
        if any(sig.field_name == field_name for sig in writer.prev.embedded_signatures):
            raise ValueError(f"signature field {field_name!r} is already signed")
        out = signers.PdfSigner(meta, signer).sign_pdf(writer, in_place=False)
    except ValueError:
        raise
    except Exception as exc:  # pyHanko raises a zoo of reader errors; callers get one type
        raise ValueError(f"cannot sign the PDF: {exc}") from exc
    return bytes(out.getbuffer())


# --------------------------------------------------------------------------- validation


class PdfVerifier:
    """Validates PAdES signatures against a fixed set of trust roots.

    Parse the trust roots once and reuse the verifier (it is thread-safe): each verification
    gets its own short-lived ValidationContext, so certificates embedded in one document never
    leak into the next and "now" is always now.
    """

    def __init__(
        self,
        trust_roots: Sequence[bytes],
        *,
        revocation: RevocationMode = "soft-fail",
        allow_fetching: bool | None = None,
        strict: bool = True,
        revocation_cache: RevocationCache | None = None,
        fetch_timeout: float = 5.0,
        revocation_max_age: timedelta = timedelta(hours=1),
        cache_paths: bool = True,
        allow_sha1: bool = False,
    ) -> None:
        """``trust_roots`` are PEM (several per item allowed) or DER certificates.

        ``allow_fetching`` (default: on unless ``revocation="off"``) lets the verifier fetch
        CRLs/OCSP responses over the network from the URLs certificates declare; off, it works
        from ``revocation_cache`` alone (offline). A cached CRL/OCSP response is refetched after
        ``revocation_max_age`` even before its nextUpdate, so a revocation published in the
        meantime is seen within that time. ``strict=False`` reads PDFs with broken
        cross-reference tables leniently. ``cache_paths=False`` validates every signer's
        certificate path from scratch on every document (see :class:`_PathCache`).
        ``allow_sha1`` accepts signatures made with SHA-1 (refused by default).
        """
        if revocation not in REVOCATION_MODES:
            raise ValueError(
                f"revocation mode must be one of {', '.join(REVOCATION_MODES)}, not {revocation!r}"
            )
        roots: list[asn1_x509.Certificate] = []
        for item in trust_roots:
            if item.lstrip().startswith(b"-----BEGIN"):
                roots.extend(
                    asn1_x509.Certificate.load(_pem_to_der(pem)) for pem in split_pem_certificates(item)
                )
            else:
                roots.append(asn1_x509.Certificate.load(item))
        _install_accelerators()
        self._trust_roots = roots
        self._trust_manager = SimpleTrustManager.build(trust_roots=roots)
        self._revocation: RevocationMode = revocation
        self._revinfo_policy = _revinfo_policy(revocation)
        self._allow_fetching = revocation != "off" if allow_fetching is None else allow_fetching
        self._strict = strict
        self._allow_sha1 = allow_sha1
        self._algorithm_policy = (
            CMSAlgorithmUsagePolicy.lift_policy(
                DisallowWeakAlgorithmsPolicy(weak_hash_algos=frozenset({"md2", "md5"}))  # type: ignore[no-untyped-call]
            )
            if allow_sha1
            else None
        )
        self._anchors = [x509.load_der_x509_certificate(root.dump()) for root in roots]
        # Identifies this trust store in path-cache keys (with the revocation policy).
        self._trust_digest = hashlib.sha256(
            f"{revocation}|sha1={allow_sha1}".encode()
            + b"".join(sorted(hashlib.sha256(r.dump()).digest() for r in roots))
        ).digest()
        self._paths = _PathCache()
        self._cache_paths = cache_paths
        self._chains: dict[bytes, list[x509.Certificate] | None] = {}
        self._chains_lock = threading.Lock()
        self._revinfo = _RevinfoCollector(
            revocation_cache or RevocationCache(None),
            allow_fetching=self._allow_fetching,
            timeout=fetch_timeout,
            max_age=revocation_max_age,
        )

    @property
    def revocation(self) -> RevocationMode:
        return self._revocation

    def verify(self, pdf: bytes | Path, *, at: datetime | None = None) -> PdfVerdict:
        """Validate every signature in ``pdf`` at ``at`` (default now); never raises for a bad PDF.

        ``pdf``: its bytes, or the file holding it, read as validation needs it (a 30 MB scan is
        never whole in memory). A file that cannot be opened raises OSError: that is no verdict
        on the PDF."""
        moment = _aware(at) if at is not None else None
        with pdf.open("rb") if isinstance(pdf, Path) else BytesIO(pdf) as stream:
            try:
                return _run_sync(self._verify(stream, moment))
            except Exception as exc:  # noqa: BLE001 - last line of defence: a verdict, never a stack trace
                return _format_failure(f"cannot validate the PDF: {_describe(exc)}")

    # ------------------------------------------------------------------ internals

    def _context(
        self, moment: datetime | None, revinfo: _Revinfo | None = None, *, cache_paths: bool = False
    ) -> ValidationContext:
        # pyHanko never fetches by itself: the collector did, from trusted certificates only.
        context = ValidationContext(
            trust_manager=self._trust_manager,
            revinfo_policy=self._revinfo_policy,
            allow_fetching=False,
            moment=moment,
            crls=list(revinfo.crls) if revinfo else [],
            ocsps=list(revinfo.ocsps) if revinfo else [],
        )
        if cache_paths and moment is None and revinfo is not None and revinfo.all_current:
            # Validation "now" with current revocation data: successful path validations may be
            # reused while every input stays the same (see _PathCache for the key and expiry).
            scope = hashlib.sha256(self._trust_digest)
            for der in (*revinfo.crls, b"|", *revinfo.ocsps):
                scope.update(hashlib.sha256(der).digest())
            context._lienthong_path_scope = _PathScope(  # type: ignore[attr-defined]
                self._paths, scope.digest(), revinfo.current_until
            )
        return context

    def _collect_revinfo(self, sig: EmbeddedPdfSignature) -> _Revinfo:
        if self._revocation == "off":
            return _Revinfo((), (), ())
        try:
            ders = [sig.signer_cert.dump(), *(c.dump() for c in sig.other_embedded_certs)]
            key = hashlib.sha256(b"".join(ders)).digest()
            chain = self._chains.get(key, _NO_CHAIN)
            if chain is _NO_CHAIN:
                # The same signer and chain recur document after document: check the links once.
                certs = [x509.load_der_x509_certificate(der) for der in ders]
                chain = _trusted_chain(certs[0], certs[1:], self._anchors)
                with self._chains_lock:
                    if len(self._chains) > 4096:
                        self._chains.clear()
                    self._chains[key] = chain
        except Exception as exc:  # noqa: BLE001 - unreadable certificates: pyHanko will say so
            return _Revinfo((), (), (f"revocation not checked: {_describe(exc)}",))
        if chain is None:
            return _Revinfo((), (), ("revocation not checked: no trusted chain",))
        return self._revinfo.collect(chain)

    async def _verify(self, pdf: BinaryIO, moment: datetime | None) -> PdfVerdict:
        try:
            reader = PdfFileReader(pdf, strict=self._strict)
            embedded = list(reader.embedded_regular_signatures)
        except Exception as exc:  # noqa: BLE001 - any reader error means the PDF is malformed
            return _format_failure(f"not a readable PDF: {_describe(exc)}")
        if not embedded:
            return PdfVerdict(
                indication=Indication.INDETERMINATE,
                sub_indication=NO_SIGNATURE,
                signatures=[],
                message="the PDF carries no signature; at least one is required",
            )
        verdicts = [await self._verify_signature(sig, moment) for sig in embedded]
        worst = max(verdicts, key=lambda v: _SEVERITY[v.indication])
        if worst.indication is Indication.TOTAL_PASSED:
            message = f"{len(verdicts)} signature(s) valid"
        else:
            message = f"signature {worst.field_name!r}: {worst.message}"
        return PdfVerdict(
            indication=worst.indication,
            sub_indication=worst.sub_indication,
            signatures=verdicts,
            message=message,
        )

    async def _verify_signature(self, sig: EmbeddedPdfSignature, moment: datetime | None) -> SignatureVerdict:
        field_name = _safe(lambda: str(sig.field_name), "?")
        cert_der = _safe(lambda: bytes(sig.signer_cert.dump()), b"")
        revinfo = self._collect_revinfo(sig)  # blocking I/O at most; this loop runs nothing else
        verdict = await self._validate_signature(sig, moment, field_name, cert_der, revinfo)
        if not revinfo.evidence:
            return verdict
        message = verdict.message
        if verdict.indication is Indication.TOTAL_PASSED and revinfo.unavailable:
            message += f" (revocation not confirmed, {self._revocation}: {'; '.join(revinfo.unavailable)})"
        return dataclasses.replace(
            verdict,
            revocation=revinfo.evidence,
            revocation_confirmed=not revinfo.unavailable,
            message=message,
        )

    async def _validate_signature(
        self,
        sig: EmbeddedPdfSignature,
        moment: datetime | None,
        field_name: str,
        cert_der: bytes,
        revinfo: _Revinfo,
    ) -> SignatureVerdict:
        context = self._context(moment, revinfo, cache_paths=self._cache_paths)
        try:
            status = await async_validate_pdf_signature(
                sig, signer_validation_context=context, algorithm_policy=self._algorithm_policy
            )
        except SignatureValidationError as exc:
            sub = exc.ades_subindication
            name = sub.standard_name if sub is not None else FORMAT_FAILURE
            weak = _sha1_algorithm(sig)
            if name == CRYPTO_CONSTRAINTS_FAILURE and weak is not None:
                return _signature_verdict(
                    sig, field_name, cert_der, Indication.INDETERMINATE, name, [], False, _sha1_refused(weak)
                )
            indication = (
                Indication.INDETERMINATE
                if sub is not None and isinstance(sub, AdESIndeterminate)
                else Indication.TOTAL_FAILED
            )
            return _signature_verdict(
                sig, field_name, cert_der, indication, name, [], False, exc.failure_message
            )
        except Exception as exc:  # noqa: BLE001 - pyHanko's parse errors have no common base
            return _signature_verdict(
                sig,
                field_name,
                cert_der,
                Indication.TOTAL_FAILED,
                FORMAT_FAILURE,
                [],
                False,
                f"malformed signature: {_describe(exc)}",
            )
        finally:
            await context.aclose()  # type: ignore[no-untyped-call]

        chain = _chain_subjects(status, sig)
        modified = _modified_after_signing(status)
        if not status.intact:
            return _signature_verdict(
                sig,
                field_name,
                cert_der,
                Indication.TOTAL_FAILED,
                HASH_FAILURE,
                chain,
                modified,
                "the signed bytes do not match the digest in the signature",
            )
        if not status.valid:
            return _signature_verdict(
                sig,
                field_name,
                cert_der,
                Indication.TOTAL_FAILED,
                SIG_CRYPTO_FAILURE,
                chain,
                modified,
                "the signature value does not verify with the signer's public key",
            )
        if status.coverage is None or status.coverage < SignatureCoverageLevel.ENTIRE_REVISION:
            return _signature_verdict(
                sig,
                field_name,
                cert_der,
                Indication.TOTAL_FAILED,
                FORMAT_FAILURE,
                chain,
                modified,
                "the signature's byte range does not cover its whole revision",
            )
        if modified:
            return _signature_verdict(
                sig,
                field_name,
                cert_der,
                Indication.TOTAL_FAILED,
                HASH_FAILURE,
                chain,
                True,
                "the document was changed after signing beyond form filling and further "
                "signatures" + _diff_reason(status),
            )
        problem = status.trust_problem_indic
        if problem is not None:
            indication, trust_sub, message = await self._classify_trust_problem(status, sig, moment, revinfo)
            return _signature_verdict(sig, field_name, cert_der, indication, trust_sub, chain, False, message)
        if status.seed_value_constraint_error is not None:
            return _signature_verdict(
                sig,
                field_name,
                cert_der,
                Indication.INDETERMINATE,
                "SIG_CONSTRAINTS_FAILURE",
                chain,
                False,
                str(status.seed_value_constraint_error),
            )
        return _signature_verdict(
            sig,
            field_name,
            cert_der,
            Indication.TOTAL_PASSED,
            None,
            chain,
            False,
            "signature valid",
        )

    async def _classify_trust_problem(
        self,
        status: PdfSignatureStatus,
        sig: EmbeddedPdfSignature,
        moment: datetime | None,
        revinfo: _Revinfo,
    ) -> tuple[Indication, str, str]:
        problem = status.trust_problem_indic
        assert problem is not None
        subject = status.signing_cert.subject.human_friendly
        weak = _sha1_algorithm(sig)
        if problem is AdESIndeterminate.CRYPTO_CONSTRAINTS_FAILURE and weak is not None:
            return Indication.INDETERMINATE, CRYPTO_CONSTRAINTS_FAILURE, _sha1_refused(weak)
        if problem is AdESIndeterminate.REVOKED_NO_POE:
            when = status.revocation_details.revocation_date if status.revocation_details else None
            return Indication.TOTAL_FAILED, REVOKED, f"the signer's certificate was revoked ({when})"
        if problem is AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND:
            return (
                Indication.INDETERMINATE,
                problem.name,
                f"no chain from {subject!r} to a trusted root",
            )
        if problem is AdESIndeterminate.OUT_OF_BOUNDS_NO_POE:
            return (
                Indication.INDETERMINATE,
                problem.name,
                f"the signer's certificate expired {status.error_time_horizon} and no timestamp "
                "proves the signature was made before",
            )
        if problem is AdESIndeterminate.TRY_LATER:
            detail = "; ".join(revinfo.unavailable) or "the newest available is stale"
            return (
                Indication.INDETERMINATE,
                problem.name,
                f"revocation information is not fresh ({detail})",
            )
        if problem is AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE:
            # pyHanko folds not-yet-valid and missing revocation info into this one; rerun the
            # path validation (failure path only) to tell them apart.
            refined = await self._diagnose_path(sig, moment, revinfo)
            if refined is not None:
                return refined
        name = str(problem.standard_name)
        return Indication.INDETERMINATE, name, f"certificate validation failed: {name}"

    async def _diagnose_path(
        self, sig: EmbeddedPdfSignature, moment: datetime | None, revinfo: _Revinfo
    ) -> tuple[Indication, str, str] | None:
        context = self._context(moment, revinfo)
        try:
            validator = CertificateValidator(
                sig.signer_cert,
                intermediate_certs=sig.other_embedded_certs,
                validation_context=context,
            )
            await validator.async_validate_usage(set())  # type: ignore[no-untyped-call]
        except NotYetValidError as exc:
            return Indication.INDETERMINATE, "NOT_YET_VALID", exc.failure_msg
        except InsufficientRevinfoError as exc:
            sources = "; ".join(revinfo.unavailable) or "the certificate declares no CRL or OCSP source"
            return (
                Indication.INDETERMINATE,
                "TRY_LATER",
                f"revocation status required ({self._revocation}) but unavailable ({sources}): "
                f"{exc.failure_msg}",
            )
        except Exception:  # noqa: BLE001 - diagnosis only; pyHanko's verdict stands
            return None  # some other path problem: keep pyHanko's classification
        finally:
            await context.aclose()  # type: ignore[no-untyped-call]
        return None


def verify_pdf(
    pdf: bytes,
    *,
    trust_roots: list[bytes],
    at: datetime | None = None,
    revocation: RevocationMode = "soft-fail",
) -> PdfVerdict:
    """Validate all PAdES signatures in ``pdf``; for many documents reuse a :class:`PdfVerifier`."""
    return PdfVerifier(trust_roots, revocation=revocation).verify(pdf, at=at)


# --------------------------------------------------------------------------- helpers


def _revinfo_policy(mode: RevocationMode) -> CertRevTrustPolicy:
    if mode == "off":
        return CertRevTrustPolicy(NO_REVOCATION)
    if mode == "soft-fail":
        return CertRevTrustPolicy(RevocationCheckingPolicy.from_legacy("soft-fail"))
    if mode == "if-declared":
        # pyHanko's "hard-fail": a declared CRL/OCSP source must give current data.
        return CertRevTrustPolicy(RevocationCheckingPolicy.from_legacy("hard-fail"))
    # pyHanko's legacy "hard-fail" only checks what a certificate declares; we require it.
    return CertRevTrustPolicy(
        RevocationCheckingPolicy(
            ee_certificate_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
            intermediate_ca_cert_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
        )
    )


def _sha1_algorithm(sig: EmbeddedPdfSignature) -> str | None:
    """The SHA-1 digest or signature algorithm a signature uses, if any."""
    names = (
        _safe(lambda: str(sig.signer_info["digest_algorithm"]["algorithm"].native), ""),
        _safe(lambda: str(sig.signer_info["signature_algorithm"]["algorithm"].native), ""),
    )
    return next((name for name in names if "sha1" in name), None)


def _sha1_refused(algorithm: str) -> str:
    return (
        f"signed with SHA-1 ({algorithm}): refused by policy (SHA-1 is accepted only when the "
        "verifier's allow_sha1 setting is on)"
    )


def _modified_after_signing(status: PdfSignatureStatus) -> bool:
    if status.coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return False
    level = status.modification_level
    if level is None:
        return False
    # FORM_FILLING also covers adding signatures; ANNOTATIONS and OTHER are not allowed.
    return level > ModificationLevel.FORM_FILLING or status.docmdp_ok is False


def _diff_reason(status: PdfSignatureStatus) -> str:
    diff = status.diff_result
    if diff is None or status.modification_level is not ModificationLevel.OTHER:
        return f" ({status.modification_level.name.lower()})" if status.modification_level else ""
    return f": {diff}" if str(diff) else ""


def _chain_subjects(status: PdfSignatureStatus, sig: EmbeddedPdfSignature) -> list[str]:
    path = status.validation_path
    if path is not None:
        certs = list(path.iter_certs(include_root=True))
        certs.reverse()
    else:
        # Untrusted: follow issuer names through the certificates the signer embedded.
        certs = [status.signing_cert]
        pool = {c.subject.dump(): c for c in sig.other_embedded_certs}
        while len(certs) < 10:
            issuer = pool.pop(certs[-1].issuer.dump(), None)
            if issuer is None or issuer.subject == certs[-1].subject:
                break
            certs.append(issuer)
    return [_subject_string(cert.dump()) for cert in certs]


def _signature_verdict(
    sig: EmbeddedPdfSignature,
    field_name: str,
    cert_der: bytes,
    indication: Indication,
    sub_indication: str | None,
    chain: list[str],
    modified: bool,
    message: str,
) -> SignatureVerdict:
    signing_time = _safe(lambda: _signed_time(sig), None)
    return SignatureVerdict(
        field_name=field_name,
        indication=indication,
        sub_indication=sub_indication,
        signer_subject=_subject_string(cert_der) if cert_der else "",
        signer_certificate_der=cert_der,
        agency_code=_agency_code(cert_der) if cert_der else None,
        signing_time=signing_time,
        chain=chain or ([_subject_string(cert_der)] if cert_der else []),
        modified_after_signing=modified,
        message=message,
    )


def _signed_time(sig: EmbeddedPdfSignature) -> datetime | None:
    """The signing-time signed attribute, else the signature dictionary's /M (both claimed)."""
    for attr in sig.signer_info["signed_attrs"]:
        if attr["type"].native == "signing_time":
            value = attr["values"][0].native
            return value if isinstance(value, datetime) else None
    return sig.self_reported_timestamp


@functools.lru_cache(maxsize=4096)
def _subject_string(cert_der: bytes) -> str:
    """RFC 4514 subject of a DER certificate ("" if unreadable); memoised: signers recur."""
    try:
        return x509.load_der_x509_certificate(cert_der).subject.rfc4514_string()
    except ValueError:
        return ""


_agency_code = functools.lru_cache(maxsize=4096)(agency_code_from_certificate)


def _format_failure(message: str) -> PdfVerdict:
    return PdfVerdict(
        indication=Indication.TOTAL_FAILED,
        sub_indication=FORMAT_FAILURE,
        signatures=[],
        message=message,
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _safe(func: Any, default: T) -> T:
    try:
        return func()  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - best-effort detail for a verdict on a broken signature
        return default


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _pem_to_der(data: bytes) -> bytes:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    return data


# --------------------------------------------------------------------------- revocation data

_NEGATIVE_TTL = 30.0  # seconds a failed source is not retried (an outage must not stall every check)
_OCSP_DEFAULT_TTL = timedelta(minutes=5)  # an OCSP response without nextUpdate
_MAX_REVINFO_BYTES = 20 * 1024 * 1024


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


_NO_CHAIN: Any = object()  # "not looked up yet" (None means "no trusted chain")

# A successful path validation is reused for at most this long, even if every input is unchanged.
_PATH_CACHE_TTL = timedelta(minutes=5)
_PATH_CACHE_SIZE = 4096


class _PathCache:
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
class _PathScope:
    """Tags a ValidationContext whose successful path validations may be cached."""

    cache: _PathCache
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


@dataclass(frozen=True)
class _Revinfo:
    crls: tuple[bytes, ...]
    ocsps: tuple[bytes, ...]
    evidence: tuple[str, ...]
    unavailable: tuple[str, ...] = ()
    # The earliest nextUpdate of the CRLs/OCSP responses above (None: none carries one, or none).
    current_until: datetime | None = None
    # Only data still current at collection time: a stale copy (offline) disables path caching.
    all_current: bool = True


class _RevinfoCollector:
    """Finds revocation data for a trusted chain: cache first, then the certificate's URLs."""

    def __init__(
        self, cache: RevocationCache, *, allow_fetching: bool, timeout: float, max_age: timedelta
    ) -> None:
        self._cache = cache
        self._max_age = max_age
        self._allow_fetching = allow_fetching
        self._timeout = timeout
        self._failed: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def collect(self, chain: list[x509.Certificate]) -> _Revinfo:
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
            for url in _crl_urls(cert):
                fetch = functools.partial(self._fetch_crl, url, issuer)
                check = functools.partial(_crl_signed_by, issuer=issuer)
                der, note, until = self._obtain(f"crl|{url}", url, fetch, check)
                if der is not None:
                    crls.append(der)
                    horizons.append(until)
                (found if der is not None else missed).append(f"CRL {url} for {subject}: {note}")
            if not found:
                for url in _ocsp_urls(cert):
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
        return _Revinfo(
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
                reason = f"unreachable: {failed[1]}"
            else:
                try:
                    entry = fetch()
                except Exception as exc:  # noqa: BLE001 - any fetch or parse failure: source unusable
                    reason = f"unreachable: {_describe(exc)}"
                    with self._lock:
                        self._failed[url] = (time.monotonic(), _describe(exc))
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
        der = _http(url, None, self._timeout, accept="application/pkix-crl")
        if der.lstrip().startswith(b"-----BEGIN"):
            der = x509.load_pem_x509_crl(der).public_bytes(serialization.Encoding.DER)
        parsed = x509.load_der_x509_crl(der)
        if not _crl_signed_by(der, issuer=issuer):
            raise ValueError(f"the CRL's signature does not verify with {issuer.subject.rfc4514_string()}")
        return CachedRevinfo(der=der, next_update=parsed.next_update_utc, fetched_at=datetime.now(UTC))

    def _fetch_ocsp(self, url: str, cert: x509.Certificate, issuer: x509.Certificate) -> CachedRevinfo:
        request = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()  # noqa: S303 - RFC 6960 CertID
        der = _http(
            url,
            request.public_bytes(serialization.Encoding.DER),
            self._timeout,
            accept="application/ocsp-response",
        )
        response = x509_ocsp.load_der_ocsp_response(der)
        if response.response_status is not x509_ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise ValueError(f"OCSP responder answered {response.response_status.name}")
        now = datetime.now(UTC)
        next_update = response.next_update_utc or now + _OCSP_DEFAULT_TTL
        asn1_ocsp.OCSPResponse.load(der)  # pyHanko reads it with asn1crypto: make sure it can
        return CachedRevinfo(der=der, next_update=next_update, fetched_at=now)


def _crl_signed_by(der: bytes, *, issuer: x509.Certificate) -> bool:
    """Whether the CRL ``der`` is issued and signed by ``issuer``."""
    try:
        crl = x509.load_der_x509_crl(der)
        return crl.issuer == issuer.subject and crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False


def _http(url: str, body: bytes | None, timeout: float, *, accept: str) -> bytes:
    if not url.lower().startswith(("http://", "https://")):
        raise ValueError(f"unsupported scheme in {url!r}")
    headers = {"Accept": accept, "User-Agent": "lienthong-sigverify"}
    if body is not None:
        headers["Content-Type"] = "application/ocsp-request"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")  # noqa: S310 - scheme checked above
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        data = response.read(_MAX_REVINFO_BYTES + 1)
    if len(data) > _MAX_REVINFO_BYTES:
        raise ValueError(f"{url} returned more than {_MAX_REVINFO_BYTES} bytes")
    return bytes(data)


def _crl_urls(cert: x509.Certificate) -> list[str]:
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


def _ocsp_urls(cert: x509.Certificate) -> list[str]:
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


def _trusted_chain(
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


# --------------------------------------------------------------------------- accelerators
#
# Profiling verify() on a 100 KB PDF showed ~85% of the time in two pure-Python hot spots:
# pyHanko's hex-string tokenizer (one generator step per character of the signature's
# /Contents) and asn1crypto's RFC 4518 string preparation, recomputed for every distinguished
# name comparison. Both replacements below give identical results (the originals remain the
# fallback for anything unusual) and are installed once per process by PdfVerifier.

_accelerators_lock = threading.Lock()
_accelerators_installed = False
# What each accelerator replaced, by name (the tests compare both on the same inputs).
_ORIGINALS: dict[str, Any] = {}
_HEX_STRING = re.compile(rb"[0-9A-Fa-f]*")
_PDF_WHITESPACE = b" \n\r\t\f\x00"
# A PDF name without escapes: printable ASCII, no delimiter, whitespace or "#".
_PLAIN_NAME = re.compile(rb"[!-~]*")
_NAME_EXCLUDED = re.compile(rb"[()<>\[\]{}/%#]")
_TOKEN_CHUNK = 256


def _install_accelerators() -> None:
    global _accelerators_installed
    with _accelerators_lock:
        if _accelerators_installed:
            return
        # pyHanko's internals, patched below (typed loosely: they are not its public API).
        cms_module: Any = generic_cms
        embedded_module: Any = pdf_embedded_module
        general_module: Any = pdf_sign_general
        original_read_hex = pdf_generic.read_hex_string_from_stream

        def read_hex_string_from_stream(stream: Any) -> Any:
            start = stream.tell()
            stream.read(1)  # the opening "<"
            buffered = b""
            size = 256  # most hex strings are short (/ID); a signature's /Contents takes a few reads
            while (end := buffered.find(b">")) < 0:
                chunk = stream.read(size)
                if not chunk:
                    break
                buffered += chunk
                size = min(size * 4, 1 << 20)
            if end < 0 or b"%" in buffered[:end]:
                # truncated, or a comment inside the string: let the original report or parse it
                stream.seek(start)
                return original_read_hex(stream)
            stream.seek(start + 1 + end + 1)
            digits = buffered[:end].translate(None, _PDF_WHITESPACE)
            if not _HEX_STRING.fullmatch(digits):
                stream.seek(start)
                return original_read_hex(stream)  # raises the usual PdfStreamError
            if len(digits) % 2:
                digits += b"0"
            return pdf_generic.pdf_string(binascii.unhexlify(digits))

        pdf_generic.read_hex_string_from_stream = read_hex_string_from_stream

        # pyHanko reads every name, number and keyword one byte per generator step; find the
        # end of the token with one regex search over a chunk instead. Same bytes returned,
        # same stream position (just past the stop byte, or at EOF), same EOF flag.
        original_read_until_class = pdf_misc._read_until_class

        @functools.lru_cache(maxsize=16)
        def stop_pattern(class_chars: bytes) -> re.Pattern[bytes]:
            return re.compile(b"[" + b"".join(re.escape(bytes((c,))) for c in class_chars) + b"]")

        def read_until_class(class_chars: bytes, stream: Any, maxchars: int | None = None) -> Any:
            if maxchars:
                return original_read_until_class(class_chars, stream, maxchars=maxchars)
            start = stream.tell()
            chunk = stream.read(_TOKEN_CHUNK)
            found = stop_pattern(class_chars).search(chunk)
            if found is not None:
                stream.seek(start + found.start() + 1)
                return chunk[: found.start()], False
            if len(chunk) < _TOKEN_CHUNK:
                return chunk, True  # ran into EOF; the stream is there, as after the original
            stream.seek(start)
            return original_read_until_class(class_chars, stream, maxchars=maxchars)

        pdf_misc._read_until_class = read_until_class

        # Names without "#" escapes (nearly all of them) decode to themselves.
        original_decode_name = pdf_generic._decode_name

        def decode_name(name_bytes: bytes) -> Any:
            if _PLAIN_NAME.fullmatch(name_bytes) and not _NAME_EXCLUDED.search(name_bytes):
                return pdf_generic.NameObject("/" + name_bytes.decode("ascii"))
            return original_decode_name(name_bytes)

        pdf_generic._decode_name = decode_name

        original_prep = asn1_x509.NameTypeAndValue._ldap_string_prep

        @functools.lru_cache(maxsize=4096)
        def cached_prep(string: str) -> str:
            return original_prep(None, string)  # type: ignore[no-any-return]

        def ldap_string_prep(self: Any, string: Any) -> Any:
            if isinstance(string, str):
                return cached_prep(string)
            return original_prep(self, string)

        asn1_x509.NameTypeAndValue._ldap_string_prep = ldap_string_prep

        # RFC 5280 name equality is a function of the two encodings: memoise it by DER, so the
        # issuer/subject comparisons of path building stop re-parsing the same CA names.
        original_eq = asn1_x509.RDNSequence.__eq__

        @functools.lru_cache(maxsize=8192)
        def names_equal(left: bytes, right: bytes) -> bool:
            return bool(original_eq(asn1_x509.RDNSequence.load(left), asn1_x509.RDNSequence.load(right)))

        def rdn_sequence_eq(self: Any, other: Any) -> bool:
            if not isinstance(other, asn1_x509.RDNSequence):
                return False
            left, right = self.dump(), other.dump()
            return left == right or names_equal(left, right)

        asn1_x509.RDNSequence.__eq__ = rdn_sequence_eq

        # The registry keys certificates by Name.hashable (the same RFC 4518 preparation).
        original_hashable = asn1_x509.RDNSequence.hashable.fget

        @functools.lru_cache(maxsize=8192)
        def hashable_of(der: bytes) -> str:
            return str(original_hashable(asn1_x509.RDNSequence.load(der)))

        asn1_x509.RDNSequence.hashable = property(lambda self: hashable_of(self.dump()))

        # Path validation of the signer's certificate, cached for contexts PdfVerifier tags
        # (see _PathCache); any other caller of pyHanko gets the original behaviour.
        original_validate_cert_usage = cms_module.validate_cert_usage

        async def validate_cert_usage(
            cert: Any,
            validation_context: ValidationContext,
            key_usage_settings: Any,
            paths: Any,
            pkix_validation_params: Any = None,
        ) -> Any:
            scope: _PathScope | None = getattr(validation_context, "_lienthong_path_scope", None)
            if scope is None:
                return await original_validate_cert_usage(
                    cert, validation_context, key_usage_settings, paths, pkix_validation_params
                )
            now = validation_context.moment
            try:
                key = scope.key(cert, validation_context, key_usage_settings, pkix_validation_params)
            except Exception:  # noqa: BLE001 - an odd certificate: validate it uncached
                key = None
            hit = scope.cache.get(key, now) if key is not None else None
            if hit is not None:
                await paths.cancel()
                return hit
            result = await original_validate_cert_usage(
                cert, validation_context, key_usage_settings, paths, pkix_validation_params
            )
            if key is not None and result.error_subindic is None and result.success_result is not None:
                try:
                    scope.cache.put(key, now, scope.expiry(result, now), result)
                except Exception as exc:  # noqa: BLE001 - not cacheable; the result stands
                    log.debug("path validation result not cached: %s", exc)
            return result

        cms_module.validate_cert_usage = validate_cert_usage

        # pyHanko extracts the signer's certificate (and checks its ESS signing-certificate
        # attribute) once for EmbeddedPdfSignature.signer_cert and again in
        # cms_basic_validation, from the same SignedData object: remember the first answer
        # on that object (a pure function of it; errors are not remembered).
        original_extract = cms_module.extract_certs_for_validation

        def extract_certs_for_validation(signed_data: Any) -> Any:
            known = getattr(signed_data, "_lienthong_certs", None)
            if known is not None:
                return known
            result = original_extract(signed_data)
            with contextlib.suppress(AttributeError):
                signed_data._lienthong_certs = result
            return result

        cms_module.extract_certs_for_validation = extract_certs_for_validation

        # One parsed Certificate object per distinct DER, shared by every document that embeds
        # it: asn1crypto memoises what it derives (issuer/serial, key identifiers, names, the
        # public key) on the object, so the signer's and CAs' certificates are decoded once per
        # process instead of once per PDF. Same bytes, so the same values; nothing mutates them.
        original_extract_info = cms_module.extract_certificate_info
        known_certs: dict[bytes, Any] = {}
        known_lock = threading.Lock()

        def canonical(cert: Any) -> Any:
            der = cert.dump()
            with known_lock:
                found = known_certs.get(der)
                if found is None:
                    if len(known_certs) >= 4096:
                        known_certs.clear()
                    found = known_certs[der] = cert
            return found

        def extract_certificate_info(signed_data: Any) -> Any:
            info = original_extract_info(signed_data)
            return dataclasses.replace(
                info,
                signer_cert=canonical(info.signer_cert),
                other_certs=[canonical(c) for c in info.other_certs],
            )

        cms_module.extract_certificate_info = extract_certificate_info

        # Matching the signer identifier and the ESS signing-certificate attribute against a
        # certificate are pure functions of the encodings involved, identical document after
        # document for one signer: memoise them by DER (an exception is never memoised).
        original_match = general_module.match_issuer_serial
        original_check_ess = cms_module.check_ess_certid

        @functools.lru_cache(maxsize=4096)
        def match_by_der(kind: Any, expected: bytes, cert: bytes) -> bool:
            return bool(original_match(kind.load(expected), asn1_x509.Certificate.load(cert)))

        def match_issuer_serial(expected: Any, cert: Any) -> bool:
            try:
                kind: Any = type(expected)
                return match_by_der(kind, expected.dump(), cert.dump())
            except Exception:  # noqa: BLE001 - let the original decide (and raise) on odd input
                return bool(original_match(expected, cert))

        @functools.lru_cache(maxsize=4096)
        def check_ess_by_der(kind: Any, certid: bytes, cert: bytes) -> bool:
            return bool(original_check_ess(asn1_x509.Certificate.load(cert), kind.load(certid)))

        def check_ess_certid(cert: Any, certid: Any) -> bool:
            try:
                kind: Any = type(certid)
                return check_ess_by_der(kind, certid.dump(), cert.dump())
            except Exception:  # noqa: BLE001 - let the original decide (and raise) on odd input
                return bool(original_check_ess(cert, certid))

        general_module.match_issuer_serial = match_issuer_serial

        # The signed byte ranges of an in-memory PDF: hash slices of the buffer directly (one
        # update per range) instead of copying it through a chunk buffer. Same digest, same
        # total; anything unusual (another stream type, negative offsets, an odd-length
        # /ByteRange) goes to the original, which raises as before.
        original_byte_range_digest = embedded_module.byte_range_digest

        def byte_range_digest(stream: Any, byte_range: Any, md_algorithm: str, **kwargs: Any) -> Any:
            ranges = list(byte_range)
            if (
                kwargs
                or type(stream) is not io.BytesIO
                or len(ranges) % 2
                or any(not isinstance(v, int) or v < 0 for v in ranges)
            ):
                return original_byte_range_digest(stream, byte_range, md_algorithm, **kwargs)
            md = hashes.Hash(general_module.get_pyca_cryptography_hash(md_algorithm))
            total = 0
            end = stream.tell()
            with stream.getbuffer() as view:
                size = len(view)
                for start, length in zip(ranges[::2], ranges[1::2], strict=True):
                    if length > 0:
                        md.update(view[start : start + length])
                    end = start + max(0, min(length, size - start))  # where reading stopped
                    total += length
            stream.seek(end)
            return total, md.finalize()

        embedded_module.byte_range_digest = byte_range_digest
        cms_module.check_ess_certid = check_ess_certid
        _ORIGINALS.update(
            read_hex_string_from_stream=original_read_hex,
            read_until_class=original_read_until_class,
            decode_name=original_decode_name,
            validate_cert_usage=original_validate_cert_usage,
            extract_certs_for_validation=original_extract,
            extract_certificate_info=original_extract_info,
            match_issuer_serial=original_match,
            check_ess_certid=original_check_ess,
            byte_range_digest=original_byte_range_digest,
        )
        _accelerators_installed = True


# --------------------------------------------------------------------------- sync bridge

_local = threading.local()
_pool_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _loop() -> asyncio.AbstractEventLoop:
    # One event loop per thread, reused: asyncio.run() per document would cost a loop each time,
    # and asyncio.Runner.run() re-checks the SIGINT handler on every call (~3 % of a verify).
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    return loop


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _loop().run_until_complete(coro)
    # Called from inside an event loop (not the expected use): run on a worker thread.
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="pades-verify")
    return _pool.submit(lambda: _loop().run_until_complete(coro)).result()
