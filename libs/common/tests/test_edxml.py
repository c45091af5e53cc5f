"""edXML library: agency codes, round trips, policies, security limits, trace hops, speed."""

from __future__ import annotations

import dataclasses
import datetime
import time

import pytest

from lienthong_common.edxml import (
    LENIENT,
    NS,
    STRICT,
    Attachment,
    Business,
    EdxmlError,
    EdxmlPackage,
    MessageHeader,
    Organization,
    ParsePolicy,
    StatusPackage,
    TraceHeader,
    XmlSecurityError,
    append_trace,
    build_package,
    build_status_package,
    parse_package,
    parse_status_package,
    validate_organ_id,
)

UNSIGNED_STRICT = ParsePolicy(lenient=False, require_signature=False)


def _package(**header: object) -> EdxmlPackage:
    fields: dict[str, object] = dict(
        sender=Organization("000.00.00.G22", "Văn phòng Chính phủ"),
        recipients=[Organization("000.00.00.H49", "UBND tỉnh Quảng Ninh")],
        code_number="12",
        code_notation="UBND-VP",
        promulgation_place="Hà Nội",
        promulgation_date=datetime.date(2025, 7, 1),
        document_type=1,
        document_type_name="Công văn",
        subject="Trích yếu <có> & ký tự đặc biệt",
    )
    fields.update(header)
    return EdxmlPackage(
        header=MessageHeader(**fields),  # type: ignore[arg-type]
        traces=[TraceHeader("000.00.00.G22", "2025/07/01 08:00:00")],
        business=Business(),
        attachments=[Attachment("cid:1", "vb.pdf", "application/pdf", b"%PDF-1.7 \x00\xff")],
    )


# -- agency codes ---------------------------------------------------------------------------
@pytest.mark.parametrize("code", ["000.00.00.G22", "000.00.00.H49", "000.00.24.H44", "000.46.24.H44"])
def test_valid_organ_ids(code: str) -> None:
    validate_organ_id(code)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (
            "vxp.saas.03",
            "'vxp.saas.03' has 3 segment(s); an agency code has 4 (V1V2V3.Z1Z2.Y1Y2.M1M2M3)",
        ),
        ("00.00.00.G22", "'00.00.00.G22': level-4 segment V1V2V3 '00' must be 3 digits"),
        ("000.0A.00.G22", "'000.0A.00.G22': level-3 segment Z1Z2 '0A' must be 2 digits"),
        ("000.00.123.G22", "'000.00.123.G22': level-2 segment Y1Y2 '123' must be 2 digits"),
        (
            "001.00.20.TT2",
            "'001.00.20.TT2': level-1 segment M1M2M3 'TT2' must be a capital letter and 2 digits",
        ),
        (
            "000.00.00.g22",
            "'000.00.00.g22': level-1 segment M1M2M3 'g22' must be a capital letter and 2 digits",
        ),
    ],
)
def test_invalid_organ_ids_name_the_segment(code: str, reason: str) -> None:
    with pytest.raises(EdxmlError) as caught:
        validate_organ_id(code)
    assert caught.value.reason == reason
    assert str(caught.value) == f"OrganId: {reason}"


# -- model and round trip ---------------------------------------------------------------------
def test_document_id_is_computed_from_the_header() -> None:
    assert _package().header.document_id == "000.00.00.G22,2025/07/01,12/UBND-VP"


def test_round_trip_both_ways() -> None:
    pkg = _package(due_date=datetime.date(2025, 7, 15), priority=3, to_places=["Như trên"])
    data = build_package(pkg)
    again = parse_package(data, policy=UNSIGNED_STRICT)
    assert again == pkg
    assert build_package(again) == data
    assert parse_package(data) == pkg  # lenient reading of an unsigned package only warns
    assert parse_package(data).warnings == [
        "edXML/edXMLEnvelope/edXMLHeader/Signature: missing; the package is unsigned"
    ]


def test_built_package_uses_the_sdk_prefixes() -> None:
    data = build_package(_package())
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<edXML xmlns="' + NS.encode() + b'">')
    for tag in (
        b"edXML:edXMLEnvelope",
        b"edXML:edXMLHeader",
        b"edXML:MessageHeader",
        b"edXML:TraceHeaderList",
        b"edXML:Bussiness",
        b"edXML:edXMLBody",
        b"edXML:edXMLManifest",
        b"edXML:ContentTransferEncoded",
    ):
        assert b"<" + tag in data
    assert b"<AttachmentEncoded>" in data


def test_build_refuses_what_strict_parsing_refuses() -> None:
    with pytest.raises(EdxmlError) as caught:
        build_package(_package(priority=7))
    assert caught.value.path.endswith("OtherInfo/Priority")
    pkg = _package()
    pkg.business = Business(doc_type=2)
    with pytest.raises(EdxmlError, match="an update must name the DocumentId it acts on"):
        build_package(pkg)
    pkg = _package(sender=Organization("vxp.saas.03"))
    with pytest.raises(EdxmlError, match="From/OrganId: not a QCVN 102 agency code"):
        build_package(pkg)


def test_line_wrapped_base64_is_decoded() -> None:
    pkg = _package()
    pkg.attachments = [Attachment("cid:1", "big.pdf", "application/pdf", bytes(range(256)) * 4)]
    data = build_package(pkg)
    encoded = data.split(b'QCVN_102_2016">', 2)[2].split(b"<", 1)[0]
    wrapped = b"\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    assert parse_package(data.replace(encoded, wrapped)).attachments == pkg.attachments


def test_missing_bussiness_is_a_new_document_leniently_and_an_error_strictly() -> None:
    data = build_package(_package())
    start, end = (
        data.index(b"<edXML:Bussiness>"),
        data.index(b"</edXML:Bussiness>") + len(b"</edXML:Bussiness>"),
    )
    data = data[:start] + data[end:]
    assert parse_package(data).business == Business()
    with pytest.raises(EdxmlError, match="Bussiness: required element is missing"):
        parse_package(data, policy=UNSIGNED_STRICT)


# -- security ---------------------------------------------------------------------------------
def test_size_limit_is_checked_before_parsing() -> None:
    with pytest.raises(XmlSecurityError, match="exceeds the limit of 100"):
        parse_package(b"<" * 101, policy=ParsePolicy(max_bytes=100))


def test_element_count_limit() -> None:
    data = f'<edXML xmlns="{NS}">'.encode() + b"<a/>" * 50 + b"</edXML>"
    with pytest.raises(XmlSecurityError, match="more than 20 elements"):
        parse_package(data, policy=ParsePolicy(max_elements=20))


def test_utf16_doctype_is_refused_too() -> None:
    text = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE edXML [<!ENTITY a "b">]><edXML>&a;</edXML>'
    with pytest.raises(XmlSecurityError, match="DOCTYPE"):
        parse_package(text.encode("utf-16"))


def test_not_well_formed() -> None:
    with pytest.raises(EdxmlError) as caught:
        parse_package(b"<edXML><unclosed></edXML>")
    assert caught.value.path == "(document)"
    assert caught.value.reason.startswith("not well-formed XML")


def test_wrong_root() -> None:
    with pytest.raises(EdxmlError, match="expected edXML"):
        parse_package(b"<edXML/>")


# -- trace hops -------------------------------------------------------------------------------
def test_append_trace_adds_a_hop_and_keeps_the_rest() -> None:
    pkg = _package()
    data = build_package(pkg)
    stamped = append_trace(data, "000.00.00.H49", datetime.datetime(2025, 7, 1, 1, 0, tzinfo=datetime.UTC))
    again = parse_package(stamped, policy=UNSIGNED_STRICT)
    assert again.traces == [*pkg.traces, TraceHeader("000.00.00.H49", "2025/07/01 08:00:00")]
    assert dataclasses.replace(again, traces=pkg.traces) == pkg
    # Canonical formatting is kept, so the stamped package is what build_package would write.
    assert build_package(again) == stamped


def test_append_trace_to_a_package_without_hops() -> None:
    pkg = _package()
    pkg.traces = []
    stamped = append_trace(build_package(pkg), "000.00.00.G09", datetime.datetime(2025, 7, 1, 9, 30))
    again = parse_package(stamped)
    assert again.traces == [TraceHeader("000.00.00.G09", "2025/07/01 09:30:00")]
    assert build_package(again) == stamped


def test_append_trace_refuses_a_bad_agency_code() -> None:
    with pytest.raises(EdxmlError, match="level-1 segment"):
        append_trace(build_package(_package()), "000.00.00.X", datetime.datetime(2025, 7, 1))


# -- status packages --------------------------------------------------------------------------
def _status(**overrides: object) -> StatusPackage:
    fields: dict[str, object] = dict(
        response_for_organ_id="000.00.00.G22",
        response_for_document_id="000.00.00.G22,2025/07/01,12/UBND-VP",
        sender=Organization("000.00.00.H49", "UBND tỉnh Quảng Ninh"),
        status_code="02",
        description="Từ chối: thiếu chữ ký số",
        timestamp=datetime.datetime(2025, 7, 1, 10, 0, tzinfo=datetime.UTC),
    )
    fields.update(overrides)
    return StatusPackage(**fields)  # type: ignore[arg-type]


def test_status_round_trip_in_vietnam_time() -> None:
    st = _status()
    data = build_status_package(st)
    assert b"<edXML:Timestamp>2025/07/01 17:00:00</edXML:Timestamp>" in data
    again = parse_status_package(data, policy=UNSIGNED_STRICT)
    assert again == st
    assert build_status_package(again) == data


def test_status_day_first_timestamp_is_lenient_only() -> None:
    data = build_status_package(_status()).replace(b"2025/07/01 17:00:00", b"01/07/2025 17:00:00")
    assert parse_status_package(data).timestamp == _status().timestamp
    with pytest.raises(EdxmlError, match="is dd/MM/yyyy HH:mm:ss"):
        parse_status_package(data, policy=UNSIGNED_STRICT)


def test_status_code_is_checked_on_build() -> None:
    with pytest.raises(EdxmlError, match="'99' is not a status code"):
        build_status_package(_status(status_code="99"))


# -- speed ------------------------------------------------------------------------------------
def test_one_megabyte_package_parses_in_milliseconds() -> None:
    pkg = _package()
    pkg.attachments = [Attachment("cid:big", "big.pdf", "application/pdf", bytes(range(256)) * 3000)]
    data = build_package(pkg)
    assert len(data) > 1_000_000
    parse_package(data)  # warm up
    # The best CPU time of a few runs: waiting for a busy machine's cores is not parsing time.
    timings = []
    for _ in range(10):
        started = time.process_time()
        parsed = parse_package(data, policy=LENIENT)
        timings.append(time.process_time() - started)
    elapsed = min(timings)
    assert parsed.attachments == pkg.attachments
    assert elapsed < 0.05, f"{elapsed * 1000:.1f} ms per parse"


def test_strict_and_lenient_are_exported() -> None:
    assert STRICT.lenient is False and LENIENT.lenient is True
