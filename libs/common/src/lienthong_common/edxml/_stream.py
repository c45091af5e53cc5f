"""Streaming, hardened reading of edXML: the tree without attachment bodies, which are
base64-decoded chunk by chunk into sinks (memory or files) as the parser meets them.

A package's size is dominated by its attachments; decoding them on the fly keeps memory
near one feed chunk per attachment instead of the whole text node, its Python copy and the
decoded bytes at once (and avoids libxml2's 10 MB single-text-node limit).
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from ._model import NS, EdxmlError, ParsePolicy, XmlSecurityError
from ._secure import DOCUMENT, strip_preamble

FEED_BYTES = 256 * 1024
_ENCODED = f"{{{NS}}}AttachmentEncoded"
_ATTACHMENT = f"{{{NS}}}Attachment"
_CONTENT = f"{{{NS}}}ContentTransferEncoded"
_INVALID_BASE64 = "content is not valid base64"
_XML_WHITESPACE = b" \t\r\n"
# UTF-8 and both UTF-16 byte orders (the parser would read a UTF-16 document too).
_DTD_MARKERS = tuple(
    word.encode(codec) for word in ("<!DOCTYPE", "<!ENTITY") for codec in ("utf-8", "utf-16-le", "utf-16-be")
)


@dataclass
class Payload:
    """One attachment body as decoded: its digest and size, and where the bytes went."""

    sink: IO[bytes]
    path: Path | None = None
    sha256: str = ""
    size: int = 0
    error: str | None = None


@dataclass
class _Decoder:
    """Incremental strict base64 (whitespace ignored, as the SDKs wrap at 76 columns)."""

    payload: Payload
    pending: bytes = b""
    ended: bool = False
    digest: Any = field(default_factory=hashlib.sha256)

    def feed(self, text: str) -> None:
        if self.payload.error is not None:
            return
        try:
            # bytes.translate drops the line breaks in one C pass (str.split/join built a list
            # of 76-character strings: the costliest step of reading a package).
            data = text.encode("ascii").translate(None, _XML_WHITESPACE)
        except UnicodeEncodeError:
            self.payload.error = _INVALID_BASE64
            return
        if not data:
            return
        if self.ended:  # data after the padding
            self.payload.error = _INVALID_BASE64
            return
        buffered = self.pending + data if self.pending else data
        cut = len(buffered) - len(buffered) % 4
        self.pending = buffered[cut:]
        self._decode(buffered[:cut] if cut < len(buffered) else buffered)

    def _decode(self, quads: bytes) -> None:
        if not quads:
            return
        try:
            raw = binascii.a2b_base64(quads, strict_mode=True)
        except binascii.Error:
            self.payload.error = _INVALID_BASE64
            return
        self.ended = quads.endswith(b"=")
        self.digest.update(raw)
        self.payload.size += len(raw)
        self.payload.sink.write(raw)

    def finish(self) -> None:
        if self.pending and self.payload.error is None:
            self.payload.error = _INVALID_BASE64
        self.payload.sha256 = self.digest.hexdigest()


class _PackageTarget:
    """lxml parser target: a TreeBuilder with limits, attachment bodies diverted to decoders."""

    def __init__(self, policy: ParsePolicy, open_sink: Callable[[int], Payload]) -> None:
        self.policy = policy
        self.open_sink = open_sink
        self.builder = etree.TreeBuilder()
        self.stack: list[str] = []
        self.count = 0
        self.attachment = 0
        self.decoder: _Decoder | None = None
        self.payloads: dict[int, Payload] = {}
        self.error: Exception | None = None
        self.saw_doctype = False

    def _refuse(self, reason: str) -> None:
        self.error = XmlSecurityError(DOCUMENT, reason)
        raise self.error

    def start(self, tag: str, attrib: Any, nsmap: dict[str | None, str]) -> Any:
        self.count += 1
        if len(self.stack) + 1 > self.policy.max_depth:
            self._refuse(f"nesting deeper than {self.policy.max_depth} levels")
        if self.count > self.policy.max_elements:
            self._refuse(f"more than {self.policy.max_elements} elements")
        depth = len(self.stack)
        if depth == 2 and tag == _ATTACHMENT and self.stack[1] == _ENCODED:
            self.attachment += 1
        elif (
            depth == 3
            and tag == _CONTENT
            and self.stack[1:] == [_ENCODED, _ATTACHMENT]
            and self.attachment not in self.payloads
        ):
            payload = self.open_sink(self.attachment)
            self.payloads[self.attachment] = payload
            self.decoder = _Decoder(payload)
        self.stack.append(tag)
        return self.builder.start(tag, attrib, {prefix or None: uri for prefix, uri in nsmap.items()})

    def end(self, tag: str) -> Any:
        self.stack.pop()
        if self.decoder is not None and len(self.stack) == 3:
            self.decoder.finish()
            self.decoder = None
        return self.builder.end(tag)

    def data(self, text: str) -> None:
        if self.decoder is not None:
            self.decoder.feed(text)
        else:
            self.builder.data(text)

    def doctype(self, *_args: Any) -> None:
        self.saw_doctype = True

    def close(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.builder.close()


def parse_stream(
    chunks: Iterable[bytes],
    *,
    size: int,
    policy: ParsePolicy,
    warnings: list[str],
    open_sink: Callable[[int], Payload],
) -> tuple[Any, dict[int, Payload]]:
    """Parse the package safely; return the root element (attachment bodies left empty) and
    the decoded payloads by attachment position (1-based)."""
    if size > policy.max_bytes:
        raise XmlSecurityError(DOCUMENT, f"{size} bytes exceeds the limit of {policy.max_bytes}")
    target = _PackageTarget(policy, open_sink)
    parser = etree.XMLParser(
        target=target,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
    )
    first = True
    tail = b""
    try:
        for chunk in chunks:
            if first:
                if not chunk:
                    continue
                chunk = strip_preamble(chunk, policy, warnings)
                first = False
            # Refuse DTDs before the parser sees them (XXE, billion laughs); no package needs one.
            window = tail + chunk
            if b"!" in window and any(marker in window for marker in _DTD_MARKERS):
                raise XmlSecurityError(DOCUMENT, "DTD/DOCTYPE declarations are not allowed")
            tail = chunk[-20:]
            parser.feed(chunk)
        if first:
            raise EdxmlError(DOCUMENT, "no XML content")
        root = parser.close()
    except etree.XMLSyntaxError as exc:
        if target.error is not None:
            raise target.error from None
        if target.saw_doctype:
            raise XmlSecurityError(DOCUMENT, "DTD/DOCTYPE declarations are not allowed") from None
        raise EdxmlError(DOCUMENT, f"not well-formed XML: {exc.msg}") from None
    if target.saw_doctype:  # encodings the byte scan cannot see (UTF-16 input)
        raise XmlSecurityError(DOCUMENT, "DTD/DOCTYPE declarations are not allowed")
    if root is None:
        raise EdxmlError(DOCUMENT, "no root element")
    return root, target.payloads


def file_chunks(path: Path, block: int = FEED_BYTES) -> Iterable[bytes]:
    with path.open("rb") as source:
        while data := source.read(block):
            yield data


def memory_chunks(data: bytes, block: int = FEED_BYTES) -> Iterable[bytes]:
    view = memoryview(data)
    for offset in range(0, len(data), block):
        yield bytes(view[offset : offset + block])
