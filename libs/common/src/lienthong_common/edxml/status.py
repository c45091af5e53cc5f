"""Status packages: a recipient (or the sender, for 13) reports what became of a document.

They travel in two shapes, both read here: this platform's ``edXML:Status`` root, and the
``edXML`` envelope VNPT's builder writes (status in ``MessageHeader``, no body), which is what
VDXP clients send and expect back (:func:`lienthong_common.edxml.vnpt.build_vnpt_status_package`).
"""

from __future__ import annotations

import io
from typing import Any

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from ._model import (
    LENIENT,
    NS,
    STATUS_SHAPE_STATUS,
    STATUS_SHAPE_VNPT,
    STRICT,
    EdxmlError,
    ParsePolicy,
    StatusPackage,
)
from ._reader import Reader, format_date
from ._secure import parse_xml, serialize, strip_preamble
from ._status_common import check_status, read_status_message
from .package import _build_organization, _build_staff, _q, _sub, format_timestamp

ROOT = "Status"
HEADER = f"{ROOT}/Header"
MESSAGE = f"{HEADER}/MessageStatus"
VNPT_ENVELOPE = "edXML/edXMLEnvelope"
VNPT_HEADER = f"{VNPT_ENVELOPE}/edXMLHeader"
VNPT_MESSAGE = f"{VNPT_HEADER}/MessageHeader"


def build_status_package(st: StatusPackage) -> bytes:
    """Serialize a status package in the ``edXML:Status`` form (unsigned); raises EdxmlError if invalid."""
    check_status(st, Reader(STRICT, []), MESSAGE)
    root = etree.Element(_q("Status"), nsmap={"edXML": NS})
    message = _sub(_sub(root, "Header"), "MessageStatus")
    response_for = _sub(message, "ResponseFor")
    _sub(response_for, "OrganId", st.response_for_organ_id)
    _sub(response_for, "Code", st.response_for_code)
    if st.response_for_promulgation_date is not None:
        _sub(response_for, "PromulgationDate", format_date(st.response_for_promulgation_date))
    _sub(response_for, "DocumentId", st.response_for_document_id)
    _build_organization(message, "From", st.sender)
    _sub(message, "StatusCode", st.status_code)
    _sub(message, "Description", st.description)
    _sub(message, "Timestamp", format_timestamp(st.timestamp))
    _build_staff(message, st.staff)
    return serialize(root)


def parse_status_package(data: bytes, *, policy: ParsePolicy = LENIENT) -> StatusPackage:
    """Read a status package in either shape; deviations the policy accepts are in ``warnings``.

    An ``edXML`` package is a status only if its MessageHeader carries a StatusCode and it has
    no body; a document package is refused here with the reason (send it as a document).
    """
    warnings: list[str] = []
    root = parse_xml(data, policy, warnings)
    rd = Reader(policy, warnings)
    if root.tag == _q("Status"):
        header = rd.require(root, "Header", ROOT)
        message = rd.require(header, "MessageStatus", HEADER)
        return read_status_message(
            rd, message, header, message_path=MESSAGE, header_path=HEADER, shape=STATUS_SHAPE_STATUS
        )
    if root.tag == _q("edXML"):
        envelope = rd.require(root, "edXMLEnvelope", "edXML")
        header = rd.require(envelope, "edXMLHeader", VNPT_ENVELOPE)
        message = rd.require(header, "MessageHeader", VNPT_HEADER)
        if rd.child(message, "StatusCode") is None or rd.child(envelope, "edXMLBody") is not None:
            raise EdxmlError(
                VNPT_MESSAGE,
                "this is a document package (no StatusCode, or an edXMLBody), not a status package;"
                " send it as messagetype=edoc / to the documents endpoint",
            )
        return read_status_message(
            rd, message, header, message_path=VNPT_MESSAGE, header_path=VNPT_HEADER, shape=STATUS_SHAPE_VNPT
        )
    raise EdxmlError(ROOT, f"root element is {root.tag!r}, expected Status or edXML in namespace {NS}")


def is_status_package(data: bytes) -> bool:
    """True for a status package in either shape: root ``Status``, or an ``edXML`` whose
    MessageHeader has a StatusCode and which has no ``edXMLBody``.

    Cheap: reads only as far as it must (a document's MessageHeader, at most a status's few
    elements), refuses DTDs like the full reader, and says False for anything malformed.
    """
    try:
        body = strip_preamble(data, LENIENT, [])
    except EdxmlError:
        return False
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        return False
    events = etree.iterparse(
        io.BytesIO(body),
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )
    return _scan_for_status(events)


def _scan_for_status(events: Any) -> bool:
    depth = 0
    has_status_code = False
    try:
        for event, element in events:
            if event == "end":
                depth -= 1
                if element.tag == _q("MessageHeader") and not has_status_code:
                    return False  # a document's header: no need to read its attachments
                continue
            depth += 1
            if depth == 1:
                if element.tag == _q("Status"):
                    return True
                if element.tag != _q("edXML"):
                    return False
            elif element.tag == _q("edXMLBody"):
                return False
            elif depth == 5 and element.tag == _q("StatusCode"):
                has_status_code = True  # edXML/edXMLEnvelope/edXMLHeader/MessageHeader/StatusCode
    except etree.XMLSyntaxError:
        return False
    return has_status_code
