"""PackageBuilder: what agencies' software builds is strict QCVN 102, signed when asked."""

from __future__ import annotations

import datetime
from dataclasses import replace
from pathlib import Path

import pytest

from lienthong_common.edxml import (
    BUSINESS_RECALL,
    STRICT,
    EdxmlError,
    Organization,
    parse_package,
)
from lienthong_common.edxml.signature import Indication, verify_envelope
from lienthong_common.pki import DevPki, IssuedIdentity
from lienthong_sdk.builder import PackageBuilder, attachment_from_file

SENDER = "000.00.00.H49"
DEPARTMENT = "000.00.02.H49"
COMMUNE = "000.01.03.H49"
HEADER = "edXML/edXMLEnvelope/edXMLHeader/MessageHeader"
# Strict in every rule but the envelope signature, which only `build(identity=...)` adds.
UNSIGNED_STRICT = replace(STRICT, require_signature=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return DevPki.init(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def signer(pki: DevPki) -> IssuedIdentity:
    return pki.issue_signer(agency_code=SENDER, common_name="Nguyễn Văn A")


def letter() -> PackageBuilder:
    return (
        PackageBuilder(sender=SENDER, sender_name="UBND tỉnh Quảng Ninh")
        .to(DEPARTMENT, COMMUNE)
        .subject("Về việc triển khai liên thông văn bản điện tử", content="Nội dung")
        .code("7816", "UBND-VP")
        .promulgated("Quảng Ninh", datetime.date(2025, 7, 1))
    )


def test_a_built_package_reads_back_strictly_with_every_field(tmp_path: Path) -> None:
    pdf = tmp_path / "cv-signed.pdf"
    pdf.write_bytes(b"%PDF-1.7 cong van")
    archive = tmp_path / "phu-luc.zip"
    archive.write_bytes(b"PK\x03\x04 zipped")

    data = (
        letter()
        .document_type(2, "Quyết định")
        .priority(3)
        .signed_by("Nguyễn Văn A", position="Chủ tịch", competence="TM. UBND")
        .due(datetime.date(2025, 7, 15))
        .attach_file(pdf, description="Văn bản")
        .attach_file(archive)
        .build()
    )

    pkg = parse_package(data, policy=UNSIGNED_STRICT)
    header = pkg.header
    assert not pkg.signature_present
    # Zipped attachments are noted (the reader cannot look inside), nothing else deviates.
    assert pkg.warnings == [
        "edXML/AttachmentEncoded/Attachment[2]: cid:2 is zipped (application/zip); kept as received"
    ]
    assert header.sender.organ_id == SENDER and header.sender.organ_name == "UBND tỉnh Quảng Ninh"
    assert [r.organ_id for r in header.recipients] == [DEPARTMENT, COMMUNE]
    assert header.document_id == f"{SENDER},2025/07/01,7816/UBND-VP"
    assert (header.document_type, header.document_type_name) == (2, "Quyết định")
    assert header.priority == 3
    assert header.signer.full_name == "Nguyễn Văn A" and header.signer.position == "Chủ tịch"
    assert header.due_date == datetime.date(2025, 7, 15)
    assert header.content == "Nội dung"
    assert [(a.content_id, a.name, a.content_type, a.data) for a in pkg.attachments] == [
        ("cid:1", "cv-signed.pdf", "application/pdf", b"%PDF-1.7 cong van"),
        ("cid:2", "phu-luc.zip", "application/zip", b"PK\x03\x04 zipped"),
    ]
    assert pkg.attachments[0].description == "Văn bản"
    assert b"<edXML:edXMLEnvelope" in data and b"Bussiness" in data


def test_the_same_builder_builds_the_same_bytes() -> None:
    builder = letter()
    assert builder.build() == builder.build()


def test_recall_names_the_document_acted_on() -> None:
    recalled = f"{SENDER},2025/06/30,7000/UBND-VP"
    recall = letter().acts_on(recalled, doc_type=BUSINESS_RECALL, reason="Ban hành nhầm")
    pkg = parse_package(recall.build(), policy=UNSIGNED_STRICT)
    assert pkg.business.doc_type == BUSINESS_RECALL
    assert pkg.business.document_id == recalled
    assert pkg.business.reason == "Ban hành nhầm"


def test_full_organization_records_are_kept() -> None:
    department = Organization(organ_id=DEPARTMENT, organ_name="Sở Nội vụ", email="snv@quangninh.gov.vn")
    pkg = parse_package(
        PackageBuilder(sender=Organization(organ_id=SENDER, organ_name="UBND tỉnh"))
        .to(department)
        .subject("x")
        .code("1", "UBND")
        .promulgated("Quảng Ninh", datetime.date(2025, 7, 1))
        .build()
    )
    assert pkg.header.recipients[0].email == "snv@quangninh.gov.vn"
    assert pkg.header.sender.organ_name == "UBND tỉnh"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            lambda b: PackageBuilder(sender=SENDER).subject("x").code("1", "UBND"),
            f"{HEADER}/To: at least one",
        ),
        (lambda b: b.to("H49"), f"{HEADER}/To[3]/OrganId: not a QCVN 102 agency code"),
        (lambda b: b.priority(9), f"{HEADER}/OtherInfo/Priority: 9 is outside 0..4"),
        (
            lambda b: b.acts_on("bad", doc_type=BUSINESS_RECALL),
            "TraceHeaderList/Bussiness/DocumentId: 'bad' is not of the form",
        ),
    ],
)
def test_every_refusal_names_the_element(change: object, error: str) -> None:
    with pytest.raises(EdxmlError) as refused:
        change(letter()).build()  # type: ignore[operator]
    assert error in str(refused.value)


def test_an_identity_signs_the_envelope_and_it_verifies(pki: DevPki, signer: IssuedIdentity) -> None:
    data = letter().attach(attachment_from_file(_pdf(pki.directory))).build(identity=signer)

    assert parse_package(data, policy=STRICT).signature_present
    verdict = verify_envelope(data, trust_roots=[pki.root_cert_pem])
    assert verdict.indication == Indication.TOTAL_PASSED
    assert verdict.agency_code == SENDER


def test_attachment_from_file_guesses_the_type_and_defaults_the_content_id(tmp_path: Path) -> None:
    odd = tmp_path / "note.unknownext"
    odd.write_bytes(b"x")
    attachment = attachment_from_file(odd, description="Ghi chú")
    assert attachment.content_type == "application/octet-stream"
    assert attachment.content_id.startswith("cid:") and len(attachment.content_id) > 4
    assert (attachment.name, attachment.data, attachment.description) == ("note.unknownext", b"x", "Ghi chú")


def _pdf(directory: Path) -> Path:
    path = directory / "cv.pdf"
    path.write_bytes(b"%PDF-1.7 ky so")
    return path
