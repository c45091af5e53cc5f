"""edXML (QCVN 102:2016) packages: strict writing, policy-driven hardened reading.

Reading is lenient by default: deviations real senders produce (non-QCVN agency codes, UUID
DocumentIds, trace hops without an agency, a Signature outside the XML-DSig namespace or none,
stray bytes before the XML) are accepted and listed in ``warnings``. ``STRICT`` refuses them.
Writing is always strict and canonical, so ``build(parse(x)) == x`` for packages built here.
Status packages are read in both shapes in use (``edXML:Status`` and VNPT's ``edXML`` envelope)
and written in either (``build_status_package``, ``build_vnpt_status_package``).
"""

from ._model import (
    BUSINESS_NEW,
    BUSINESS_RECALL,
    BUSINESS_REPLACE,
    BUSINESS_UPDATE,
    DSIG_NS,
    LENIENT,
    NS,
    STATUS_CODES,
    STATUS_SHAPE_STATUS,
    STATUS_SHAPE_VNPT,
    STRICT,
    VIETNAM_TZ,
    Attachment,
    Business,
    EdxmlError,
    EdxmlPackage,
    MessageHeader,
    Organization,
    ParsePolicy,
    ReplacementInfo,
    SignerInfo,
    StaffInfo,
    StatusPackage,
    StatusShape,
    TraceHeader,
    XmlSecurityError,
    document_id_for,
)
from ._stream import decode_base64_span
from .organ_id import is_organ_id, validate_organ_id
from .package import (
    AttachmentFile,
    PackageFile,
    append_trace,
    build_package,
    format_timestamp,
    package_skeleton,
    parse_package,
    read_package_file,
    read_package_metadata,
    write_package,
)
from .status import build_status_package, is_status_package, parse_status_package
from .vnpt import build_vnpt_status_package

__all__ = [
    "BUSINESS_NEW",
    "BUSINESS_RECALL",
    "BUSINESS_REPLACE",
    "BUSINESS_UPDATE",
    "DSIG_NS",
    "LENIENT",
    "NS",
    "STATUS_CODES",
    "STATUS_SHAPE_STATUS",
    "STATUS_SHAPE_VNPT",
    "STRICT",
    "VIETNAM_TZ",
    "Attachment",
    "AttachmentFile",
    "Business",
    "EdxmlError",
    "EdxmlPackage",
    "MessageHeader",
    "Organization",
    "PackageFile",
    "ParsePolicy",
    "ReplacementInfo",
    "SignerInfo",
    "StaffInfo",
    "StatusPackage",
    "StatusShape",
    "TraceHeader",
    "XmlSecurityError",
    "append_trace",
    "build_package",
    "build_status_package",
    "build_vnpt_status_package",
    "decode_base64_span",
    "document_id_for",
    "format_timestamp",
    "is_organ_id",
    "is_status_package",
    "package_skeleton",
    "parse_package",
    "parse_status_package",
    "read_package_file",
    "read_package_metadata",
    "validate_organ_id",
    "write_package",
]
