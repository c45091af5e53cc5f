"""PAdES signing: baseline B-B signatures (SubFilter ``ETSI.CAdES.detached``) as incremental
updates, so a document can carry the signer's signature and then the agency seal."""

from __future__ import annotations

from io import BytesIO

from asn1crypto import x509 as asn1_x509
from pyhanko.keys import load_private_key_from_pemder_data
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from lienthong_common.pades.verdicts import pem_to_der
from lienthong_common.pki import IssuedIdentity, split_pem_certificates


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
    signing_cert = asn1_x509.Certificate.load(pem_to_der(identity.cert_pem))
    chain = [
        asn1_x509.Certificate.load(pem_to_der(pem))
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

