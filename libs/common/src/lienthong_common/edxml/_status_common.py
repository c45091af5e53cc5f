"""What both status shapes share: the message's fields, their checks, timestamp and signature.

The ``edXML:Status`` form keeps them under ``Status/Header/MessageStatus``, VNPT's builder under
``edXML/edXMLEnvelope/edXMLHeader/MessageHeader``; the children and their meaning are the same,
so one reader serves both and only the paths in warnings and errors differ.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from ._model import DSIG_NS, STATUS_CODES, VIETNAM_TZ, EdxmlError, StaffInfo, StatusPackage, StatusShape
from ._reader import EMPTY, MISSING, Reader, parse_date
from ._secure import local_name, namespace
from .package import _check_organization, _parse_organization, _parse_staff

_DASHED_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DOCUMENT_ID_DATE = re.compile(r"[^,]+,([0-9]{4})[/-]([0-9]{2})[/-]([0-9]{2}),.+")


def check_status(st: StatusPackage, rd: Reader, message_path: str) -> None:
    """A status must name its addressee, the document it answers, its sender and a known code."""
    response_for = f"{message_path}/ResponseFor"
    if not st.response_for_organ_id.strip():
        raise EdxmlError(f"{response_for}/OrganId", EMPTY)
    rd.organ_id(st.response_for_organ_id, f"{response_for}/OrganId")
    if not st.response_for_document_id.strip():
        raise EdxmlError(f"{response_for}/DocumentId", EMPTY)
    rd.document_id(st.response_for_document_id, f"{response_for}/DocumentId")
    _check_organization(st.sender, f"{message_path}/From", rd)
    if st.status_code not in STATUS_CODES:
        known = ", ".join(STATUS_CODES)
        raise EdxmlError(f"{message_path}/StatusCode", f"{st.status_code!r} is not a status code ({known})")


def parse_timestamp(rd: Reader, raw: str, path: str) -> datetime.datetime:
    """``yyyy/MM/dd HH:mm:ss`` in Vietnam time; day-first and dashed forms are deviations."""
    layouts = (
        ("%Y/%m/%d %H:%M:%S", ""),
        ("%d/%m/%Y %H:%M:%S", "dd/MM/yyyy HH:mm:ss"),
        ("%Y-%m-%d %H:%M:%S", "yyyy-MM-dd HH:mm:ss"),
    )
    for layout, deviant in layouts:
        try:
            value = datetime.datetime.strptime(raw, layout)
        except ValueError:
            continue
        if deviant:
            rd.deviation(path, f"{raw!r} is {deviant}, not yyyy/MM/dd HH:mm:ss")
        return value.replace(tzinfo=VIETNAM_TZ)
    raise EdxmlError(path, f"{raw!r} is not a timestamp in yyyy/MM/dd HH:mm:ss form")


def _response_date(rd: Reader, raw: str, path: str) -> datetime.date | None:
    """``yyyy/MM/dd`` as the standard writes it; ``yyyy-MM-dd`` read as a deviation."""
    raw = raw.strip()
    if not raw:
        return None
    if _DASHED_DATE.fullmatch(raw):
        rd.deviation(path, f"{raw!r} is yyyy-MM-dd, not yyyy/MM/dd")
        raw = raw.replace("-", "/")
    return parse_date(raw, path)


def _document_id_date(document_id: str) -> datetime.date | None:
    match = _DOCUMENT_ID_DATE.fullmatch(document_id)
    if match is None:
        return None
    try:
        return datetime.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def _status_code(rd: Reader, raw: str, path: str) -> str:
    # Some senders write the code as a number ("3"); the standard's codes are two digits.
    if raw.isascii() and raw.isdigit() and len(raw) == 1:
        rd.deviation(path, f"{raw!r} is not two digits; read as {raw.zfill(2)!r}")
        return raw.zfill(2)
    return raw


def signature_present(rd: Reader, header: Any, header_path: str) -> bool:
    """A ``Signature`` child in either namespace (the QCVN one is a deviation); absent is
    a warning when lenient and refused when strict unless the policy waives signatures."""
    for element in header:
        if isinstance(element.tag, str) and local_name(element) == "Signature":
            if namespace(element) != DSIG_NS:
                rd.deviation(
                    f"{header_path}/Signature",
                    f"Signature is in namespace {namespace(element)!r}, not XML-DSig",
                )
            return True
    if rd.policy.lenient:
        rd.warnings.append(f"{header_path}/Signature: missing; the status is unsigned")
    elif rd.policy.require_signature:
        raise EdxmlError(f"{header_path}/Signature", MISSING)
    return False


def read_status_message(
    rd: Reader, message: Any, header: Any, *, message_path: str, header_path: str, shape: StatusShape
) -> StatusPackage:
    """The status in ``message`` (children in any order), checked under ``rd``'s policy.

    A PromulgationDate that contradicts the date inside ResponseFor/DocumentId is only a
    warning: the DocumentId names the document, the date beside it is informative.
    """
    response_path = f"{message_path}/ResponseFor"
    response_for = rd.require(message, "ResponseFor", message_path)
    document_id = rd.required_text(response_for, "DocumentId", response_path)
    date_path = f"{response_path}/PromulgationDate"
    promulgation_date = _response_date(rd, rd.text(response_for, "PromulgationDate"), date_path)
    named = _document_id_date(document_id)
    if promulgation_date is not None and named is not None and named != promulgation_date:
        rd.warnings.append(
            f"{date_path}: {promulgation_date:%Y/%m/%d} contradicts the date in DocumentId "
            f"({named:%Y/%m/%d}); the DocumentId names the document"
        )
    staff = rd.child(message, "StaffInfo")
    st = StatusPackage(
        response_for_organ_id=rd.required_text(response_for, "OrganId", response_path),
        response_for_document_id=document_id,
        response_for_code=rd.text(response_for, "Code").strip(),
        response_for_promulgation_date=promulgation_date,
        sender=_parse_organization(rd, rd.require(message, "From", message_path), f"{message_path}/From"),
        status_code=_status_code(
            rd, rd.required_text(message, "StatusCode", message_path), f"{message_path}/StatusCode"
        ),
        description=rd.text(message, "Description"),
        timestamp=parse_timestamp(
            rd, rd.required_text(message, "Timestamp", message_path), f"{message_path}/Timestamp"
        ),
        staff=_parse_staff(rd, staff) if staff is not None else StaffInfo(),
        warnings=rd.warnings,
        signature_present=signature_present(rd, header, header_path),
        shape=shape,
    )
    check_status(st, rd, message_path)
    return st
