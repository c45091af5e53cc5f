"""PAdES signing and validation (pyHanko) with verdicts in ETSI EN 319 102-1 terms.

One module per concern; this package re-exports what callers use:

- :mod:`.signing` — PAdES B-B signatures as incremental updates (signer, then seal);
- :mod:`.validation` — :class:`PdfVerifier`, the verdict mapping and the revocation modes;
- :mod:`.verdicts` — :class:`Indication`, :class:`SignatureVerdict`, :class:`PdfVerdict`;
- :mod:`.revocation` — CRL/OCSP for trusted chains, fetched through the outbound-address
  checks (docs/adr/0080) and cached (:class:`RevocationCache`);
- :mod:`.paths` — the certificate-path cache; :mod:`.sync` — the sync bridge to pyHanko's
  coroutines;
- :mod:`.accelerators` — the speed-ups that replace pyHanko/asn1crypto functions, installed
  only by an explicit, version-guarded ``accelerators.install()`` (sigverify's start-up;
  docs/adr/0081). Importing this package or building a verifier patches nothing.

What a package carries (PDFs, zipped or not) is unpacked by :mod:`lienthong_common.carried_pdfs`,
re-exported here for the callers that first imported it from this module.
"""

from lienthong_common.carried_pdfs import (
    MAX_UNZIPPED_BYTES,
    AttachmentRefused,
    CarriedPdf,
    PdfFile,
    UnzipBudget,
    pdf_files_in_attachment,
    pdfs_in_attachment,
)
from lienthong_common.pades.revocation import CachedRevinfo, RevocationCache
from lienthong_common.pades.signing import sign_pdf
from lienthong_common.pades.validation import PdfVerifier, verify_pdf
from lienthong_common.pades.verdicts import (
    REVOCATION_MODES,
    Indication,
    PdfVerdict,
    RevocationMode,
    SignatureVerdict,
)

__all__ = [
    "MAX_UNZIPPED_BYTES",
    "REVOCATION_MODES",
    "AttachmentRefused",
    "CachedRevinfo",
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
