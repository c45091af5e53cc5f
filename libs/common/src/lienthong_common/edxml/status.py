"""Status packages: a recipient (or the sender, for 13) reports what became of a document."""

from __future__ import annotations

import datetime
from typing import Any

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from ._model import (
    LENIENT,
    NS,
    STATUS_CODES,
    STRICT,
    VIETNAM_TZ,
    EdxmlError,
    ParsePolicy,
    StaffInfo,
    StatusPackage,
)
from ._reader import EMPTY, MISSING, Reader, format_date
from ._secure import local_name, namespace, parse_xml, serialize
from .package import (
    _build_organization,
    _build_staff,
    _check_organization,
    _parse_organization,
    _parse_staff,
    _q,
    _sub,
    format_timestamp,
)

ROOT = "Status"
HEADER = f"{ROOT}/Header"
MESSAGE = f"{HEADER}/MessageStatus"
RESPONSE_FOR = f"{MESSAGE}/ResponseFor"


def _check(st: StatusPackage, rd: Reader) -> None:
    if not st.response_for_organ_id.strip():
        raise EdxmlError(f"{RESPONSE_FOR}/OrganId", EMPTY)
    rd.organ_id(st.response_for_organ_id, f"{RESPONSE_FOR}/OrganId")
    if not st.response_for_document_id.strip():
        raise EdxmlError(f"{RESPONSE_FOR}/DocumentId", EMPTY)
    rd.document_id(st.response_for_document_id, f"{RESPONSE_FOR}/DocumentId")
    _check_organization(st.sender, f"{MESSAGE}/From", rd)
    if st.status_code not in STATUS_CODES:
        known = ", ".join(STATUS_CODES)
        raise EdxmlError(f"{MESSAGE}/StatusCode", f"{st.status_code!r} is not a status code ({known})")


def build_status_package(st: StatusPackage) -> bytes:
    """Serialize a status package (unsigned); raises EdxmlError if it is invalid."""
    _check(st, Reader(STRICT, []))
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


def _parse_timestamp(rd: Reader, raw: str, path: str) -> datetime.datetime:
    for layout, standard in (("%Y/%m/%d %H:%M:%S", True), ("%d/%m/%Y %H:%M:%S", False)):
        try:
            value = datetime.datetime.strptime(raw, layout)
        except ValueError:
            continue
        if not standard:
            rd.deviation(path, f"{raw!r} is dd/MM/yyyy HH:mm:ss, not yyyy/MM/dd HH:mm:ss")
        return value.replace(tzinfo=VIETNAM_TZ)
    raise EdxmlError(path, f"{raw!r} is not a timestamp in yyyy/MM/dd HH:mm:ss form")


def _signature_present(rd: Reader, header: Any) -> bool:
    for element in header:
        if isinstance(element.tag, str) and local_name(element) == "Signature":
            if namespace(element) != "http://www.w3.org/2000/09/xmldsig#":
                rd.deviation(
                    f"{HEADER}/Signature",
                    f"Signature is in namespace {namespace(element)!r}, not XML-DSig",
                )
            return True
    if rd.policy.lenient:
        rd.warnings.append(f"{HEADER}/Signature: missing; the status is unsigned")
    elif rd.policy.require_signature:
        raise EdxmlError(f"{HEADER}/Signature", MISSING)
    return False


def parse_status_package(data: bytes, *, policy: ParsePolicy = LENIENT) -> StatusPackage:
    """Read a status package; deviations the policy accepts are listed in ``warnings``."""
    warnings: list[str] = []
    root = parse_xml(data, policy, warnings)
    if root.tag != _q("Status"):
        raise EdxmlError(ROOT, f"root element is {root.tag!r}, expected Status in namespace {NS}")
    rd = Reader(policy, warnings)
    header = rd.require(root, "Header", ROOT)
    message = rd.require(header, "MessageStatus", HEADER)
    response_for = rd.require(message, "ResponseFor", MESSAGE)
    staff = rd.child(message, "StaffInfo")
    st = StatusPackage(
        response_for_organ_id=rd.required_text(response_for, "OrganId", RESPONSE_FOR),
        response_for_document_id=rd.required_text(response_for, "DocumentId", RESPONSE_FOR),
        response_for_code=rd.text(response_for, "Code").strip(),
        response_for_promulgation_date=rd.date(
            response_for, "PromulgationDate", RESPONSE_FOR, required=False
        ),
        sender=_parse_organization(rd, rd.require(message, "From", MESSAGE), f"{MESSAGE}/From"),
        status_code=rd.required_text(message, "StatusCode", MESSAGE),
        description=rd.text(message, "Description"),
        timestamp=_parse_timestamp(
            rd, rd.required_text(message, "Timestamp", MESSAGE), f"{MESSAGE}/Timestamp"
        ),
        staff=_parse_staff(rd, staff) if staff is not None else StaffInfo(),
        warnings=warnings,
        signature_present=_signature_present(rd, header),
    )
    _check(st, rd)
    return st
