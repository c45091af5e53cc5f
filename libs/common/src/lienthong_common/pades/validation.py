"""PAdES validation (pyHanko) with verdicts in ETSI EN 319 102-1 terms.

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
  (a source refused by the outbound-address checks is unobtainable, and the message says why)
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

Revocation data comes from :mod:`lienthong_common.pades.revocation` (fetched by us, only for
trusted chains, through the outbound-address checks). A CRL, cached or fetched, is used only if
its signature verifies with the issuing certificate's key.

Nothing here patches pyHanko: the speed-ups are :mod:`lienthong_common.pades.accelerators`,
installed by sigverify alone (docs/adr/0081). A document's verdict is the worst of its
signatures' (TOTAL_FAILED, then INDETERMINATE).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESIndeterminate
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import async_validate_pdf_signature
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
from pyhanko_certvalidator.registry import SimpleTrustManager

from lienthong_common.outbound import OutboundPolicy
from lienthong_common.pades.paths import PathCache, PathScope
from lienthong_common.pades.revocation import Revinfo, RevinfoCollector, RevocationCache, trusted_chain
from lienthong_common.pades.sync import run_sync
from lienthong_common.pades.verdicts import (
    CRYPTO_CONSTRAINTS_FAILURE,
    FORMAT_FAILURE,
    HASH_FAILURE,
    NO_SIGNATURE,
    REVOCATION_MODES,
    REVOKED,
    SEVERITY,
    SIG_CRYPTO_FAILURE,
    Indication,
    PdfVerdict,
    RevocationMode,
    SignatureVerdict,
    aware,
    describe,
    format_failure,
    pem_to_der,
    safe,
)
from lienthong_common.pki import agency_code_from_certificate, split_pem_certificates

_NO_CHAIN: Any = object()  # "not looked up yet" (None means "no trusted chain")



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
        outbound: OutboundPolicy | None = None,
    ) -> None:
        """``trust_roots`` are PEM (several per item allowed) or DER certificates.

        ``allow_fetching`` (default: on unless ``revocation="off"``) lets the verifier fetch
        CRLs/OCSP responses over the network from the URLs certificates declare; off, it works
        from ``revocation_cache`` alone (offline). A cached CRL/OCSP response is refetched after
        ``revocation_max_age`` even before its nextUpdate, so a revocation published in the
        meantime is seen within that time. ``strict=False`` reads PDFs with broken
        cross-reference tables leniently. ``cache_paths=False`` validates every signer's
        certificate path from scratch on every document (see :class:`_PathCache`).
        ``allow_sha1`` accepts signatures made with SHA-1 (refused by default). ``outbound``
        says which addresses CRL/OCSP URLs may reach (default: public addresses only; an
        operator allow-list such as ``OutboundPolicy.from_cidrs(["127.0.0.0/8"])`` admits more).
        """
        if revocation not in REVOCATION_MODES:
            raise ValueError(
                f"revocation mode must be one of {', '.join(REVOCATION_MODES)}, not {revocation!r}"
            )
        roots: list[asn1_x509.Certificate] = []
        for item in trust_roots:
            if item.lstrip().startswith(b"-----BEGIN"):
                roots.extend(
                    asn1_x509.Certificate.load(pem_to_der(pem)) for pem in split_pem_certificates(item)
                )
            else:
                roots.append(asn1_x509.Certificate.load(item))
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
        self._paths = PathCache()
        self._cache_paths = cache_paths
        self._chains: dict[bytes, list[x509.Certificate] | None] = {}
        self._chains_lock = threading.Lock()
        self._revinfo = RevinfoCollector(
            revocation_cache or RevocationCache(None),
            allow_fetching=self._allow_fetching,
            timeout=fetch_timeout,
            max_age=revocation_max_age,
            outbound=outbound if outbound is not None else OutboundPolicy(),
        )

    @property
    def revocation(self) -> RevocationMode:
        return self._revocation

    def verify(self, pdf: bytes | Path, *, at: datetime | None = None) -> PdfVerdict:
        """Validate every signature in ``pdf`` at ``at`` (default now); never raises for a bad PDF.

        ``pdf``: its bytes, or the file holding it, read as validation needs it (a 30 MB scan is
        never whole in memory). A file that cannot be opened raises OSError: that is no verdict
        on the PDF."""
        moment = aware(at) if at is not None else None
        with pdf.open("rb") if isinstance(pdf, Path) else BytesIO(pdf) as stream:
            try:
                return run_sync(self._verify(stream, moment))
            except Exception as exc:  # noqa: BLE001 - last line of defence: a verdict, never a stack trace
                return format_failure(f"cannot validate the PDF: {describe(exc)}")

    # ------------------------------------------------------------------ internals

    def _context(
        self, moment: datetime | None, revinfo: Revinfo | None = None, *, cache_paths: bool = False
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
            # reused while every input stays the same (see PathCache for the key and expiry).
            scope = hashlib.sha256(self._trust_digest)
            for der in (*revinfo.crls, b"|", *revinfo.ocsps):
                scope.update(hashlib.sha256(der).digest())
            context._lienthong_path_scope = PathScope(  # type: ignore[attr-defined]
                self._paths, scope.digest(), revinfo.current_until
            )
        return context

    def _collect_revinfo(self, sig: EmbeddedPdfSignature) -> Revinfo:
        if self._revocation == "off":
            return Revinfo((), (), ())
        try:
            ders = [sig.signer_cert.dump(), *(c.dump() for c in sig.other_embedded_certs)]
            key = hashlib.sha256(b"".join(ders)).digest()
            chain = self._chains.get(key, _NO_CHAIN)
            if chain is _NO_CHAIN:
                # The same signer and chain recur document after document: check the links once.
                certs = [x509.load_der_x509_certificate(der) for der in ders]
                chain = trusted_chain(certs[0], certs[1:], self._anchors)
                with self._chains_lock:
                    if len(self._chains) > 4096:
                        self._chains.clear()
                    self._chains[key] = chain
        except Exception as exc:  # noqa: BLE001 - unreadable certificates: pyHanko will say so
            return Revinfo((), (), (f"revocation not checked: {describe(exc)}",))
        if chain is None:
            return Revinfo((), (), ("revocation not checked: no trusted chain",))
        return self._revinfo.collect(chain)

    async def _verify(self, pdf: BinaryIO, moment: datetime | None) -> PdfVerdict:
        try:
            reader = PdfFileReader(pdf, strict=self._strict)
            embedded = list(reader.embedded_regular_signatures)
        except Exception as exc:  # noqa: BLE001 - any reader error means the PDF is malformed
            return format_failure(f"not a readable PDF: {describe(exc)}")
        if not embedded:
            return PdfVerdict(
                indication=Indication.INDETERMINATE,
                sub_indication=NO_SIGNATURE,
                signatures=[],
                message="the PDF carries no signature; at least one is required",
            )
        verdicts = [await self._verify_signature(sig, moment) for sig in embedded]
        worst = max(verdicts, key=lambda v: SEVERITY[v.indication])
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
        field_name = safe(lambda: str(sig.field_name), "?")
        cert_der = safe(lambda: bytes(sig.signer_cert.dump()), b"")
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
        revinfo: Revinfo,
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
                f"malformed signature: {describe(exc)}",
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
        revinfo: Revinfo,
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
        self, sig: EmbeddedPdfSignature, moment: datetime | None, revinfo: Revinfo
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
        safe(lambda: str(sig.signer_info["digest_algorithm"]["algorithm"].native), ""),
        safe(lambda: str(sig.signer_info["signature_algorithm"]["algorithm"].native), ""),
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
    signing_time = safe(lambda: _signed_time(sig), None)
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




