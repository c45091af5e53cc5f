"""The verification rules: every PDF signature valid, and every signer bound to the sender.

Pure apart from the two collaborators it is given (the PDF verifier and the binding check),
so the whole verdict can be tested without a network or a database.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from lienthong_common.edxml import Attachment, EdxmlError, parse_package
from lienthong_common.pades import Indication, PdfVerdict, PdfVerifier, SignatureVerdict
from lienthong_common.pki import certificate_fingerprint

__all__ = [
    "MAX_UNZIPPED_BYTES",
    "Binding",
    "BindingCheck",
    "Indication",
    "Report",
    "SignatureCheck",
    "verify_package",
]

# Total bytes a package's zipped attachments may expand to; beyond it the zip is refused as
# a possible zip bomb (docstore caps a package at 50 MiB, real archives compress PDFs little).
MAX_UNZIPPED_BYTES = 256 * 1024 * 1024
MAX_ZIP_ENTRIES = 1000

FORMAT_FAILURE = "FORMAT_FAILURE"
NO_SIGNATURE = "NO_SIGNATURE"
# Not an ETSI sub-indication: the platform's own rule that the signer belongs to the sender.
SIGNER_NOT_BOUND = "SIGNER_NOT_BOUND"

_SEVERITY = {Indication.TOTAL_PASSED: 0, Indication.INDETERMINATE: 1, Indication.TOTAL_FAILED: 2}
_ZIP_TYPES = {"application/zip", "application/x-zip-compressed", "application/x-zip"}


@dataclass(frozen=True)
class Binding:
    """Whether a certificate is registered to an agency, and to which agencies it is."""

    bound: bool
    owner_codes: tuple[str, ...] = ()


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
        )


@dataclass(frozen=True)
class Report:
    """The verdict on a whole document: the worst of its signatures."""

    indication: Indication
    sub_indication: str
    reason: str
    signatures: tuple[SignatureCheck, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return self.indication is Indication.TOTAL_PASSED


@dataclass(frozen=True)
class _Pdf:
    name: str
    data: bytes


class _ZipRefused(Exception):
    """A zipped attachment that cannot be opened safely; the message says why."""


def verify_package(
    package_bytes: bytes,
    *,
    verifier: PdfVerifier,
    binding_check: BindingCheck | None,
    max_unzipped_bytes: int = MAX_UNZIPPED_BYTES,
) -> Report:
    """Verify every PDF signature in a package; `binding_check=None` skips the binding rule."""
    try:
        package = parse_package(package_bytes)
    except EdxmlError as error:
        return Report(Indication.TOTAL_FAILED, FORMAT_FAILURE, f"the package is not valid edXML: {error}")
    sender = package.header.sender.organ_id

    checks: list[SignatureCheck] = []
    unsigned: list[str] = []
    pdf_count = 0
    budget = _Budget(max_unzipped_bytes)
    for attachment in package.attachments:
        try:
            pdfs = list(_pdfs_in(attachment, budget))
        except _ZipRefused as refused:
            checks.append(
                SignatureCheck(attachment.name, "", Indication.TOTAL_FAILED, FORMAT_FAILURE, str(refused))
            )
            continue
        for pdf in pdfs:
            pdf_count += 1
            verdict = verifier.verify(pdf.data)
            if verdict.signatures:
                checks.extend(_from_signature(pdf.name, sig) for sig in verdict.signatures)
            elif verdict.sub_indication == NO_SIGNATURE:
                unsigned.append(pdf.name)
            else:
                checks.append(_from_pdf_verdict(pdf.name, verdict))

    if binding_check is not None:
        checks = _check_bindings(checks, sender=sender, binding_check=binding_check)
    return _summarise(checks, pdf_count=pdf_count, unsigned=unsigned)


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
    )


def _from_pdf_verdict(attachment_name: str, verdict: PdfVerdict) -> SignatureCheck:
    return SignatureCheck(
        attachment_name=attachment_name,
        field_name="",
        indication=verdict.indication,
        sub_indication=verdict.sub_indication or "",
        message=verdict.message,
    )


def _is_pdf(name: str, content_type: str = "") -> bool:
    return content_type.strip().lower() == "application/pdf" or name.lower().endswith(".pdf")


def _is_zip(attachment: Attachment) -> bool:
    return attachment.content_type.strip().lower() in _ZIP_TYPES or attachment.name.lower().endswith(".zip")


def _pdfs_in(attachment: Attachment, budget: _Budget) -> Iterator[_Pdf]:
    if _is_pdf(attachment.name, attachment.content_type):
        yield _Pdf(attachment.name, attachment.data)
    elif _is_zip(attachment):
        yield from _unzip_pdfs(attachment, budget)


class _Budget:
    """Uncompressed bytes still allowed across all zipped attachments of one package."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.remaining = limit


def _unzip_pdfs(attachment: Attachment, budget: _Budget) -> Iterator[_Pdf]:
    """The PDFs inside a zipped attachment, read with a cap on what they expand to."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(attachment.data))
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise _ZipRefused(f"not a readable zip archive: {error}") from error
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_ZIP_ENTRIES:
            raise _ZipRefused(f"the zip holds {len(entries)} entries; at most {MAX_ZIP_ENTRIES} allowed")
        # Read everything before yielding: a refusal must not leave half the PDFs verified.
        pdfs = []
        for entry in entries:
            if entry.is_dir() or not _is_pdf(entry.filename):
                continue
            if entry.flag_bits & 0x1:
                raise _ZipRefused(f"{entry.filename!r} in the zip is encrypted")
            # Declared sizes can lie, so count what decompression actually produces.
            if entry.file_size > budget.remaining:
                raise _bomb(budget)
            pdfs.append(_Pdf(f"{attachment.name}/{entry.filename}", _read_capped(archive, entry, budget)))
    yield from pdfs


def _read_capped(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, budget: _Budget) -> bytes:
    out = bytearray()
    try:
        with archive.open(entry) as stream:
            while chunk := stream.read(min(1024 * 1024, budget.remaining + 1)):
                out += chunk
                if len(out) > budget.remaining:
                    raise _bomb(budget)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError) as error:
        raise _ZipRefused(f"cannot extract {entry.filename!r}: {error}") from error
    budget.remaining -= len(out)
    return bytes(out)


def _bomb(budget: _Budget) -> _ZipRefused:
    return _ZipRefused(
        f"the zipped attachments expand beyond {budget.limit} bytes; refused as a possible zip bomb"
    )


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)
