"""Attachment bodies read past the parser: the same bytes and the same errors as through it,
whatever the chunking, the wrapping, or the markup inside a body.

And attachments left inside their package: whenever a body gets a span, decoding the package's
bytes at that span gives exactly the attachment the parser decoded; when it cannot (markup or
entities inside the body), there is no span and the attachment is decoded to a file instead."""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import io
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lienthong_common.edxml import (
    LENIENT,
    NS,
    Attachment,
    EdxmlError,
    EdxmlPackage,
    MessageHeader,
    Organization,
    build_package,
    decode_base64_span,
    parse_package,
    read_package_file,
)
from lienthong_common.edxml._model import XmlSecurityError
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


def _parse(package: bytes, block: int) -> tuple[bytes, Payload]:
    _root, payloads = parse_stream(
        memory_chunks(package, block),
        size=len(package),
        policy=LENIENT,
        warnings=[],
        open_sink=lambda _index: Payload(sink=io.BytesIO()),
    )
    payload = payloads[1]
    assert isinstance(payload.sink, io.BytesIO)
    return payload.sink.getvalue(), payload


def _read(package: bytes, block: int) -> tuple[bytes, str | None]:
    decoded, payload = _parse(package, block)
    return decoded, payload.error


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


def _from_span(package: bytes, span: tuple[int, int], block: int = 1000) -> bytes:
    body = package[span[0] : span[1]]
    return b"".join(decode_base64_span(memory_chunks(body, block)))


WRAPPED = [
    ENCODED,
    b"\n".join(ENCODED[i : i + 76] for i in range(0, len(ENCODED), 76)),
    b"\r\n".join(ENCODED[i : i + 64] for i in range(0, len(ENCODED), 64)),
    b"\n\t  " + ENCODED + b"  \n      ",
    b"\n" + b"\n".join(ENCODED[i : i + 76] for i in range(0, len(ENCODED), 76)) + b"\n",
]


@pytest.mark.parametrize("body", WRAPPED, ids=["one-line", "lf-76", "crlf-64", "spaces", "leading-lf"])
@pytest.mark.parametrize("block", [1, 3, 64, 1000, 256 * 1024])
def test_a_plain_base64_body_gets_the_span_of_its_bytes(body: bytes, block: int) -> None:
    package = _with_body(body)
    decoded, payload = _parse(package, block)
    assert decoded == DATA
    assert payload.span is not None
    assert package[payload.span[0] : payload.span[1]] == body
    assert _from_span(package, payload.span) == DATA


@pytest.mark.parametrize("preamble", [b"\xef\xbb\xbf", b"  \r\n", b"\xef\xbb\xbf garbage "])
def test_span_offsets_count_the_bytes_stripped_before_the_xml(preamble: bytes) -> None:
    package = preamble + _package()
    _decoded, payload = _parse(package, 97)
    assert payload.span is not None
    assert _from_span(package, payload.span) == DATA


@pytest.mark.parametrize(
    "body",
    [
        ENCODED[:100] + b"&#" + str(ENCODED[100]).encode() + b";" + ENCODED[101:],
        ENCODED[:100] + b"<!-- a comment -->" + ENCODED[100:],
        ENCODED + b"<!-- a comment at the end -->",
        b"<!-- a comment first -->" + ENCODED,
        ENCODED[:100] + b"<![CDATA[" + ENCODED[100:200] + b"]]>" + ENCODED[200:],
        ENCODED[:100] + b"<?pi x?>" + ENCODED[100:],
        ENCODED[:100] + b"<x/>" + ENCODED[100:],
    ],
    ids=["char-ref", "comment", "comment-end", "comment-first", "cdata", "pi", "element"],
)
@pytest.mark.parametrize("block", [7, 256 * 1024])
def test_a_body_with_markup_inside_has_no_span(body: bytes, block: int) -> None:
    try:
        decoded, payload = _parse(_with_body(body), block)
    except EdxmlError:
        return  # (an element inside a body is refused later, by the tree reader)
    assert payload.span is None
    assert decoded == DATA or payload.error is not None


def test_read_package_file_keeps_plain_bodies_in_the_package(tmp_path: Path) -> None:
    path = tmp_path / "p.edxml"
    path.write_bytes(_package())
    with read_package_file(path, attachment_dir=tmp_path / "att", policy=LENIENT, spans=True) as read:
        (attachment,) = read.attachments
        assert attachment.path is None and attachment.span is not None
        assert attachment.sha256 == hashlib.sha256(DATA).hexdigest() and attachment.size == len(DATA)
        assert _from_span(path.read_bytes(), attachment.span) == DATA
    assert not (tmp_path / "att").exists() or not any((tmp_path / "att").iterdir())


def test_read_package_file_decodes_to_files_when_a_body_has_markup(tmp_path: Path) -> None:
    path = tmp_path / "p.edxml"
    path.write_bytes(_with_body(ENCODED[:100] + b"<!-- c -->" + ENCODED[100:]))
    with read_package_file(path, attachment_dir=tmp_path, policy=LENIENT, spans=True) as read:
        (attachment,) = read.attachments
        assert attachment.span is None and attachment.path is not None
        assert attachment.path.read_bytes() == DATA
    assert not attachment.path.exists()  # removed on exit


def test_decode_base64_span_refuses_what_is_not_a_whole_body() -> None:
    with pytest.raises(binascii.Error):
        b"".join(decode_base64_span([ENCODED[:-1]]))
    with pytest.raises(binascii.Error):
        b"".join(decode_base64_span([ENCODED[:100] + b"*" + ENCODED[100:]]))


@st.composite
def _mutated_body(draw: st.DrawFn) -> bytes:
    """The base64 body with a few edits: whitespace, markup, stray characters, cuts."""
    data = bytearray(base64.b64encode(draw(st.binary(min_size=0, max_size=600))))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        token = draw(
            st.sampled_from(
                [
                    b"\n",
                    b"\r\n",
                    b" ",
                    b"\t",
                    b"=",
                    b"==",
                    b"A",
                    b"*",
                    b"&#65;",
                    b"&amp;",
                    b"<!--x-->",
                    b"<![CDATA[QUJD]]>",
                    b"<?p?>",
                    b"\xc3\xa9",
                    b"",
                    b"<",
                    b">",
                ]
            )
        )
        if draw(st.booleans()):
            data[at:at] = token
        else:
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_mutated_body(), block=st.integers(1, 300))
def test_whenever_there_is_a_span_it_decodes_to_what_the_parser_decoded(body: bytes, block: int) -> None:
    package = _with_body(body)
    try:
        decoded, payload = _parse(package, block)
    except EdxmlError:
        return
    if payload.span is None or payload.error is not None:
        return
    assert _from_span(package, payload.span, block=max(1, block // 2)) == decoded
    assert hashlib.sha256(decoded).hexdigest() == payload.sha256


@pytest.mark.parametrize("codec", ["utf-8", "utf-16-le", "utf-16-be"])
def test_a_dtd_is_refused_wherever_the_chunks_cut_it(codec: str) -> None:
    head = '<?xml version="1.0"?>' if codec == "utf-8" else ""
    text = head + '<!DOCTYPE edXML [<!ENTITY a "b">]><edXML xmlns="' + NS + '">&a;</edXML>'
    package = text.encode(codec)
    # From 2 bytes a chunk: a first chunk of one byte cannot tell UTF-16 apart (refused as no XML).
    for block in range(2, 41):
        with pytest.raises(XmlSecurityError, match="DTD/DOCTYPE declarations are not allowed"):
            parse_stream(
                memory_chunks(package, block),
                size=len(package),
                policy=LENIENT,
                warnings=[],
                open_sink=lambda _index: Payload(sink=io.BytesIO()),
            )
    # Streamed without its size known beforehand, the byte limit still holds.
    small = replace(LENIENT, max_bytes=10)
    with pytest.raises(XmlSecurityError, match="exceeds the limit of 10"):
        parse_stream(
            memory_chunks(package, 4),
            size=0,
            policy=small,
            warnings=[],
            open_sink=lambda _index: Payload(sink=io.BytesIO()),
        )
