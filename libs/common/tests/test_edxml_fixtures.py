"""Fixture corpus: valid packages read back, SDK deviations accepted, invalid ones refused."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from lienthong_common.edxml import (
    LENIENT,
    STRICT,
    EdxmlError,
    ParsePolicy,
    XmlSecurityError,
    build_package,
    build_status_package,
    parse_package,
    parse_status_package,
)

FIXTURES = Path(__file__).parent / "fixtures" / "edxml"
EXPECTED = json.loads((FIXTURES / "invalid" / "expected.json").read_text(encoding="utf-8"))
POLICIES = {
    "lenient": LENIENT,
    "strict": STRICT,
    "strict-unsigned": ParsePolicy(lenient=False, require_signature=False),
}
ERRORS: dict[str, type[EdxmlError]] = {
    "EdxmlError": EdxmlError,
    "XmlSecurityError": XmlSecurityError,
}
UNSIGNED_STRICT = POLICIES["strict-unsigned"]


def _make_fixtures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fixtures_match_generator() -> None:
    generated = _make_fixtures().generate()
    on_disk = {
        str(p.relative_to(FIXTURES)): p.read_bytes()
        for p in FIXTURES.rglob("*")
        if p.is_file() and p.suffix in {".edxml", ".xml", ".json"}
    }
    assert sorted(on_disk) == sorted(generated), "run make_fixtures.py"
    for name, content in generated.items():
        assert on_disk[name] == content, f"{name} is stale; run make_fixtures.py"


@pytest.mark.parametrize(
    "name", ["new_two_recipients_pdf.edxml", "recall.edxml", "update.edxml", "replace.edxml"]
)
def test_valid_package_parses_strictly_and_rebuilds_identically(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    pkg = parse_package(data, policy=UNSIGNED_STRICT)
    assert pkg.warnings == []
    assert build_package(pkg) == data
    assert pkg == _make_fixtures().packages()[name]


@pytest.mark.parametrize("name", ["status_01.xml", "status_03.xml", "status_06.xml", "status_13.xml"])
def test_valid_status_parses_strictly_and_rebuilds_identically(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    st = parse_status_package(data, policy=UNSIGNED_STRICT)
    assert st.warnings == []
    assert st.status_code == name[len("status_") : -len(".xml")]
    assert build_status_package(st) == data
    assert st == _make_fixtures().statuses()[name]


def test_sdk_style_package_is_accepted_leniently_with_a_warning_per_deviation() -> None:
    pkg = parse_package((FIXTURES / "sdk_lenient.edxml").read_bytes())
    assert pkg.header.sender.organ_id == "vxp.saas.03"
    assert pkg.header.document_id == "9fbfbad2-f1f8-4256-a2eb-50fb1061cddb"
    assert pkg.header.recipients[0].organ_name == " UBND tỉnh Quảng Ninh"
    assert [t.organ_id for t in pkg.traces] == [None, None]
    assert pkg.signature_present
    [attachment] = pkg.attachments
    assert attachment.content_type == "application/zip"
    assert attachment.data.startswith(b"PK\x03\x04")  # kept zipped, not unpacked
    header = "edXML/edXMLEnvelope/edXMLHeader"
    assert pkg.warnings == [
        "(document): stripped 4 stray bytes before the XML declaration",
        f"{header}/Signature: Signature is in namespace"
        " 'http://www.mic.gov.vn/TBT/QCVN_102_2016', not XML-DSig",
        "edXML/AttachmentEncoded/Attachment[1]/ContentType:"
        " 'application/zip' but the manifest says 'application/pdf'",
        "edXML/AttachmentEncoded/Attachment[1]: cid:36b8a92e-f054-11e7-842b-005056b672fc is zipped"
        " (application/zip); kept as received",
        f"{header}/MessageHeader/From/OrganId: not a QCVN 102 agency code:"
        " 'vxp.saas.03' has 3 segment(s); an agency code has 4 (V1V2V3.Z1Z2.Y1Y2.M1M2M3)",
        f"{header}/MessageHeader/DocumentId: '9fbfbad2-f1f8-4256-a2eb-50fb1061cddb'"
        " is not of the form OrganId,yyyy/MM/dd,Number/Notation",
        f"{header}/TraceHeaderList/TraceHeader[1]/OrganId: trace hop without an agency code",
        f"{header}/TraceHeaderList/TraceHeader[2]/OrganId: trace hop without an agency code",
    ]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_fixture_is_refused_with_the_exact_error(name: str) -> None:
    expected = EXPECTED[name]
    data = (FIXTURES / "invalid" / name).read_bytes()
    parse = parse_status_package if name.startswith("status_") else parse_package
    with pytest.raises(EdxmlError) as caught:
        parse(data, policy=POLICIES[expected["policy"]])
    assert type(caught.value) is ERRORS[expected["error"]]
    assert (caught.value.path, caught.value.reason) == (expected["path"], expected["reason"])
    assert str(caught.value) == f"{expected['path']}: {expected['reason']}"
