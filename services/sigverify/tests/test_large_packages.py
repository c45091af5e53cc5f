"""Large packages through sigverify (issue 24): fetched to a spool file, PDFs decoded to files and
verified by the worker pool from there, the envelope signed by an independent tool (xmlsec1)
verified over a package whose attachment is past libxml2's 10 MB text node limit, and nothing
left on disk afterwards."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sigverify_factories import SENDER, FakeBindings, FixedTrust, make_package, pdf_attachment
from sqlalchemy.orm import Session, sessionmaker

from lienthong_common.edxml import Attachment
from lienthong_common.outbox import new_event
from lienthong_common.pades import sign_pdf
from lienthong_common.pdfgen import make_pdf
from lienthong_common.pki import DevPki, IssuedIdentity
from lienthong_common.testing import xmlsec1_sign
from lienthong_sigverify import repository
from lienthong_sigverify.domain import PreparedPackage
from lienthong_sigverify.events import SubmittedDocuments
from lienthong_sigverify.trust import TrustSnapshot
from lienthong_sigverify.verification import VerificationEngine, VerifierConfig

MB = 1024 * 1024


@pytest.fixture(scope="module")
def scan(signer: IssuedIdentity) -> bytes:
    """A signed 'scan' whose base64 (about 13 MB) is one text node over libxml2's limit."""
    return sign_pdf(make_pdf("Bản quét", ["Trang 1"], pad_to_bytes=10 * MB), signer)


@pytest.mark.skipif(
    shutil.which("xmlsec1") is None, reason="xmlsec1 is not installed (make test installs it)"
)
def test_a_large_package_signed_by_xmlsec1_is_verified_from_disk(
    pki: DevPki,
    signer: IssuedIdentity,
    scan: bytes,
    bindings: FakeBindings,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    unsigned = tmp_path / "unsigned.edxml"
    unsigned.write_bytes(make_package([pdf_attachment(scan, name="ban-quet.pdf")]))
    signed = xmlsec1_sign(unsigned, signer, tmp_path)
    assert signed.stat().st_size > 13 * MB
    spool = tmp_path / "spool"
    spool.mkdir()

    def fetch(_document_id: str) -> Path:  # as DocstorePackages does: a file the handler owns
        copy = spool / "package-fetched.edxml"
        shutil.copyfile(signed, copy)
        return copy

    engine = VerificationEngine(
        trust=FixedTrust(TrustSnapshot(1, (pki.root_cert_pem,))),
        config=VerifierConfig("off", str(tmp_path / "rc"), allow_fetching=False, fetch_timeout=1.0),
        workers=1,
    )
    documents = SubmittedDocuments(
        fetch_package=fetch,
        verifier=engine,
        binding_check=bindings,
        sessions=sessions,
        envelope_policy="required",
        spool_dir=spool,
        max_package_bytes=50 * MB,
    )
    event = new_event("doc-large")
    event.submitted.sender_code = SENDER
    try:
        documents.prefetch([event])  # fetched, decoded to files, started in the worker
        assert len(list(spool.iterdir())) == 2  # the package and its scratch folder
        with sessions() as session, session.begin():
            documents.handle(session, event)
    finally:
        engine.close()
    with sessions() as session:
        stored = repository.get_report(session, document_id="doc-large")
    assert stored is not None and stored.report.passed, stored
    checks = {c.attachment_name: c for c in stored.report.signatures}
    assert checks["edXML envelope"].indication.value == "TOTAL_PASSED", checks["edXML envelope"].message
    assert checks["ban-quet.pdf"].indication.value == "TOTAL_PASSED"
    assert not list(spool.iterdir())  # package, decoded PDF and spill files all removed


def test_a_prepared_package_holds_its_pdfs_on_disk_until_closed(signed_pdf: bytes, tmp_path: Path) -> None:
    docx = Attachment("cid:2", "x.docx", "application/vnd.openxmlformats-officedocument", b"PK-ish")
    package = make_package([pdf_attachment(signed_pdf), docx])
    with PreparedPackage(package) as small:  # small: read in memory, as before
        assert small.pdfs == [signed_pdf]
    on_disk = tmp_path / "package.edxml"
    on_disk.write_bytes(package)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with PreparedPackage(on_disk, folder=scratch, owns_package=True) as prepared:
        [pdf] = prepared.pdfs
        assert isinstance(pdf, Path) and pdf.read_bytes() == signed_pdf and pdf.is_relative_to(scratch)
        assert [item.attachment_name for item in prepared.items] == ["cong-van.pdf", "x.docx"]
    assert not list(scratch.iterdir()) and not on_disk.exists()
