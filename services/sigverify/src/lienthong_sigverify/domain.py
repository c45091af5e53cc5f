"""The verification rules: every PDF signature valid, and every signer bound to the sender.

Pure apart from the two collaborators it is given (the PDF verifier and the binding check),
so the whole verdict can be tested without a network or a database. A package is read from its
file and its PDFs decoded to files when it is large (PreparedPackage): never the package or a
scan whole in memory, whatever their size (issue 24).
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from lienthong_common.edxml import EdxmlError, MessageHeader, parse_package, read_package_file
from lienthong_common.pades import (
    MAX_UNZIPPED_BYTES,
    AttachmentRefused,
    CarriedPdf,
    Indication,
    PdfFile,
    PdfVerdict,
    SignatureVerdict,
    UnzipBudget,
    pdf_files_in_attachment,
    pdfs_in_attachment,
)
from lienthong_common.pki import certificate_fingerprint

__all__ = [
    "MAX_UNZIPPED_BYTES",
    "Binding",
    "BindingCheck",
    "CarriedItem",
    "EnvelopeOutcome",
    "Indication",
    "PdfCheck",
    "PreparedPackage",
    "Report",
    "SignatureCheck",
    "apply_envelope",
    "pdfs_in_package",
    "verify_package",
]


FORMAT_FAILURE = "FORMAT_FAILURE"
NO_SIGNATURE = "NO_SIGNATURE"
# Not an ETSI sub-indication: the platform's own rule that the signer belongs to the sender.
SIGNER_NOT_BOUND = "SIGNER_NOT_BOUND"

_SEVERITY = {Indication.TOTAL_PASSED: 0, Indication.INDETERMINATE: 1, Indication.TOTAL_FAILED: 2}


@dataclass(frozen=True)
class Binding:
    """Whether a certificate is registered to an agency, and to which agencies it is."""

    bound: bool
    owner_codes: tuple[str, ...] = ()


class PdfCheck(Protocol):
    """Anything that gives a verdict on one PDF, its bytes or its file (a PdfVerifier, or the
    service's worker pool)."""

    def verify(self, pdf: bytes | Path) -> PdfVerdict: ...


class BindingCheck(Protocol):
    """Asks the directory whether the certificate `fingerprint` is registered to `agency_code`."""

    def __call__(self, *, agency_code: str, fingerprint: str) -> Binding: ...


@dataclass(frozen=True)
class SignatureCheck:
    """The outcome for one signature (or for a PDF that could not yield any)."""

    attachment_name: str
    field_name: str
    indication: Indication
    sub_indication: str
    message: str
    signer_subject: str = ""
    signer_agency_code: str = ""
    signer_fingerprint: str = ""
    signing_time: datetime | None = None
    chain: tuple[str, ...] = ()
    # Revocation evidence: one line per CRL/OCSP source used or unavailable.
    revocation: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, the form kept in the database."""
        return {
            "attachment_name": self.attachment_name,
            "field_name": self.field_name,
            "indication": self.indication.value,
            "sub_indication": self.sub_indication,
            "message": self.message,
            "signer_subject": self.signer_subject,
            "signer_agency_code": self.signer_agency_code,
            "signer_fingerprint": self.signer_fingerprint,
            "signing_time": self.signing_time.isoformat() if self.signing_time else None,
            "chain": list(self.chain),
            "revocation": list(self.revocation),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SignatureCheck:
        """The inverse of :meth:`to_json`."""
        signing_time = data.get("signing_time")
        return cls(
            attachment_name=data.get("attachment_name", ""),
            field_name=data.get("field_name", ""),
            indication=Indication(data["indication"]),
            sub_indication=data.get("sub_indication", ""),
            message=data.get("message", ""),
            signer_subject=data.get("signer_subject", ""),
            signer_agency_code=data.get("signer_agency_code", ""),
            signer_fingerprint=data.get("signer_fingerprint", ""),
            signing_time=datetime.fromisoformat(signing_time) if signing_time else None,
            chain=tuple(data.get("chain", ())),
            revocation=tuple(data.get("revocation", ())),
        )


@dataclass(frozen=True)
class Report:
    """The verdict on a whole document: the worst of its signatures."""

    indication: Indication
    sub_indication: str
    reason: str
    signatures: tuple[SignatureCheck, ...] = field(default=())
    # The policy and trust store the verdict was reached under (empty/0 when not recorded).
    policy: str = ""
    trust_store_version: int = 0

    @property
    def passed(self) -> bool:
        return self.indication is Indication.TOTAL_PASSED


# Packages up to this size are read in memory, as they always were (the common case: a signed
# letter of ~100 KB; files would cost a few milliseconds each); larger ones from disk.
IN_MEMORY_BYTES = 4 * 1024 * 1024


@dataclass
class CarriedItem:
    """One attachment of a package as verification sees it: the PDFs it carries (bytes, or on
    disk for a large package), or why it was refused (a zip that cannot be opened safely)."""

    attachment_name: str
    pdfs: list[CarriedPdf | PdfFile]
    refused: str | None = None


class PreparedPackage:
    """A package read once for verification: its header, and every PDF it carries (zipped ones
    included). A package over ``IN_MEMORY_BYTES`` (or given as a file) is read from its file
    with its PDFs decoded to files in a scratch folder, so neither the package nor a scan is
    ever whole in memory; :meth:`close` removes them. ``package`` is what the envelope signature
    is checked over: the bytes, or the file.

    The events handler prepares a polled batch's packages ahead (their PDFs start verifying in
    the worker pool at once) and verifies each with the same PDFs when its event comes."""

    def __init__(
        self,
        package: bytes | Path,
        *,
        folder: Path | None = None,
        max_unzipped_bytes: int = MAX_UNZIPPED_BYTES,
        owns_package: bool = False,
    ) -> None:
        """Read ``package`` (its bytes, or its file); raises EdxmlError when it is not valid
        edXML. ``owns_package``: remove the package file too on :meth:`close`."""
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._folder = folder
        self._owned = package if owns_package and isinstance(package, Path) else None
        self.package: bytes | Path = package
        budget = UnzipBudget(max_unzipped_bytes)
        try:
            if isinstance(package, bytes) and len(package) <= IN_MEMORY_BYTES:
                self.size = len(package)
                self.header, self.items = _read_in_memory(package, budget)
                return
            if isinstance(package, bytes):
                self.package = self.folder / "package.edxml"
                self.package.write_bytes(package)
            assert isinstance(self.package, Path)
            self.size = self.package.stat().st_size
            self.header, self.items = self._read_from_disk(self.package, budget)
        except BaseException:
            self.close()
            raise

    @property
    def folder(self) -> Path:
        """The scratch folder (made on first use, removed on close)."""
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(dir=self._folder, prefix="verify-")
        return Path(self._scratch.name)

    def _read_from_disk(self, package: Path, budget: UnzipBudget) -> tuple[MessageHeader, list[CarriedItem]]:
        items: list[CarriedItem] = []
        # Every attachment decoded to a file as the package streams past (kept: the folder is
        # removed on close, not when the reading ends).
        with read_package_file(package, attachment_dir=self.folder, spans=False) as read:
            for attachment, stored in zip(read.package.attachments, read.attachments, strict=True):
                assert stored.path is not None
                kept = stored.path.with_name(f"attachment-{len(items) + 1}")
                stored.path.rename(kept)
                try:
                    pdfs = pdf_files_in_attachment(
                        attachment.name, attachment.content_type, kept, budget, self.folder
                    )
                    items.append(CarriedItem(attachment.name, list(pdfs)))
                except AttachmentRefused as refused:
                    items.append(CarriedItem(attachment.name, [], str(refused)))
        return read.package.header, items

    @property
    def disk_bytes(self) -> int:
        """What this package occupies on disk while it is verified (package and decoded files)."""
        if self._scratch is None:
            return self.size if isinstance(self.package, Path) else 0
        scratch = sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())
        return scratch + (self.size if self._owned is not None else 0)

    @property
    def pdfs(self) -> list[bytes | Path]:
        """Every PDF, as what a PdfCheck verifies: its bytes, or its file."""
        return [_pdf_source(pdf) for item in self.items for pdf in item.pdfs]

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
        if self._owned is not None:
            self._owned.unlink(missing_ok=True)

    def __enter__(self) -> PreparedPackage:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _read_in_memory(package: bytes, budget: UnzipBudget) -> tuple[MessageHeader, list[CarriedItem]]:
    parsed = parse_package(package)
    items: list[CarriedItem] = []
    for attachment in parsed.attachments:
        try:
            items.append(CarriedItem(attachment.name, list(pdfs_in_attachment(attachment, budget))))
        except AttachmentRefused as refused:
            items.append(CarriedItem(attachment.name, [], str(refused)))
    return parsed.header, items


def _pdf_source(pdf: CarriedPdf | PdfFile) -> bytes | Path:
    return pdf.path if isinstance(pdf, PdfFile) else pdf.data


def pdfs_in_package(package: bytes | Path, *, max_unzipped_bytes: int = MAX_UNZIPPED_BYTES) -> list[bytes]:
    """Every PDF a package carries (zipped ones included), as bytes; [] when it cannot be read."""
    try:
        with PreparedPackage(package, max_unzipped_bytes=max_unzipped_bytes) as prepared:
            return [pdf.read_bytes() if isinstance(pdf, Path) else pdf for pdf in prepared.pdfs]
    except EdxmlError:
        return []


def verify_package(
    package: bytes | Path | PreparedPackage,
    *,
    verifier: PdfCheck,
    binding_check: BindingCheck | None,
    max_unzipped_bytes: int = MAX_UNZIPPED_BYTES,
) -> Report:
    """Verify every PDF signature in a package (its bytes, its file, or as prepared);
    `binding_check=None` skips the binding rule."""
    if not isinstance(package, PreparedPackage):
        try:
            prepared = PreparedPackage(package, max_unzipped_bytes=max_unzipped_bytes)
        except EdxmlError as error:
            return Report(Indication.TOTAL_FAILED, FORMAT_FAILURE, f"the package is not valid edXML: {error}")
        with prepared:
            return verify_package(prepared, verifier=verifier, binding_check=binding_check)
    sender = package.header.sender.organ_id

    checks: list[SignatureCheck] = []
    unsigned: list[str] = []
    pdf_count = 0
    for item in package.items:
        if item.refused is not None:
            checks.append(
                SignatureCheck(
                    item.attachment_name, "", Indication.TOTAL_FAILED, FORMAT_FAILURE, item.refused
                )
            )
            continue
        for pdf in item.pdfs:
            pdf_count += 1
            verdict = verifier.verify(_pdf_source(pdf))
            if verdict.signatures:
                checks.extend(_from_signature(pdf.name, sig) for sig in verdict.signatures)
            elif verdict.sub_indication == NO_SIGNATURE:
                unsigned.append(pdf.name)
            else:
                checks.append(_from_pdf_verdict(pdf.name, verdict))

    if binding_check is not None:
        checks = _check_bindings(checks, sender=sender, binding_check=binding_check)
    return _summarise(checks, pdf_count=pdf_count, unsigned=unsigned)


ENVELOPE = "edXML envelope"


@dataclass(frozen=True)
class EnvelopeOutcome:
    """The envelope XML-DSig verdict, in the terms the report needs."""

    indication: Indication
    sub_indication: str
    message: str
    signer_subject: str = ""
    signer_certificate_der: bytes = b""
    agency_code: str = ""
    chain: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def apply_envelope(
    report: Report,
    envelope: EnvelopeOutcome | None,
    *,
    required: bool,
    sender: str,
    binding_check: BindingCheck | None,
) -> Report:
    """Fold the envelope signature into a PDF report: absent is fine unless `required`."""
    if envelope is None:
        return report
    if envelope.sub_indication == NO_SIGNATURE:
        if not required:
            return report
        check = SignatureCheck(
            ENVELOPE,
            "Signature",
            Indication.INDETERMINATE,
            NO_SIGNATURE,
            "the package's envelope carries no XML-DSig signature; the policy requires one",
        )
    else:
        message = envelope.message + (
            f" (warnings: {'; '.join(envelope.warnings)})" if envelope.warnings else ""
        )
        check = SignatureCheck(
            attachment_name=ENVELOPE,
            field_name="Signature",
            indication=envelope.indication,
            sub_indication=envelope.sub_indication,
            message=message,
            signer_subject=envelope.signer_subject,
            signer_agency_code=envelope.agency_code,
            signer_fingerprint=(
                certificate_fingerprint(envelope.signer_certificate_der)
                if envelope.signer_certificate_der
                else ""
            ),
            chain=envelope.chain,
        )
        if binding_check is not None:
            [check] = _check_bindings([check], sender=sender, binding_check=binding_check)
    checks = [*report.signatures, check]
    # Worse than the PDFs' verdict: it decides. Otherwise (a valid envelope on a package without
    # a signed PDF included) the PDFs' verdict stands: the binding signatures are the PDFs'.
    worst = max(checks, key=lambda c: _SEVERITY[c.indication])
    if _SEVERITY[worst.indication] <= _SEVERITY[report.indication]:
        return dataclasses.replace(report, signatures=tuple(checks))
    reason = f"{ENVELOPE} signature: {worst.message}"
    return dataclasses.replace(
        report,
        indication=worst.indication,
        sub_indication=worst.sub_indication,
        reason=reason,
        signatures=tuple(checks),
    )


def _summarise(checks: list[SignatureCheck], *, pdf_count: int, unsigned: list[str]) -> Report:
    signed = [c for c in checks if c.field_name]
    if not checks:
        reason = (
            "the document carries no PDF signature: "
            + (
                f"{_names(unsigned)} {'is' if len(unsigned) == 1 else 'are'} unsigned"
                if unsigned
                else "it has no PDF attachment"
            )
            + "; at least one signed PDF is required"
        )
        return Report(Indication.INDETERMINATE, NO_SIGNATURE, reason)
    worst = max(checks, key=lambda c: _SEVERITY[c.indication])
    if worst.indication is Indication.TOTAL_PASSED:
        reason = f"{len(signed)} signature(s) valid in {pdf_count - len(unsigned)} PDF(s)"
        if unsigned:
            reason += f"; unsigned: {_names(unsigned)}"
    else:
        where = f"attachment {worst.attachment_name!r}"
        if worst.field_name:
            where += f", signature {worst.field_name!r}"
        reason = f"{where}: {worst.message}"
    return Report(worst.indication, worst.sub_indication, reason, tuple(checks))


def _check_bindings(
    checks: list[SignatureCheck], *, sender: str, binding_check: BindingCheck
) -> list[SignatureCheck]:
    """Fail every signature whose certificate is not registered to the sending agency."""
    answers: dict[str, Binding] = {}
    result = []
    for check in checks:
        # A failed signature is already the worst verdict; asking the directory adds nothing.
        if not check.signer_fingerprint or check.indication is Indication.TOTAL_FAILED:
            result.append(check)
            continue
        fingerprint = check.signer_fingerprint
        if fingerprint not in answers:
            answers[fingerprint] = binding_check(agency_code=sender, fingerprint=fingerprint)
        binding = answers[fingerprint]
        if binding.bound:
            result.append(check)
            continue
        owners = (
            f"registered to: {', '.join(binding.owner_codes)}"
            if binding.owner_codes
            else "registered to no agency"
        )
        message = f"signer {check.signer_subject!r} is not registered to sending agency {sender} ({owners})"
        result.append(
            SignatureCheck(
                attachment_name=check.attachment_name,
                field_name=check.field_name,
                indication=Indication.TOTAL_FAILED,
                sub_indication=SIGNER_NOT_BOUND,
                message=message,
                signer_subject=check.signer_subject,
                signer_agency_code=check.signer_agency_code,
                signer_fingerprint=check.signer_fingerprint,
                signing_time=check.signing_time,
                chain=check.chain,
                revocation=check.revocation,
            )
        )
    return result


def _from_signature(attachment_name: str, sig: SignatureVerdict) -> SignatureCheck:
    return SignatureCheck(
        attachment_name=attachment_name,
        field_name=sig.field_name or "?",
        indication=sig.indication,
        sub_indication=sig.sub_indication or "",
        message=sig.message,
        signer_subject=sig.signer_subject,
        signer_agency_code=sig.agency_code or "",
        signer_fingerprint=(
            certificate_fingerprint(sig.signer_certificate_der) if sig.signer_certificate_der else ""
        ),
        signing_time=sig.signing_time,
        chain=tuple(sig.chain),
        revocation=tuple(sig.revocation),
    )


def _from_pdf_verdict(attachment_name: str, verdict: PdfVerdict) -> SignatureCheck:
    return SignatureCheck(
        attachment_name=attachment_name,
        field_name="",
        indication=verdict.indication,
        sub_indication=verdict.sub_indication or "",
        message=verdict.message,
    )


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)
