"""An attachment's bytes, not its label, decide whether it is a PDF to verify or a zip to unpack."""

from __future__ import annotations

import io
import zipfile

from sigverify_factories import FakeBindings, make_package

from lienthong_common.edxml import Attachment
from lienthong_common.pades import Indication, PdfVerifier
from lienthong_sigverify.domain import pdfs_in_package, verify_package


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_labelled_application_pdf_is_unpacked_and_its_pdf_verified(
    signed_pdf: bytes, verifier: PdfVerifier, bindings: FakeBindings
) -> None:
    archive = _zip({"van-ban/cong-van.pdf": signed_pdf})
    package = make_package([Attachment("cid:1", "cong-van.pdf", "application/pdf", archive)])

    report = verify_package(package, verifier=verifier, binding_check=bindings)

    assert report.indication is Indication.TOTAL_PASSED, report.reason
    assert [c.attachment_name for c in report.signatures] == ["cong-van.pdf/van-ban/cong-van.pdf"]
    assert pdfs_in_package(package) == [signed_pdf]


def test_pdf_labelled_application_zip_is_verified_as_a_pdf(
    signed_pdf: bytes, verifier: PdfVerifier, bindings: FakeBindings
) -> None:
    package = make_package([Attachment("cid:1", "cong-van.zip", "application/zip", signed_pdf)])

    report = verify_package(package, verifier=verifier, binding_check=bindings)

    assert report.indication is Indication.TOTAL_PASSED, report.reason
    assert [c.attachment_name for c in report.signatures] == ["cong-van.zip"]
