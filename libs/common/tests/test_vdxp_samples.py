"""VNPT's real packages (third_party/vdxp/vdxp-samples, vendored unchanged) are read for what
they say, and the status packages we write for VDXP clients have VNPT's builder's shape."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from lienthong_common.edxml import (
    STATUS_SHAPE_VNPT,
    VIETNAM_TZ,
    EdxmlError,
    Organization,
    ParsePolicy,
    StatusPackage,
    XmlSecurityError,
    build_status_package,
    build_vnpt_status_package,
    is_status_package,
    parse_package,
    parse_status_package,
)

VDXP = Path(__file__).resolve().parents[3] / "third_party" / "vdxp"
SAMPLES = VDXP / "vdxp-samples"
UNSIGNED_STRICT = ParsePolicy(lenient=False, require_signature=False)


def _sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def _elements(data: bytes) -> list[tuple[int, str]]:
    """(depth, prefixed name) of every element, in document order."""
    root = etree.fromstring(data)
    out: list[tuple[int, str]] = []

    def walk(element: Any, depth: int) -> None:
        name = etree.QName(element).localname
        out.append((depth, f"{element.prefix}:{name}" if element.prefix else name))
        for child in element:
            if isinstance(child.tag, str):
                walk(child, depth + 1)

    walk(root, 0)
    return out


def _children(data: bytes, parent: str) -> list[str]:
    """Prefixed names of the children of the first element named ``parent``, in order."""
    elements = _elements(data)
    start = next(i for i, (_, name) in enumerate(elements) if name == parent)
    depth = elements[start][0]
    names = []
    for d, name in elements[start + 1 :]:
        if d <= depth:
            break
        if d == depth + 1:
            names.append(name)
    return names


# -- writing status packages as VNPT's builder does ---------------------------------------------
def test_vnpt_status_package_of_status_edxml_fields_is_that_sample_byte_for_byte() -> None:
    """status.edxml is exactly the builder's output (VDXP-WIRE §6.1), down to CRLF and omissions."""
    st = parse_status_package(_sample("status.edxml"))
    assert build_vnpt_status_package(st) == _sample("status.edxml")


def test_vnpt_status_package_has_the_structure_of_status_acceptance_03() -> None:
    sample = _sample("status_acceptance_03.edxml")
    st = parse_status_package(sample)
    built = build_vnpt_status_package(st)

    # Same elements, same prefixes, same nesting; MessageHeader's children in the same order.
    assert sorted(_elements(built)) == sorted(_elements(sample))
    assert built.split(b"\r\n")[:5] == sample.split(b"\r\n")[:5]
    assert _children(built, "edXML:MessageHeader") == _children(sample, "edXML:MessageHeader")
    # Inside From, ResponseFor and StaffInfo the sample was reordered by hand (VDXP-WIRE §6.1:
    # "accept any child order"); the builder's own order is the one status.edxml pins.
    for group in ("edXML:From", "edXML:ResponseFor", "edXML:StaffInfo"):
        assert sorted(_children(built, group)) == sorted(_children(sample, group))
        assert _children(built, group) == _children(_sample("status.edxml"), group)
    assert _children(built, "edXML:ResponseFor") == [
        "edXML:OrganId",
        "edXML:Code",
        "edXML:DocumentId",
        "edXML:PromulgationDate",
    ]
    # CRLF everywhere, 2-space indent, Vietnam local time.
    assert b"\n" not in built.replace(b"\r\n", b"")
    assert built.endswith(b"</edXML>\r\n")
    assert b"\r\n      <edXML:MessageHeader>\r\n" in built
    assert b"<edXML:Timestamp>2015/09/20 11:08:36</edXML:Timestamp>" in built
    again = parse_status_package(built, policy=UNSIGNED_STRICT)
    assert again == st
    assert again.shape == STATUS_SHAPE_VNPT
    assert again.warnings == []
    # Same values (the sample pads some with tabs and spaces; the builder trims).
    assert _texts(built) == _texts(sample)


def _texts(data: bytes) -> dict[str, str]:
    root = etree.fromstring(data)
    """Text of each leaf element, keyed by its path of local names (each is unique here)."""

    def path(e: Any) -> str:
        names = [etree.QName(a).localname for a in reversed(list(e.iterancestors()))]
        return "/".join([*names, etree.QName(e).localname])

    return {path(e): (e.text or "").strip() for e in root.iter() if isinstance(e.tag, str) and len(e) == 0}


def test_vnpt_status_package_omits_empty_elements() -> None:
    st = StatusPackage(
        response_for_organ_id="vxp.saas.02",
        response_for_document_id="1da394ba-2117-4354-a23f-6ec3e47ba81b",
        sender=Organization("vxp.saas.03"),
        status_code="01",
        description="",
        timestamp=datetime.datetime(2025, 7, 1, 8, 0, 0, tzinfo=VIETNAM_TZ),
    )
    built = build_vnpt_status_package(st)
    assert _children(built, "edXML:MessageHeader") == [
        "edXML:From",
        "edXML:ResponseFor",
        "edXML:StatusCode",
        "edXML:Timestamp",
    ]
    assert _children(built, "edXML:From") == ["edXML:OrganId"]
    assert _children(built, "edXML:ResponseFor") == ["edXML:OrganId", "edXML:DocumentId"]
    # System ids and UUID DocumentIds are echoed as the counterpart wrote them.
    again = parse_status_package(built)
    assert again == st
    assert is_status_package(built)


def test_vnpt_status_package_refuses_an_unknown_status_code() -> None:
    st = parse_status_package(_sample("status.edxml"))
    with pytest.raises(EdxmlError, match="'99' is not a status code"):
        build_vnpt_status_package(dataclasses.replace(st, status_code="99"))


def test_vnpt_status_package_refuses_a_status_without_addressee() -> None:
    st = parse_status_package(_sample("status.edxml"))
    with pytest.raises(EdxmlError, match="ResponseFor/OrganId: must not be empty"):
        build_vnpt_status_package(dataclasses.replace(st, response_for_organ_id=" "))


def test_vendored_samples_match_their_sha256sums() -> None:
    listed = {}
    for line in (VDXP / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name] = digest
    on_disk = {
        str(path.relative_to(VDXP)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(VDXP.glob("vdxp-*/*"))
    }
    assert on_disk == listed


# -- reading every vendored package -------------------------------------------------------------
H41, G22 = "000.00.00.H41", "000.00.00.G22"
ANSWERED = "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
# status code, From/OrganId, ResponseFor/OrganId (the addressee), ResponseFor/DocumentId
STATUSES = {
    "status.edxml": ("01", H41, G22, ANSWERED),
    "status_inbox__01.edxml": ("01", H41, G22, ANSWERED),
    "status_rejection_02.edxml": ("02", H41, G22, ANSWERED),
    "status_acceptance_03.edxml": ("03", H41, G22, ANSWERED),
    "status_assignment_04.edxml": ("04", H41, G22, ANSWERED),
    "status_processing_05.edxml": ("05", H41, G22, ANSWERED),
    "status_finish_06.edxml": ("06", H41, G22, ANSWERED),
    # The sender asks to take its document back: addressed to the recipient.
    "status_cancellation_13.edxml": ("13", G22, H41, ANSWERED),
    "status_change-acceptance_15.edxml": ("15", H41, G22, ANSWERED),
    "status_change-rejection_16.edxml": ("16", H41, G22, ANSWERED),
}
VNPT_TO = [H41, "000.00.00.H14", "000.00.00.G17"]
VNPT_ZIP = [("1896_QD-TTg_m_294779.doc", "application/zip")]
LOCAL_ZIPS = [(f"local{x}.txt", "application/zip") for x in "ABC"]
# DocumentId, BussinessDocType, document acted on, From, To, attachments (name, type)
DOCUMENTS = {
    "edoc_new.edxml": (
        ANSWERED,
        0,
        "000.00.00.G22,2014/02/30,7806/VPCP-TTĐT",
        "002.00.20.H13",
        ["28.22.H17"],
        VNPT_ZIP,
    ),
    "edoc_update.edxml": (ANSWERED, 2, "000.00.00.G22,2014/02/30,7806/VPCP-TTĐT", G22, VNPT_TO, VNPT_ZIP),
    # Named only in ReplacementInfoList/ReplacementInfo/DocumentId.
    "edoc_replacement.edxml": (
        ANSWERED,
        3,
        "000.00.00.G22,2014/01/30,7806/VPCP-TTĐT",
        G22,
        VNPT_TO,
        VNPT_ZIP,
    ),
    # Named only in MessageHeader/DocumentId.
    "edoc_revocation.edxml": (ANSWERED, 1, ANSWERED, G22, VNPT_TO, VNPT_ZIP),
    # PVN's gateway: UUID DocumentIds, system ids as agency codes, zips labelled text/plain.
    "upload_1da394ba-2117-4354-a23f-6ec3e47ba81b.edxml": (
        "1da394ba-2117-4354-a23f-6ec3e47ba81b",
        0,
        "",
        "vxp.saas.03",
        ["vxp.saas.02"],
        LOCAL_ZIPS,
    ),
    "upload_1f881896-6e3a-4a5f-87f1-c380878e148e.edxml": (
        "1f881896-6e3a-4a5f-87f1-c380878e148e",
        0,
        "",
        "vxp.saas.03",
        ["vxp.saas.02"],
        LOCAL_ZIPS,
    ),
    "upload_b6e1f29d-cdc9-4fa7-8391-442e8566f14e.edxml": (
        "b6e1f29d-cdc9-4fa7-8391-442e8566f14e",
        0,
        "",
        "vxp.saas.03",
        ["vxp.saas.03"],
        [("metaA.txt", "application/zip"), ("metaB.txt", "application/zip")],
    ),
    "upload_bb5d2f68-bbce-49da-aa9a-2197cabec3bf.edxml": (
        "bb5d2f68-bbce-49da-aa9a-2197cabec3bf",
        0,
        "",
        "vxp.saas.03",
        ["vxp.saas.02"],
        LOCAL_ZIPS,
    ),
    "upload_bdb98a62-a2be-4c25-9075-8dcdbcdb1402.edxml": (
        "bdb98a62-a2be-4c25-9075-8dcdbcdb1402",
        0,
        "",
        "vxp.saas.03",
        ["vxp.saas.02"],
        LOCAL_ZIPS,
    ),
}


def test_every_vendored_package_is_expected_here() -> None:
    assert sorted(p.name for p in SAMPLES.iterdir()) == sorted([*STATUSES, *DOCUMENTS])


@pytest.mark.parametrize("name", sorted(STATUSES))
def test_vnpt_status_packages_are_read_with_their_codes(name: str) -> None:
    code, sender, addressee, document_id = STATUSES[name]
    data = _sample(name)

    st = parse_status_package(data)

    assert (st.status_code, st.sender.organ_id) == (code, sender)
    assert (st.response_for_organ_id, st.response_for_document_id) == (addressee, document_id)
    assert st.response_for_code == "7816/VPCP-TTĐT"
    assert st.shape == STATUS_SHAPE_VNPT
    assert st.timestamp.tzinfo is not None
    assert st.description
    assert is_status_package(data)
    # Unsigned is the only deviation, and a strict reader that waives signatures accepts them.
    assert parse_status_package(data, policy=UNSIGNED_STRICT) == st


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_vnpt_document_packages_are_read_with_the_document_they_act_on(name: str) -> None:
    document_id, doc_type, acted_on, sender, recipients, attachments = DOCUMENTS[name]
    data = _sample(name)

    pkg = parse_package(data)

    assert pkg.header.document_id == document_id
    assert (pkg.business.doc_type, pkg.business.document_id) == (doc_type, acted_on)
    assert pkg.header.sender.organ_id == sender
    assert [r.organ_id for r in pkg.header.recipients] == recipients
    assert [(a.name, a.content_type) for a in pkg.attachments] == attachments
    assert all(a.data.startswith(b"PK\x03\x04") for a in pkg.attachments)
    assert not is_status_package(data)


def test_status_edxml_contradictory_promulgation_date_is_a_warning_not_a_refusal() -> None:
    st = parse_status_package(_sample("status.edxml"), policy=UNSIGNED_STRICT)
    assert st.response_for_promulgation_date == datetime.date(2018, 9, 28)
    assert st.warnings == [
        "edXML/edXMLEnvelope/edXMLHeader/MessageHeader/ResponseFor/PromulgationDate: 2018/09/28"
        " contradicts the date in DocumentId (2015/09/30); the DocumentId names the document"
    ]


def test_vnpt_replacement_and_recall_say_where_the_document_acted_on_was_found() -> None:
    bussiness = "edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness/DocumentId"
    replacement = parse_package(_sample("edoc_replacement.edxml"))
    assert replacement.business.replacements[0].organ_ids == ("000.00.00.H41", "000.00.00.H14")
    assert (
        f"{bussiness}: missing; the replaced document '000.00.00.G22,2014/01/30,7806/VPCP-TTĐT'"
        " is read from ReplacementInfoList/ReplacementInfo/DocumentId"
    ) in replacement.warnings
    recall = parse_package(_sample("edoc_revocation.edxml"))
    assert (
        f"{bussiness}: missing; the recalled document '{ANSWERED}' is read from MessageHeader/DocumentId"
    ) in recall.warnings


def _move_bussiness_before_traces(data: bytes) -> bytes:
    text = data.decode()
    start, end = text.index("<edXML:TraceHeader>"), text.index("<edXML:Bussiness>")
    trace = text[start:end]
    stop = text.index("</edXML:Bussiness>") + len("</edXML:Bussiness>")
    return (text[:start] + text[end:stop] + "\n        " + trace.rstrip() + text[stop:]).encode()


@pytest.mark.parametrize("name", ["edoc_replacement.edxml", "edoc_revocation.edxml", "edoc_update.edxml"])
def test_bussiness_and_trace_headers_are_read_in_either_order(name: str) -> None:
    swapped = _move_bussiness_before_traces(_sample(name))
    assert swapped.index(b"<edXML:Bussiness>") < swapped.index(b"<edXML:TraceHeader>")
    original, again = parse_package(_sample(name)), parse_package(swapped)
    assert again.business == original.business
    assert again.traces == original.traces


def test_trace_hop_with_null_agency_is_read_as_none() -> None:
    data = _sample("upload_bb5d2f68-bbce-49da-aa9a-2197cabec3bf.edxml")
    start = data.index(b"<edXML:TraceHeader>")
    hop = data[start:].replace(b"vxp.saas.03", b"null", 1)
    pkg = parse_package(data[:start] + hop)
    assert [t.organ_id for t in pkg.traces] == [None]
    assert any("trace hop without an agency code" in w for w in pkg.warnings)


@pytest.mark.parametrize("name", ["status.edxml", "status_cancellation_13.edxml"])
def test_document_parser_refuses_a_vnpt_status_package_saying_where_to_send_it(name: str) -> None:
    with pytest.raises(
        EdxmlError, match="this is a status package, not a document; send it as messagetype=status"
    ):
        parse_package(_sample(name))


def test_document_parser_refuses_a_status_form_package_saying_where_to_send_it() -> None:
    data = build_status_package(parse_status_package(_sample("status_acceptance_03.edxml")))
    assert is_status_package(data)
    with pytest.raises(EdxmlError, match="this is a status package, not a document"):
        parse_package(data)


def test_status_parser_refuses_a_document_package_saying_it_is_one() -> None:
    with pytest.raises(EdxmlError, match=r"this is a document package .* not a status package"):
        parse_status_package(_sample("edoc_new.edxml"))


# -- what real senders vary in a status package ---------------------------------------------------
ACCEPTANCE = "status_acceptance_03.edxml"
QCVN_SIGNATURE = b"<Signature><SignedInfo/></Signature>"
DSIG_SIGNATURE = (
    b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/></ds:Signature>'
)


def _signed(signature: bytes) -> bytes:
    return _sample(ACCEPTANCE).replace(
        b"</edXML:MessageHeader>\r\n", b"</edXML:MessageHeader>\r\n      " + signature + b"\r\n"
    )


@pytest.mark.parametrize(
    ("variant", "mutate"),
    [
        ("LF line ends", lambda d: d.replace(b"\r\n", b"\n")),
        ("stray bytes before <?xml", lambda d: b"1212" + d),
        ("yyyy-MM-dd dates", lambda d: d.replace(b">2015/09/30</", b">2015-09-30</")),
        ("no indentation", lambda d: b"".join(line.strip() for line in d.splitlines())),
        ("Signature in the QCVN namespace", lambda d: _signed(QCVN_SIGNATURE)),
        ("Signature in the XML-DSig namespace", lambda d: _signed(DSIG_SIGNATURE)),
        ("ResponseFor children reversed", lambda d: _reverse_response_for(d)),
    ],
)
def test_status_package_variants_mean_the_same_status(variant: str, mutate: Any) -> None:
    expected = parse_status_package(_sample(ACCEPTANCE))
    st = parse_status_package(mutate(_sample(ACCEPTANCE)))
    # The same status; whether it came signed is the one thing a variant may change.
    assert dataclasses.replace(st, signature_present=False) == expected, variant
    assert is_status_package(mutate(_sample(ACCEPTANCE)))


def _reverse_response_for(data: bytes) -> bytes:
    root = etree.fromstring(data)
    [response_for] = root.iter("{http://www.mic.gov.vn/TBT/QCVN_102_2016}ResponseFor")
    children = list(response_for)
    for child in children:
        response_for.remove(child)
    for child in reversed(children):
        response_for.append(child)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def test_status_deviations_are_warnings_when_lenient_and_refused_when_strict() -> None:
    dashed = _sample(ACCEPTANCE).replace(b">2015/09/30</", b">2015-09-30</")
    assert parse_status_package(dashed).warnings[0] == (
        "edXML/edXMLEnvelope/edXMLHeader/MessageHeader/ResponseFor/PromulgationDate:"
        " '2015-09-30' is yyyy-MM-dd, not yyyy/MM/dd"
    )
    with pytest.raises(EdxmlError, match="is yyyy-MM-dd, not yyyy/MM/dd"):
        parse_status_package(dashed, policy=UNSIGNED_STRICT)
    qcvn = parse_status_package(_signed(QCVN_SIGNATURE))
    assert qcvn.signature_present
    assert any("not XML-DSig" in w for w in qcvn.warnings)
    dsig = parse_status_package(_signed(DSIG_SIGNATURE), policy=ParsePolicy(lenient=False))
    assert dsig.signature_present and dsig.warnings == []


def test_vnpt_status_shape_still_refuses_dtds_and_entities() -> None:
    data = _sample(ACCEPTANCE).replace(
        b"<edXML xmlns=", b'<!DOCTYPE edXML [<!ENTITY x SYSTEM "file:///etc/passwd">]>\r\n<edXML xmlns=', 1
    )
    with pytest.raises(XmlSecurityError):
        parse_status_package(data)
    assert not is_status_package(data)


def test_is_status_package_says_no_to_what_is_not_xml() -> None:
    assert not is_status_package(b"")
    assert not is_status_package(b"not xml")
    assert not is_status_package(b"<edXML:Status xmlns:edXML='urn:other'/>")
    assert not is_status_package(_sample(ACCEPTANCE)[:300])
