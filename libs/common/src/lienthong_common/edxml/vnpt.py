"""Status packages in the shape VNPT's EdXML102 builder writes them (VDXP-WIRE.md §6.1).

VDXP clients read status packages with VNPT's own parser, which expects its builder's output:
an ``edXML`` root in the QCVN default namespace, ``edXML:`` from the envelope down, the status
in ``edXMLHeader/MessageHeader`` (no body), 2-space indent, CRLF line ends, empty elements
left out, dates ``yyyy/MM/dd`` and the timestamp ``yyyy/MM/dd HH:mm:ss`` in Vietnam time.
"""

from __future__ import annotations

from typing import Any

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from ._model import LENIENT, NS, EdxmlError, Organization, StaffInfo, StatusPackage
from ._reader import Reader, format_date
from ._status_common import check_status
from .package import format_timestamp

ROOT = "edXML"
ENVELOPE = f"{ROOT}/edXMLEnvelope"
HEADER = f"{ENVELOPE}/edXMLHeader"
MESSAGE = f"{HEADER}/MessageHeader"

# Child order as the builder writes it (com.vnpt.xml.base.header.*).
_FROM_FIELDS = (
    ("OrganId", "organ_id"),
    ("OrganizationInCharge", "organization_in_charge"),
    ("OrganName", "organ_name"),
    ("OrganAdd", "organ_add"),
    ("Email", "email"),
    ("Telephone", "telephone"),
    ("Fax", "fax"),
    ("Website", "website"),
)
_STAFF_FIELDS = (
    ("Department", "department"),
    ("DepartmentId", "department_id"),
    ("Staff", "staff"),
    ("StaffId", "staff_id"),
    ("Email", "email"),
    ("Mobile", "mobile"),
)


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _text(value: str) -> str:
    # The builder trims text (JDOM's pretty format); a lone CR would be written as &#13;.
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def _sub(parent: Any, name: str, value: str | None = None) -> Any:
    """Append ``name``; with a ``value`` argument, only if it is not empty (the builder omits those)."""
    if value is not None:
        value = _text(value)
        if not value:
            return None
    element = etree.SubElement(parent, _q(name))
    if value is not None:
        try:
            element.text = value
        except ValueError as exc:  # control characters XML 1.0 cannot carry
            raise EdxmlError(f"{MESSAGE}/{name}", f"cannot be written in XML: {exc}") from None
    return element


def _group(
    parent: Any, name: str, record: Organization | StaffInfo, fields: tuple[tuple[str, str], ...]
) -> None:
    if not any(_text(getattr(record, attr)) for _tag, attr in fields):
        return
    element = _sub(parent, name)
    for tag, attr in fields:
        _sub(element, tag, getattr(record, attr))


def build_vnpt_status_package(st: StatusPackage) -> bytes:
    """Serialize ``st`` exactly as VNPT's EdXML102 builder writes a status package (unsigned).

    Identifiers are written as given, including ones that are not QCVN codes (a system id
    such as ``vxp.saas.03``, a UUID DocumentId): a status must name its document the way that
    document's sender did. Raises EdxmlError when the addressee, the DocumentId or the sender
    is empty or the status code is not one of the standard's.
    """
    check_status(st, Reader(LENIENT, []), MESSAGE)
    root = etree.Element(_q("edXML"), nsmap={None: NS})
    envelope = etree.SubElement(root, _q("edXMLEnvelope"), nsmap={"edXML": NS})
    message = _sub(_sub(envelope, "edXMLHeader"), "MessageHeader")
    _group(message, "From", st.sender, _FROM_FIELDS)
    response_for = _sub(message, "ResponseFor")
    _sub(response_for, "OrganId", st.response_for_organ_id)
    _sub(response_for, "Code", st.response_for_code)
    _sub(response_for, "DocumentId", st.response_for_document_id)
    if st.response_for_promulgation_date is not None:
        _sub(response_for, "PromulgationDate", format_date(st.response_for_promulgation_date))
    _group(message, "StaffInfo", st.staff, _STAFF_FIELDS)
    _sub(message, "StatusCode", st.status_code)
    _sub(message, "Description", st.description)
    _sub(message, "Timestamp", format_timestamp(st.timestamp))
    body: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=False, pretty_print=True)
    document = b'<?xml version="1.0" encoding="UTF-8"?>\n' + body
    return document.replace(b"\n", b"\r\n")
