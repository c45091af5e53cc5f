"""Attachment bodies read past the parser: the same bytes and the same errors as through it,
whatever the chunking, the wrapping, or the markup inside a body."""

from __future__ import annotations

import base64
import datetime
import io

import pytest

from lienthong_common.edxml import (
    LENIENT,
    Attachment,
    EdxmlError,
    EdxmlPackage,
    MessageHeader,
    Organization,
    build_package,
    parse_package,
)
from lienthong_common.edxml._stream import Payload, memory_chunks, parse_stream

DATA = bytes(range(256)) * 40  # 10 240 bytes, every byte value


def _package(data: bytes = DATA) -> bytes:
    header = MessageHeader(
        sender=Organization("000.00.00.G22"),
        recipients=[Organization("000.00.00.H49")],
        code_number="12",
        code_notation="UBND-VP",
        promulgation_place="Hà Nội",
        promulgation_date=datetime.date(2025, 7, 1),
        document_type=1,
        document_type_name="Công văn",
        subject="Bodies",
    )
    return build_package(
        EdxmlPackage(header=header, attachments=[Attachment("cid:1", "a.pdf", "application/pdf", data)])
    )


def _with_body(body: bytes) -> bytes:
    """The package with its attachment body replaced by `body` (raw XML character data)."""
    package = _package()
    start = package.index(b">", package.index(b"ContentTransferEncoded")) + 1
    end = package.index(b"<", start)
    return package[:start] + body + package[end:]


def _read(package: bytes, block: int) -> tuple[bytes, str | None]:
    _root, payloads = parse_stream(
        memory_chunks(package, block),
        size=len(package),
        policy=LENIENT,
        warnings=[],
        open_sink=lambda _index: Payload(sink=io.BytesIO()),
    )
    payload = payloads[1]
    assert isinstance(payload.sink, io.BytesIO)
    return payload.sink.getvalue(), payload.error


ENCODED = base64.b64encode(DATA)


@pytest.mark.parametrize("block", [1, 2, 5, 13, 64, 100, 1000, 4096, 256 * 1024])
def test_any_chunking_gives_the_same_bytes(block: int) -> None:
    assert _read(_package(), block) == (DATA, None)


@pytest.mark.parametrize(
    "body",
    [
        b"\n".join(ENCODED[i : i + 76] for i in range(0, len(ENCODED), 76)),  # MIME wrapping
        b"\r\n".join(ENCODED[i : i + 76] for i in range(0, len(ENCODED), 76)),
        b"\n\t  " + ENCODED + b"  \n",
        ENCODED[:100] + b"&#" + str(ENCODED[100]).encode() + b";" + ENCODED[101:],  # a character reference
        ENCODED[:100] + b"<!-- a comment -->" + ENCODED[100:],
        ENCODED[:100] + b"<![CDATA[" + ENCODED[100:200] + b"]]>" + ENCODED[200:],
        ENCODED[:100] + b"<?pi x?>" + ENCODED[100:],
        ENCODED[:100] + b"<!-- <edXML:ContentTransferEncoded>QUJD<x -->" + ENCODED[100:],
    ],
    ids=["lf", "crlf", "spaces", "char-ref", "comment", "cdata", "pi", "tag-in-comment"],
)
@pytest.mark.parametrize("block", [7, 97, 256 * 1024])
def test_bodies_the_parser_would_rewrite_decode_as_before(body: bytes, block: int) -> None:
    assert _read(_with_body(body), block) == (DATA, None)


@pytest.mark.parametrize(
    "body", [ENCODED[:100] + b"*" + ENCODED[100:], ENCODED + b"=", ENCODED + b"AAAA", "é".encode() + ENCODED]
)
def test_bad_base64_is_reported_at_the_element(body: bytes) -> None:
    with pytest.raises(EdxmlError) as caught:
        parse_package(_with_body(body))
    assert str(caught.value) == (
        "edXML/AttachmentEncoded/Attachment[1]/ContentTransferEncoded: content is not valid base64"
    )


def test_a_control_character_in_a_body_is_still_not_well_formed() -> None:
    with pytest.raises(EdxmlError) as caught:
        parse_package(_with_body(ENCODED[:100] + b"\x01" + ENCODED[100:]))
    assert caught.value.reason.startswith("not well-formed XML")
