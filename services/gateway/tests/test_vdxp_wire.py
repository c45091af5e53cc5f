"""The VDXP wire rules, checked against the SDK's own bytes (VDXP-WIRE.md §2.4 and §3)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from lienthong_common.clock import VIETNAM
from lienthong_gateway.vdxp_wire import (
    WireError,
    match_hash_file,
    parse_timestamp,
    read_signed_request,
    recipient_codes,
    reply_fail,
    reply_ok,
)
from lienthong_sdk.vdxp_client import VdxpClient, hash_file, sign_header

SAMPLES = Path(__file__).resolve().parents[3] / "third_party" / "vdxp" / "vdxp-samples"

# The SDK's getReceivedEdocList call of the worked example, header for header.
LIST_SIGN = (
    '{"XroadVnpt-systemid":"vxp.saas.03","XroadVnpt-servicetype":"eDoc","XroadVnpt-messagetype":"edoc",'
    '"XroadVnpt-timestamp":"15032025T091530+0042","XroadVnpt-Content-Type":"application/json"}'
)
LIST_HEADERS = [
    (b"XroadVnpt-systemid", b"vxp.saas.03"),
    (b"XroadVnpt-servicetype", b"eDoc"),
    (b"XroadVnpt-messagetype", b"edoc"),
    (b"XroadVnpt-timestamp", b"15032025T091530+0042"),
    (b"Content-Type", b"application/json"),
    (b"XroadVnpt-Content-Type", b"application/json"),
    (b"XroadVnpt-sign-header-key", b"systemid;servicetype;messagetype;timestamp;Content-Type"),
    (b"XroadVnpt-sign-header", LIST_SIGN.encode()),
    (b"XroadVnpt-hash-header", b"e295aafc73a0779d3ad1c4652e6791458069a608bb1b60014bb065aaf614f327"),
    (b"User-Agent", b"JAVASDKAgent/1.0.0 XRoad/VPCP"),
]


def lower(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """As the ASGI server hands them over: names lower-cased."""
    return [(k.lower(), v) for k, v in headers]


def test_the_sdks_worked_example_is_read_with_its_signed_parameters() -> None:
    signed = read_signed_request(lower(LIST_HEADERS))
    assert signed.system_id == "vxp.saas.03"
    assert signed.signed_bytes == LIST_SIGN.encode()
    assert signed.get("messagetype") == "edoc"
    assert signed.timestamp == dt.datetime(2025, 3, 15, 9, 15, 30, 42000, tzinfo=VIETNAM)
    mac = hmac.new(b"s3cret", signed.signed_bytes, hashlib.sha256).hexdigest()
    assert mac == signed.signature


def test_the_python_client_signs_byte_for_byte_as_the_sdk() -> None:
    client = VdxpClient("http://127.0.0.1:18961", "vxp.saas.03", "s3cret", timestamp="15032025T091530+0042")
    headers = client.headers(
        {"status": "done", "docId": "8af226c8-7cde-4fbe-88fe-e15a768b49cb"}, "application/json"
    )
    # The worked example's map order differs (Java's HashMap); the HMAC is over what was sent.
    signed = headers["XroadVnpt-sign-header"]
    assert json.loads(signed) == {
        "XroadVnpt-systemid": "vxp.saas.03",
        "XroadVnpt-status": "done",
        "XroadVnpt-docId": "8af226c8-7cde-4fbe-88fe-e15a768b49cb",
        "XroadVnpt-timestamp": "15032025T091530+0042",
        "XroadVnpt-Content-Type": "application/json",
    }
    assert (
        headers["XroadVnpt-hash-header"].decode() == hmac.new(b"s3cret", signed, hashlib.sha256).hexdigest()
    )
    # The updateStatus example of VDXP-WIRE.md §2.4, in the SDK's order, gives the SDK's HMAC.
    sdk_order = sign_header(
        {
            "systemid": "vxp.saas.03",
            "docId": "8af226c8-7cde-4fbe-88fe-e15a768b49cb",
            "timestamp": "15032025T091530+0042",
            "Content-Type": "application/json",
            "status": "done",
        }
    )
    assert hmac.new(b"s3cret", sdk_order.encode(), hashlib.sha256).hexdigest() == (
        "ac55361f30da4799aa9851b43493d28f77e07c14e5e712e63cad8ce03fd376b4"
    )


def test_a_signed_value_that_differs_from_the_header_sent_is_refused() -> None:
    tampered = [(k, b"status" if k == b"XroadVnpt-messagetype" else v) for k, v in LIST_HEADERS]
    with pytest.raises(WireError, match="XroadVnpt-messagetype does not match"):
        read_signed_request(lower(tampered))


def test_an_unsigned_header_adds_no_parameter() -> None:
    extra = [*LIST_HEADERS, (b"XroadVnpt-docId", b"8af226c8-7cde-4fbe-88fe-e15a768b49cb")]
    assert read_signed_request(lower(extra)).get("docId") == ""


def test_missing_signature_headers_are_named() -> None:
    plain = [(k, v) for k, v in LIST_HEADERS if k not in (b"XroadVnpt-sign-header", b"XroadVnpt-hash-header")]
    with pytest.raises(WireError, match="XroadVnpt-sign-header, XroadVnpt-hash-header") as refused:
        read_signed_request(lower(plain))
    assert refused.value.code == 401


def test_header_names_are_read_case_insensitively_and_docId_wins_over_a_sticky_docid() -> None:
    sign = json.dumps(
        {
            "XroadVnpt-systemid": "s",
            "XroadVnpt-docid": "old-0000-id",
            "XroadVnpt-docId": "new-1111-id",
            "XroadVnpt-timestamp": "15032025T091530+0042",
        },
        separators=(",", ":"),
    )
    headers = [
        (b"xroadvnpt-systemid", b"s"),
        (b"xroadvnpt-docid", b"old-0000-id"),
        (b"xroadvnpt-docid", b"new-1111-id"),
        (b"xroadvnpt-timestamp", b"15032025T091530+0042"),
        (b"xroadvnpt-sign-header", sign.encode()),
        (b"xroadvnpt-hash-header", b"0" * 64),
    ]
    assert read_signed_request(headers).get("docId") == "new-1111-id"


def test_timestamps_are_the_sdks_milliseconds_form_of_any_age() -> None:
    assert parse_timestamp("01011990T000000+0999").year == 1990
    for bad in ("2025-03-15T09:15:30", "15032025T091530+07:00", "32132025T091530+0042"):
        with pytest.raises(WireError):
            parse_timestamp(bad)


def test_a_future_timestamp_is_refused_only_when_configured() -> None:
    now = dt.datetime(2025, 3, 14, 9, 0, tzinfo=VIETNAM)
    read_signed_request(lower(LIST_HEADERS), now=now)
    with pytest.raises(WireError, match="in the future"):
        read_signed_request(lower(LIST_HEADERS), max_future_skew=dt.timedelta(hours=1), now=now)


def test_hash_file_is_the_sdks_unpadded_hex_of_the_file_without_the_crlf() -> None:
    file = (SAMPLES / "status_acceptance_03.edxml").read_bytes()
    assert hash_file(file) == "228490b849c17774b997155a1e2d16f5ddb2dbeb33b77f474a77e4e121a214b"
    assert match_hash_file(hash_file(file), file + b"\r\n") == file
    assert match_hash_file(hashlib.sha256(file).hexdigest(), file + b"\r\n") == file
    assert match_hash_file(hashlib.sha256(file).hexdigest(), file) == file
    assert match_hash_file(hash_file(file), file + b"tampered\r\n") is None
    # The table's second row: a digest starting 0x05 in all three spellings.
    longer = file + b"<!-- 7 -->\r\n"
    for spelling in (
        "5c9801ec7ad222f7aeff925ceceee3573ce4dc1584272aa7fb3530691e81",
        "05c9801ec7ad222f7aeff925ceceee3573ce4dc1584272aa7fb3050300691e81",
        "5c9801ec7ad222f7aeff925ceceee3573ce4dc1584272aa7fb3050300691e81",
    ):
        assert match_hash_file(spelling, longer + b"\r\n") == longer


def test_to_is_read_as_json_array_json_string_or_comma_list() -> None:
    assert recipient_codes('["000.00.00.G22","000.00.00.H49"]') == ["000.00.00.G22", "000.00.00.H49"]
    assert recipient_codes('"000.00.00.G22"') == ["000.00.00.G22"]
    assert recipient_codes("000.00.00.G22, 000.00.00.H49") == ["000.00.00.G22", "000.00.00.H49"]
    with pytest.raises(WireError):
        recipient_codes('["unclosed')


def test_replies_are_ascii_json_without_nulls() -> None:
    body = reply_fail(404, "không tìm thấy văn bản", DocId="").body
    assert body.decode("ascii") == (
        '{"status":"FAIL","ErrorCode":"404",'
        '"ErrorDesc":"kh\\u00f4ng t\\u00ecm th\\u1ea5y v\\u0103n b\\u1ea3n","DocId":""}'
    )
    ok = json.loads(reply_ok(data=[{"docId": "a-1", "updated_time": None}]).body)
    assert ok == {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success", "data": [{"docId": "a-1"}]}
