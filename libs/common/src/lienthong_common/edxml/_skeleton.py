"""A package read as a small tree, for the envelope signature: every long run of character data
(an attachment's base64 body) is kept in a temporary file, and a placeholder stands in the tree.

Signing and verifying need the canonical form (C14N) of the whole package. Built by lxml over
the whole tree, a 40 MB package took several copies of itself (the tree's text node, the C14N
output, a re-parsed copy), and libxml2 refuses text nodes over 10 MB unless ``huge_tree`` is
set. Here lxml canonicalizes the small tree and the digest is taken over that output with each
placeholder replaced by its run, streamed from disk and escaped as C14N escapes text. The same
substitution writes the tree back out (``write``), which is how a large package is signed.

The tree is lxml's own (prefixes, namespace declarations, comments and processing instructions
exactly as written, which C14N depends on): a small lexer in front of the parser tells
character data from markup and, when a run grows past ``SPILL_BYTES``, hands it to a second,
tree-less parser that decodes it (references, line ends) exactly as the first would, into the
run's file; the first parser sees the placeholder instead. Reading is as hardened as the
package reader's (``ChunkGuard``: size limit, no DTD; no network, no entities; depth and element
counted as the tree grows), and no text node near libxml2's 10 MB limit is ever built.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import hashlib
import itertools
import re
import secrets
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from ._model import EdxmlError, ParsePolicy, XmlSecurityError
from ._secure import DOCUMENT
from ._stream import FEED_BYTES, ChunkGuard, file_chunks, memory_chunks

# Character data runs longer than this go to a temporary file (the largest element text of a
# package but its attachments is a few KiB; an attachment of 1 MiB is cheaper left in the tree).
# A package no larger than this is parsed directly: none of its runs can be longer.
SPILL_BYTES = 1024 * 1024
READ_BYTES = 1024 * 1024
_PLACEHOLDER = re.compile(rb"@@lienthong-run-([0-9a-f]{32})-(\d+)@@")
# C14N escapes text as &amp; &lt; &gt; &#xD;; plain serialization writes a carriage return as
# &#13; (the parser turned every line break it read into \n, so one only comes from a reference).
_C14N_TEXT = ((b"&", b"&amp;"), (b"<", b"&lt;"), (b">", b"&gt;"), (b"\r", b"&#xD;"))
_XML_TEXT = ((b"&", b"&amp;"), (b"<", b"&lt;"), (b">", b"&gt;"), (b"\r", b"&#13;"))
_SPECIAL = re.compile(rb"[&<>\r]")
_DECLARED_ENCODING = re.compile(rb"""^<\?xml\s[^>]*?encoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']""")
_TAG_STOP = re.compile(rb"[\"'>]")
_WHITESPACE = b" \t\r\n"
# Encodings in which '<', '>', '&' and quotes are single bytes that occur nowhere else.
_LEXABLE = re.compile(r"^(utf-8|ascii|latin-1|iso8859-\d+|cp125\d)$")


class Run(Protocol):
    """A long run of character data kept out of the tree."""

    def chunks(self, escapes: tuple[tuple[bytes, bytes], ...]) -> Iterator[bytes]:
        """The run's characters as UTF-8, escaped with ``escapes`` (C14N's or serialization's)."""
        ...

    def close(self) -> None: ...


class _SpilledRun:
    """A run read from a package, in a temporary file as UTF-8 (decoded, unescaped)."""

    def __init__(self, folder: Path | None) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile(dir=folder, prefix="edxml-run-")

    def target(self) -> Any:
        """What the tree-less parser decoding the run writes to."""
        run = self

        class Target:
            def data(self, text: str) -> None:
                run.file.write(text.encode("utf-8"))

            def close(self) -> None:
                return None

        return Target()

    def chunks(self, escapes: tuple[tuple[bytes, bytes], ...]) -> Iterator[bytes]:
        self.file.flush()
        self.file.seek(0)
        while data := self.file.read(READ_BYTES):
            if _SPECIAL.search(data):
                for raw, escaped in escapes:
                    data = data.replace(raw, escaped)
            yield data

    def close(self) -> None:
        self.file.close()


class Base64Run:
    """An attachment body being written: the base64 of ``source`` (bytes, or a file read as it
    streams), which needs no escaping."""

    def __init__(self, source: bytes | Path) -> None:
        self.source = source

    def chunks(self, escapes: tuple[tuple[bytes, bytes], ...]) -> Iterator[bytes]:
        block = 3 * READ_BYTES // 4  # whole base64 quads per block
        if isinstance(self.source, bytes):
            view = memoryview(self.source)
            for offset in range(0, len(view), block):
                yield base64.b64encode(view[offset : offset + block])
            return
        with self.source.open("rb") as file:
            while data := file.read(block):
                yield base64.b64encode(data)

    def close(self) -> None:
        return None

    @staticmethod
    def encoded_size(size: int) -> int:
        return 4 * ((size + 2) // 3)


class _RunDiverter:
    """Between the input and the tree parser: passes markup through, and replaces each long run
    of character data by ``placeholder(n)`` once a tree-less parser has decoded it to a file.

    Markup is told apart by its delimiters: ``<!-- -->``, ``<![CDATA[ ]]>``, ``<? ?>`` and tags,
    whose ``>`` may sit inside quoted attribute values. ``encoding`` None (an encoding where
    those bytes are not single characters) turns diverting off."""

    _TEXT, _START, _UNTIL, _TAG = range(4)

    def __init__(self, encoding: str | None, placeholder: Any, folder: Path | None) -> None:
        self.encoding = encoding
        self.placeholder = placeholder
        self.folder = folder
        self.state = self._TEXT
        self.held = b""
        self.terminator = b""
        self.quote = b""
        self.parts: list[bytes] = []
        self.size = 0
        self.has_text = False
        self.run: _SpilledRun | None = None
        self.decoder: Any = None
        self.runs: list[_SpilledRun] = []

    def feed(self, chunk: bytes, *, final: bool = False) -> list[bytes]:
        if self.encoding is None:  # nothing is diverted: the parser reads the input as it is
            return [chunk] if chunk else []
        out: list[bytes] = []
        data = self.held + chunk if self.held else chunk
        self.held = b""
        pos, size = 0, len(data)
        while pos < size:
            if self.state == self._TEXT:
                lt = data.find(b"<", pos)
                self._text(data[pos : size if lt < 0 else lt])
                if lt < 0:
                    break
                self._end_run(out)
                self.state, pos = self._START, lt
            elif self.state == self._START:
                if size - pos < 9 and not final:  # `<![CDATA[` is the longest opening
                    self.held = data[pos:]
                    break
                for opening, closing in ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>")):
                    if data.startswith(opening, pos):
                        self.state, self.terminator = self._UNTIL, closing
                        out.append(opening)
                        pos += len(opening)
                        break
                else:
                    self.state, self.quote = self._TAG, b""
                    out.append(b"<")
                    pos += 1
            elif self.state == self._UNTIL:
                end = data.find(self.terminator, pos)
                if end < 0:
                    # Keep back what may be the start of a terminator cut in two.
                    cut = size if final else max(pos, size - len(self.terminator) + 1)
                    out.append(data[pos:cut])
                    self.held = data[cut:]
                    break
                out.append(data[pos : end + len(self.terminator)])
                self.state, pos = self._TEXT, end + len(self.terminator)
            else:
                stop = _TAG_STOP.search(data, pos)
                if stop is None:
                    out.append(data[pos:])
                    break
                mark = data[stop.start() : stop.end()]
                if not self.quote and mark == b">":
                    out.append(data[pos : stop.end()])
                    self.state, pos = self._TEXT, stop.end()
                    continue
                if not self.quote:
                    self.quote = mark
                elif mark == self.quote:
                    self.quote = b""
                out.append(data[pos : stop.end()])
                pos = stop.end()
        if final:
            if self.held:
                out.append(self.held)
                self.held = b""
            self._end_run(out)
        return out

    def _text(self, data: bytes) -> None:
        if not data:
            return
        if self.decoder is not None:
            self.decoder.feed(data)
            return
        self.parts.append(data)
        self.size += len(data)
        self.has_text = self.has_text or bool(data.strip(_WHITESPACE))
        # Only runs inside an element are long text; whitespace around the root stays as is.
        if self.size > SPILL_BYTES and self.has_text and self.encoding is not None:
            self.run = _SpilledRun(self.folder)
            self.decoder = etree.XMLParser(
                target=self.run.target(), resolve_entities=False, no_network=True, load_dtd=False
            )
            self.decoder.feed(f'<?xml version="1.0" encoding="{self.encoding}"?><r>'.encode("ascii"))
            for part in self.parts:
                self.decoder.feed(part)
            self.parts.clear()

    def _end_run(self, out: list[bytes]) -> None:
        if self.run is not None:
            self.decoder.feed(b"</r>")
            self.decoder.close()
            self.runs.append(self.run)
            out.append(self.placeholder(len(self.runs) - 1))
            self.run, self.decoder = None, None
        elif self.parts:
            out.append(b"".join(self.parts))
        self.parts.clear()
        self.size = 0
        self.has_text = False

    def close_files(self) -> None:
        for run in [*self.runs, *([self.run] if self.run is not None else [])]:
            run.close()


def _lexable_encoding(first: bytes) -> str | None:
    """The document's encoding when the lexer can read it byte by byte, else None."""
    if b"\x00" in first[:4]:  # UTF-16 or UTF-32 (whatever its declaration or BOM)
        return None
    declared = _DECLARED_ENCODING.match(first)
    name = declared.group(1).decode("ascii") if declared else "utf-8"
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        return None
    return name if _LEXABLE.match(canonical) else None


def new_token() -> str:
    """A placeholder prefix no package can contain by chance (128 random bits)."""
    return f"@@lienthong-run-{secrets.token_hex(16)}-"  # the shape _PLACEHOLDER finds


def placeholder(token: str, index: int) -> str:
    """What stands in the tree for run ``index``."""
    return f"{token}{index}@@"


class Skeleton:
    """A package as a small tree plus its long text runs; close it (or use ``with``) to drop
    the temporary files. ``root`` is the root element; comments and processing instructions
    around it are its siblings, as lxml keeps them."""

    def __init__(self, root: Any, runs: Sequence[Run], token: str) -> None:
        self.root = root
        self.runs = runs
        self._nonce = token.encode("ascii").removeprefix(b"@@lienthong-run-").removesuffix(b"-")

    def close(self) -> None:
        for run in self.runs:
            run.close()

    def __enter__(self) -> Skeleton:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def digest(
        self,
        root: Any,
        algorithm: str,
        *,
        exclude: Any = None,
        exclusive: bool = False,
        with_comments: bool = False,
        inclusive_ns_prefixes: list[str] | None = None,
    ) -> bytes:
        """The ``algorithm`` (hashlib name) digest of the C14N form of ``root``'s document
        (inclusive C14N 1.0 unless ``exclusive``), long runs streamed in from their files.
        ``exclude``: an element left out with its descendants (the enveloped-signature
        transform); the text around it stays, as the transform leaves it."""
        with _without(exclude):
            canonical: bytes = etree.tostring(
                root.getroottree(),
                method="c14n",
                exclusive=exclusive,
                with_comments=with_comments,
                inclusive_ns_prefixes=inclusive_ns_prefixes,
            )
        digest = hashlib.new(algorithm)
        for piece in self._substituted(canonical, _C14N_TEXT):
            digest.update(piece)
        return digest.digest()

    def serialize(self, root: Any) -> bytes:
        """``root``'s document as bytes with placeholders (small); ``reparse`` reads it back."""
        data: bytes = etree.tostring(root.getroottree(), encoding="UTF-8", xml_declaration=False)
        return data

    @staticmethod
    def reparse(data: bytes) -> Any:
        """The root of a small document made by ``serialize`` (possibly edited), hardened."""
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        try:
            return etree.fromstring(data, parser)
        except etree.XMLSyntaxError as error:
            raise EdxmlError(DOCUMENT, f"not well-formed XML: {error.msg}") from None

    def write(self, root: Any, out: IO[bytes]) -> int:
        """Write ``root``'s document as a UTF-8 package (with the XML declaration the SDKs write
        and a final line break), the long runs streamed back in; returns the bytes written."""
        pieces = itertools.chain(
            (b'<?xml version="1.0" encoding="UTF-8"?>\n',),
            self._substituted(self.serialize(root), _XML_TEXT),
            (b"\n",),
        )
        written = 0
        for piece in pieces:
            out.write(piece)
            written += len(piece)
        return written

    def _substituted(self, small: bytes, escapes: tuple[tuple[bytes, bytes], ...]) -> Iterator[bytes]:
        position = 0
        for match in _PLACEHOLDER.finditer(small):
            if match.group(1) != self._nonce:
                continue  # the shape, but not this reading's: text like any other
            yield small[position : match.start()]
            index = int(match.group(2))
            if index >= len(self.runs):
                raise EdxmlError(DOCUMENT, "damaged placeholder in the package's tree")
            yield from self.runs[index].chunks(escapes)
            position = match.end()
        yield small[position:]


@contextlib.contextmanager
def _without(element: Any) -> Iterator[None]:
    """``element`` out of its tree for the duration; its tail (text after it, which is not
    part of it) joins the text before it, and everything is put back on exit."""
    if element is None:
        yield
        return
    parent = element.getparent()
    previous = element.getprevious()
    index = parent.index(element)
    tail = element.tail or ""
    before = previous.tail if previous is not None else parent.text
    if previous is not None:
        previous.tail = (before or "") + tail
    else:
        parent.text = (before or "") + tail
    parent.remove(element)
    try:
        yield
    finally:
        if previous is not None:
            previous.tail = before
        else:
            parent.text = before
        parent.insert(index, element)
        element.tail = tail or None


def read_skeleton(
    source: bytes | Path | Iterable[bytes],
    *,
    policy: ParsePolicy,
    warnings: list[str] | None = None,
    spill_dir: Path | None = None,
) -> Skeleton:
    """Read a package (bytes, a file, or chunks) as a :class:`Skeleton`; EdxmlError (or
    XmlSecurityError) when it is not well-formed, too large, too deep or carries a DTD."""
    size = -1  # unknown
    if isinstance(source, bytes):
        chunks: Iterable[bytes] = memory_chunks(source)
        size = len(source)
    elif isinstance(source, Path):
        chunks = file_chunks(source, FEED_BYTES)
        size = source.stat().st_size
    else:
        chunks = source
    small = 0 <= size <= SPILL_BYTES  # no run can be long: no lexer needed
    token = new_token()
    parser = etree.XMLPullParser(
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        remove_pis=False,
    )
    guard = ChunkGuard(policy, warnings if warnings is not None else [])
    diverter: _RunDiverter | None = None
    depth = count = 0
    root: Any = None

    def parse(pieces: list[bytes]) -> None:
        nonlocal depth, count, root
        for piece in pieces:
            parser.feed(piece)
            for event, element in parser.read_events():
                if event == "end":
                    depth -= 1
                    continue
                depth += 1
                count += 1
                if depth > policy.max_depth:
                    raise XmlSecurityError(DOCUMENT, f"nesting deeper than {policy.max_depth} levels")
                if count > policy.max_elements:
                    raise XmlSecurityError(DOCUMENT, f"more than {policy.max_elements} elements")
                if root is None:
                    root = element

    try:
        try:
            for chunk in guard(chunks):
                if diverter is None:
                    diverter = _RunDiverter(
                        None if small else _lexable_encoding(chunk),
                        lambda n: placeholder(token, n).encode("ascii"),
                        spill_dir,
                    )
                parse(diverter.feed(chunk))
            if diverter is None:
                raise EdxmlError(DOCUMENT, "no XML content")
            parse(diverter.feed(b"", final=True))
            parser.close()
        except etree.XMLSyntaxError as exc:
            raise EdxmlError(DOCUMENT, f"not well-formed XML: {exc.msg}") from None
        if root is None:
            raise EdxmlError(DOCUMENT, "no root element")
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None:  # what the byte scan cannot see
            raise XmlSecurityError(DOCUMENT, "DTD/DOCTYPE declarations are not allowed")
    except BaseException:
        if diverter is not None:
            diverter.close_files()
        raise
    assert diverter is not None
    return Skeleton(root, diverter.runs, token)
