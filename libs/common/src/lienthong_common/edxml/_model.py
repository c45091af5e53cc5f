"""Data model of edXML packages and status packages (QCVN 102:2016)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Literal

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"

# Vietnam has no daylight saving time; the standard's timestamps are local wall-clock time.
VIETNAM_TZ = datetime.timezone(datetime.timedelta(hours=7), "ICT")


class EdxmlError(ValueError):
    """A package that does not conform; ``path`` names the element, ``reason`` says why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class XmlSecurityError(EdxmlError):
    """Input refused before or while parsing: DTD, entities, size, depth or element count."""


@dataclass(frozen=True)
class Organization:
    organ_id: str
    organ_name: str = ""
    organization_in_charge: str = ""
    organ_add: str = ""
    email: str = ""
    telephone: str = ""
    fax: str = ""
    website: str = ""


@dataclass(frozen=True)
class SignerInfo:
    competence: str = ""
    position: str = ""
    full_name: str = ""


@dataclass(frozen=True)
class StaffInfo:
    """The clerk who handled a document (``Bussiness/StaffInfo``, ``Status/StaffInfo``)."""

    department: str = ""
    staff: str = ""
    mobile: str = ""
    email: str = ""
    # Written by VNPT's builder in status packages; the Status form does not carry them.
    department_id: str = ""
    staff_id: str = ""


@dataclass(frozen=True)
class TraceHeader:
    organ_id: str | None
    timestamp: str


@dataclass(frozen=True)
class ReplacementInfo:
    """A document replaced by this one, and the agencies it was sent to."""

    document_id: str
    organ_ids: tuple[str, ...] = ()


BUSINESS_NEW, BUSINESS_RECALL, BUSINESS_UPDATE, BUSINESS_REPLACE = 0, 1, 2, 3


@dataclass(frozen=True)
class Business:
    """``Bussiness`` (spelled so by the standard): 0 new, 1 recall, 2 update, 3 replace."""

    doc_type: int = BUSINESS_NEW
    reason: str = ""
    document_id: str = ""
    paper: int | None = None
    staff: StaffInfo | None = None
    replacements: tuple[ReplacementInfo, ...] = ()


@dataclass(frozen=True)
class Attachment:
    content_id: str
    name: str
    content_type: str
    data: bytes
    description: str = ""


def document_id_for(organ_id: str, date: datetime.date, code_number: str, code_notation: str) -> str:
    """The standard's DocumentId: ``{OrganId},{yyyy/MM/dd},{CodeNumber}/{CodeNotation}``."""
    return f"{organ_id},{date:%Y/%m/%d},{code_number}/{code_notation}"


@dataclass
class MessageHeader:
    sender: Organization
    recipients: list[Organization]
    code_number: str
    code_notation: str
    promulgation_place: str
    promulgation_date: datetime.date
    document_type: int
    document_type_name: str
    subject: str
    content: str = ""
    signer: SignerInfo = field(default_factory=SignerInfo)
    due_date: datetime.date | None = None
    to_places: list[str] = field(default_factory=list)
    priority: int = 0
    sphere_of_promulgation: str = ""
    promulgation_amount: int | None = None
    page_amount: int | None = None
    steering_type: int | None = None
    document_id: str = ""

    def __post_init__(self) -> None:
        if not self.document_id:
            self.document_id = document_id_for(
                self.sender.organ_id, self.promulgation_date, self.code_number, self.code_notation
            )


@dataclass
class EdxmlPackage:
    header: MessageHeader
    traces: list[TraceHeader] = field(default_factory=list)
    business: Business = field(default_factory=Business)
    attachments: list[Attachment] = field(default_factory=list)
    # Deviations the lenient policy accepted; not compared, so readings of one document are equal.
    warnings: list[str] = field(default_factory=list, compare=False)
    signature_present: bool = False


STATUS_CODES: dict[str, str] = {
    "01": "arrived",
    "02": "refused",
    "03": "accepted",
    "04": "assigned",
    "05": "in progress",
    "06": "done",
    "13": "sender asks to recall",
    "15": "recall/update accepted",
    "16": "recall/update refused",
}


# The two shapes a status package travels in: this platform's ``edXML:Status`` root, and
# VNPT's builder's ``edXML`` envelope whose MessageHeader carries the status (VDXP-WIRE §6.1).
StatusShape = Literal["status", "vnpt"]
STATUS_SHAPE_STATUS: StatusShape = "status"
STATUS_SHAPE_VNPT: StatusShape = "vnpt"


@dataclass
class StatusPackage:
    """A business status about one document, sent back along the axis.

    ``response_for_organ_id`` is the addressee: the sender of the document for 01..16, the
    recipient for 13 (the sender asking to take it back); ``response_for_document_id`` always
    names the document as its sender promulgated it.
    """

    response_for_organ_id: str
    response_for_document_id: str
    sender: Organization
    status_code: str
    description: str
    timestamp: datetime.datetime  # naive values are read as Vietnam local time
    response_for_code: str = ""  # "CodeNumber/CodeNotation" of the document, e.g. "7816/VPCP-TTĐT"
    response_for_promulgation_date: datetime.date | None = None
    staff: StaffInfo = field(default_factory=StaffInfo)
    warnings: list[str] = field(default_factory=list, compare=False)
    signature_present: bool = False
    # Which shape it was read from; not compared, so one status read from either shape is equal.
    shape: StatusShape = field(default=STATUS_SHAPE_STATUS, compare=False)


@dataclass(frozen=True)
class ParsePolicy:
    """How tolerant reading is. Lenient records each accepted deviation as a warning."""

    lenient: bool = True
    max_bytes: int = 50 * 1024 * 1024
    max_depth: int = 64
    max_elements: int = 100_000
    # Strict reading rejects a package without an XML-DSig Signature unless this is False
    # (e.g. checking a package we built before it is signed).
    require_signature: bool = True


LENIENT = ParsePolicy()
STRICT = ParsePolicy(lenient=False)
