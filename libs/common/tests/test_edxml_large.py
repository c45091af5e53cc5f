"""Large packages (issue 24): read as a small tree with long runs on disk, C14N over it equal to
the whole tree's, signing and verification in bounded memory, interop with signxml and xmlsec1,
packages written from files, and the size limit in attachment terms."""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import os
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import pytest
from lxml import etree
from signxml import XMLSigner, XMLVerifier, methods
from signxml.algorithms import CanonicalizationMethod
from signxml.verifier import SignatureConfiguration

from lienthong_common.edxml import (
    LENIENT,
    NS,
    Attachment,
    EdxmlError,
    EdxmlPackage,
    MessageHeader,
    Organization,
    XmlSecurityError,
    _skeleton,
    build_package,
    parse_package,
    read_package_metadata,
    write_package,
)
from lienthong_common.edxml._stream import memory_chunks
from lienthong_common.edxml.signature import Indication, sign_envelope, sign_envelope_file, verify_envelope
from lienthong_common.package_limits import (
    ENVELOPE_BYTES,
    describe_limit,
    max_attachment_bytes,
    package_size_bound,
)
from lienthong_common.pki import DevPki, IssuedIdentity
from lienthong_common.testing import xmlsec1_sign

SENDER = "000.00.00.H49"
MB = 1024 * 1024
# Over libxml2's 10 MB text node limit once base64-encoded: what crashed `lienthong send`.
LARGE = 9 * MB


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return DevPki.init(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def signer(pki: DevPki) -> IssuedIdentity:
    return pki.issue_signer(agency_code=SENDER, common_name="Nguyễn Văn Lớn")


@pytest.fixture(scope="module")
def rsa_signer(pki: DevPki) -> IssuedIdentity:
    return pki.issue_signer(agency_code=SENDER, common_name="SDK cũ", key_type="rsa")


def _package(*payloads: bytes) -> EdxmlPackage:
    return EdxmlPackage(
        header=MessageHeader(
            sender=Organization(organ_id=SENDER, organ_name="UBND tỉnh Quảng Ninh"),
            recipients=[Organization(organ_id="000.00.02.H49")],
            code_number="4242",
            code_notation="UBND-VP",
            promulgation_place="Hạ Long",
            promulgation_date=datetime.date(2026, 1, 5),
            document_type=1,
            document_type_name="Công văn",
            subject="Bản quét lớn",
        ),
        attachments=[
            Attachment(content_id=f"cid:{i}", name=f"scan-{i}.pdf", content_type="application/pdf", data=data)
            for i, data in enumerate(payloads, 1)
        ],
    )


@pytest.fixture(scope="module")
def large_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("large") / "package.edxml"
    scan = path.with_name("scan.pdf")
    scan.write_bytes(b"%PDF-1.7\n" + os.urandom(LARGE))
    with path.open("wb") as out:
        write_package(_package(b""), out, files={"cid:1": scan})
    return path


def _c14n_digest(data: bytes, **options: object) -> bytes:
    tree = etree.fromstring(data, etree.XMLParser(huge_tree=True)).getroottree()
    return hashlib.sha256(etree.tostring(tree, method="c14n", with_comments=False, **options)).digest()


BODY = base64.b64encode(bytes(range(256)) * 12).decode()
TRICKY = [
    # Prefixes that map to one namespace (C14N keeps each as written), comments and PIs inside
    # and around the root, `>` in attribute values and comments, CDATA, references and CRLF
    # inside a long run, a run in a tail.
    f'<?xml version="1.0" encoding="UTF-8"?>\n<?pi x?><!-- top -->\n<edXML xmlns="{NS}" '
    f'xmlns:edXML="{NS}"><edXML:a b="x&gt;y" c=\'>"\'>{BODY}</edXML:a><AttachmentEncoded>  \r\n '
    f"{BODY}&amp;&#13;&#x41;<![CDATA[ <> ]]>tail{BODY}\r\n</AttachmentEncoded><!-- c > - -->"
    f"<edXML:x><?p  a >?></edXML:x>{BODY}<y/></edXML>\n<!-- after -->\n",
    f'<r xmlns="urn:a"><b>{BODY}</b><c>{"é" * 2000}</c></r>',
    f'<?xml version="1.0" encoding="ISO-8859-1"?><r>{"x" * 3000}</r>',
    f'<?xml version="1.0" encoding="UTF-16LE"?><r>{BODY}</r>',  # read, never diverted
]


@pytest.mark.parametrize("document", range(len(TRICKY)))
@pytest.mark.parametrize("exclusive", [False, True])
def test_the_skeleton_digest_is_the_whole_tree_c14n_in_any_chunking(
    monkeypatch: pytest.MonkeyPatch, document: int, exclusive: bool
) -> None:
    monkeypatch.setattr(_skeleton, "SPILL_BYTES", 100)
    encoding = {2: "iso-8859-1", 3: "utf-16-le"}.get(document, "utf-8")
    data = TRICKY[document].encode(encoding)
    expected = _c14n_digest(data, exclusive=exclusive)
    for step in (3, 7, 64, 1 << 20):
        with _skeleton.read_skeleton(memory_chunks(data, step), policy=LENIENT) as skeleton:
            assert skeleton.digest(skeleton.root, "sha256", exclusive=exclusive) == expected, step
            if document in (0, 1):
                assert len(skeleton.runs) >= 2  # long runs really went to files
            out = io.BytesIO()
            skeleton.write(skeleton.root, out)
            assert _c14n_digest(out.getvalue(), exclusive=exclusive) == expected, step


def test_the_enveloped_transform_keeps_the_text_around_the_signature(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_skeleton, "SPILL_BYTES", 100)
    data = f"<r><a/>\n  <Signature><x/></Signature>{BODY}<b/></r>".encode()
    without = f"<r><a/>\n  {BODY}<b/></r>".encode()
    with _skeleton.read_skeleton(data, policy=LENIENT) as skeleton:
        signature = skeleton.root.find("Signature")
        assert skeleton.digest(skeleton.root, "sha256", exclude=signature) == _c14n_digest(without)
        assert skeleton.root.find("Signature") is not None  # put back


@pytest.mark.parametrize(
    ("data", "error", "reason"),
    [
        (b'<!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>', XmlSecurityError, "DTD"),
        (b"<r>" + b"A" * 200 + b"&undefined;</r>", EdxmlError, "not well-formed"),
        (b"<r>" + b"A" * 200 + b"]]></r>", EdxmlError, "not well-formed"),
        (b"<a>" * 70 + b"</a>" * 70, XmlSecurityError, "nesting deeper"),
        (b"", EdxmlError, "no XML content"),
    ],
)
def test_the_skeleton_reader_is_hardened(
    monkeypatch: pytest.MonkeyPatch, data: bytes, error: type[Exception], reason: str
) -> None:
    monkeypatch.setattr(_skeleton, "SPILL_BYTES", 100)
    with pytest.raises(error, match=reason):
        _skeleton.read_skeleton(data, policy=LENIENT)


def test_packages_written_from_files_are_the_packages_built_in_memory(tmp_path: Path) -> None:
    first, second = b"%PDF-1.7\n" + os.urandom(300_001), b""
    (tmp_path / "1.pdf").write_bytes(first)
    (tmp_path / "2.pdf").write_bytes(second)
    built = build_package(_package(first, second))
    out = io.BytesIO()
    written = write_package(
        _package(b"", b""), out, files={"cid:1": tmp_path / "1.pdf", "cid:2": tmp_path / "2.pdf"}
    )
    assert out.getvalue() == built and written == len(built)
    read = parse_package(built)
    assert [a.data for a in read.attachments] == [first, second]
    metadata = read_package_metadata(built)
    assert metadata.header == read.header and [a.data for a in metadata.attachments] == [b"", b""]


def test_a_package_over_the_text_node_limit_signs_and_verifies_in_bounded_memory(
    pki: DevPki, signer: IssuedIdentity, large_package: Path, tmp_path: Path
) -> None:
    signed = tmp_path / "signed.edxml"
    tracemalloc.start()
    try:
        with signed.open("wb") as out:
            size = sign_envelope_file(large_package, out, signer, spill_dir=tmp_path)
        verdict = verify_envelope(signed, trust_roots=[pki.root_cert_pem], spill_dir=tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert verdict.passed, verdict.message
    assert size == signed.stat().st_size > 12 * MB
    assert peak < 6 * MB, f"Python allocations peaked at {peak / MB:.1f} MB for a {size / MB:.0f} MB package"
    assert not list(tmp_path.glob("edxml-run-*"))  # spill files are anonymous and gone

    # The same package read whole (as the gateway's readers do) has its attachment intact.
    assert read_package_metadata(signed).attachments[0].name == "scan-1.pdf"
    # One base64 character changed in the middle of the attachment breaks it.
    data = bytearray(signed.read_bytes())
    middle = len(data) // 2
    data[middle] = ord("A") if data[middle] != ord("A") else ord("B")
    tampered = verify_envelope(bytes(data), trust_roots=[pki.root_cert_pem])
    assert (tampered.indication, tampered.sub_indication) == (Indication.TOTAL_FAILED, "HASH_FAILURE")


def test_signatures_interoperate_with_signxml(pki: DevPki, rsa_signer: IssuedIdentity) -> None:
    package = build_package(_package(b"%PDF-1.7 nho"))
    ours = sign_envelope(package, rsa_signer)
    XMLVerifier().verify(
        ours.split(b"\n", 1)[1],
        x509_cert=rsa_signer.cert_pem.decode(),
        expect_config=SignatureConfiguration(location=f"./{{{NS}}}edXMLEnvelope/{{{NS}}}edXMLHeader/"),
    )
    # signxml's own enveloped signature, placed where the SDKs put it, verifies here.
    root = etree.fromstring(package.split(b"\n", 1)[1])
    trace_list = root.find(f"{{{NS}}}edXMLEnvelope/{{{NS}}}edXMLHeader/{{{NS}}}TraceHeaderList")
    placeholder = etree.Element("{http://www.w3.org/2000/09/xmldsig#}Signature", Id="placeholder")
    placeholder.tail = trace_list.tail
    trace_list.addnext(placeholder)
    theirs = XMLSigner(
        method=methods.enveloped, c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_0
    ).sign(
        root, key=rsa_signer.key_pem, cert=[rsa_signer.cert_pem.decode(), rsa_signer.chain_pem[0].decode()]
    )
    verdict = verify_envelope(etree.tostring(theirs), trust_roots=[pki.root_cert_pem])
    assert verdict.passed, verdict.message


XMLSEC1 = shutil.which("xmlsec1")


@pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 is not installed (make test installs it)")
def test_large_envelopes_interoperate_with_xmlsec1(
    pki: DevPki, signer: IssuedIdentity, large_package: Path, tmp_path: Path
) -> None:
    theirs = xmlsec1_sign(large_package, signer, tmp_path)  # lienthong_common.testing
    verdict = verify_envelope(theirs, trust_roots=[pki.root_cert_pem])
    assert verdict.passed, verdict.message
    assert verdict.agency_code == SENDER

    ours = tmp_path / "ours.edxml"
    with ours.open("wb") as out:
        sign_envelope_file(large_package, out, signer)
    (tmp_path / "root.pem").write_bytes(pki.root_cert_pem)
    # Our KeyInfo carries the issuing CA: xmlsec1 needs only the root.
    checked = subprocess.run(
        [XMLSEC1, "--verify", "--trusted-pem", str(tmp_path / "root.pem"), str(ours)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0 and "OK" in checked.stdout + checked.stderr, checked.stderr


def test_the_limit_is_stated_as_the_largest_attachment_that_fits(signer: IssuedIdentity) -> None:
    limit = 50 * MB
    assert max_attachment_bytes(limit) == 39_272_448
    assert "the largest attachment that fits is 37.5 MiB (39272448 bytes" in describe_limit(limit)
    # It really fits: a signed package carrying an attachment of exactly that size, small limit.
    small = 256 * 1024
    largest = max_attachment_bytes(small)
    signed = sign_envelope(build_package(_package(b"%PDF" + b"\0" * (largest - 4))), signer)
    assert len(signed) <= small <= package_size_bound([largest]) + 2
    assert len(signed) > small - ENVELOPE_BYTES
