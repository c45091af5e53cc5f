"""Hardened XML reading: no DTDs, no entities, no network, bounded size, depth and breadth."""

from __future__ import annotations

import io
from typing import Any

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from ._model import EdxmlError, ParsePolicy, XmlSecurityError

DOCUMENT = "(document)"
_UTF8_BOM = b"\xef\xbb\xbf"


def strip_preamble(data: bytes, policy: ParsePolicy, warnings: list[str]) -> bytes:
    """Drop stray bytes before the XML declaration (or first tag); strict refuses them."""
    body = data.removeprefix(_UTF8_BOM)
    start = body.find(b"<?xml")
    if start < 0:
        start = body.find(b"<")
    if start < 0:
        raise EdxmlError(DOCUMENT, "no XML content")
    if start == 0:
        return body
    if not policy.lenient:
        raise EdxmlError(DOCUMENT, f"{start} stray bytes before the XML declaration")
    warnings.append(f"{DOCUMENT}: stripped {start} stray bytes before the XML declaration")
    return body[start:]


def parse_xml(data: bytes, policy: ParsePolicy, warnings: list[str]) -> Any:
    """Parse ``data`` safely and return the root element (an lxml ``_Element``)."""
    if len(data) > policy.max_bytes:
        raise XmlSecurityError(DOCUMENT, f"{len(data)} bytes exceeds the limit of {policy.max_bytes}")
    data = strip_preamble(data, policy, warnings)
    # Refuse DTDs outright, before the parser sees them: internal subsets carry XXE and
    # entity-expansion (billion laughs) payloads, and no edXML package needs one.
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XmlSecurityError(DOCUMENT, "DTD/DOCTYPE declarations are not allowed")
    depth = 0
    count = 0
    events = etree.iterparse(
        io.BytesIO(data),
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    root: Any = None
    try:
        for event, element in events:
            if event == "start":
                depth += 1
                count += 1
                if depth > policy.max_depth:
                    raise XmlSecurityError(DOCUMENT, f"nesting deeper than {policy.max_depth} levels")
                if count > policy.max_elements:
                    raise XmlSecurityError(DOCUMENT, f"more than {policy.max_elements} elements")
                if root is None:
                    root = element
            else:
                depth -= 1
    except etree.XMLSyntaxError as exc:
        raise EdxmlError(DOCUMENT, f"not well-formed XML: {exc.msg}") from None
    if root is None:
        raise EdxmlError(DOCUMENT, "no root element")
    # Belt and braces for encodings the byte scan above cannot see (UTF-16 input).
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise XmlSecurityError(DOCUMENT, "DTD/DOCTYPE declarations are not allowed")
    return root


def local_name(element: Any) -> str:
    return str(etree.QName(element).localname)


def namespace(element: Any) -> str | None:
    ns = etree.QName(element).namespace
    return None if ns is None else str(ns)


def is_element(node: Any) -> bool:
    return isinstance(node.tag, str)


def serialize(root: Any) -> bytes:
    """UTF-8 with the double-quoted declaration the SDKs write."""
    body: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=False, pretty_print=True)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body
