"""edXML document packages: build strictly, parse under a policy, add trace hops."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import io
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from ._model import (
    BUSINESS_NEW,
    BUSINESS_RECALL,
    BUSINESS_REPLACE,
    DSIG_NS,
    LENIENT,
    NS,
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
    TraceHeader,
)
from ._reader import EMPTY, MISSING, Reader, format_date
from ._secure import local_name, namespace, parse_xml, serialize
from ._skeleton import Base64Run, Skeleton, new_token, placeholder
from ._stream import Payload, file_chunks, memory_chunks, parse_stream
from .content_type import ZIP_LABELS, real_content_type

ROOT = "edXML"
ENVELOPE = f"{ROOT}/edXMLEnvelope"
HEADER = f"{ENVELOPE}/edXMLHeader"
MESSAGE = f"{HEADER}/MessageHeader"
TRACES = f"{HEADER}/TraceHeaderList"
BUSINESS = f"{TRACES}/Bussiness"
MANIFEST = f"{ENVELOPE}/edXMLBody/edXMLManifest"
ENCODED = f"{ROOT}/AttachmentEncoded"

_ORGANIZATION_FIELDS = (
    ("OrganId", "organ_id"),
    ("OrganizationInCharge", "organization_in_charge"),
    ("OrganName", "organ_name"),
    ("OrganAdd", "organ_add"),
    ("Email", "email"),
    ("Telephone", "telephone"),
    ("Fax", "fax"),
    ("Website", "website"),
)
_BUSINESS_VERBS = {1: "a recall", 2: "an update", 3: "a replacement"}
_NULL_TEXTS = {"", "null", "NULL", "Null"}


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


# ---------------------------------------------------------------------------------------------
# checks shared by build (always strict) and parse (under the caller's policy)
# ---------------------------------------------------------------------------------------------
def _check_organization(org: Organization, path: str, rd: Reader) -> None:
    if not org.organ_id.strip():
        raise EdxmlError(f"{path}/OrganId", EMPTY)
    rd.organ_id(org.organ_id, f"{path}/OrganId")


def _check(pkg: EdxmlPackage, rd: Reader) -> None:
    h = pkg.header
    _check_organization(h.sender, f"{MESSAGE}/From", rd)
    if not h.recipients:
        raise EdxmlError(f"{MESSAGE}/To", "at least one recipient is required")
    for i, org in enumerate(h.recipients, 1):
        _check_organization(org, f"{MESSAGE}/To[{i}]", rd)
    if not h.code_number.strip():
        raise EdxmlError(f"{MESSAGE}/Code/CodeNumber", EMPTY)
    if not h.subject.strip():
        raise EdxmlError(f"{MESSAGE}/Subject", EMPTY)
    if not 0 <= h.priority <= 4:
        raise EdxmlError(f"{MESSAGE}/OtherInfo/Priority", f"{h.priority} is outside 0..4")
    rd.document_id(h.document_id, f"{MESSAGE}/DocumentId")

    for i, trace in enumerate(pkg.traces, 1):
        path = f"{TRACES}/TraceHeader[{i}]/OrganId"
        if trace.organ_id is None:
            rd.deviation(path, "trace hop without an agency code")
        else:
            rd.organ_id(trace.organ_id, path)
        if not trace.timestamp.strip():
            raise EdxmlError(f"{TRACES}/TraceHeader[{i}]/Timestamp", EMPTY)

    b = pkg.business
    if not 0 <= b.doc_type <= 3:
        raise EdxmlError(f"{BUSINESS}/BussinessDocType", f"{b.doc_type} is outside 0..3")
    if b.doc_type != BUSINESS_NEW and not b.document_id.strip():
        verb = _BUSINESS_VERBS[b.doc_type]
        raise EdxmlError(f"{BUSINESS}/DocumentId", f"{verb} must name the DocumentId it acts on")
    if b.document_id:
        rd.document_id(b.document_id, f"{BUSINESS}/DocumentId")
    for i, rep in enumerate(b.replacements, 1):
        rd.document_id(rep.document_id, f"{BUSINESS}/ReplacementInfoList/ReplacementInfo[{i}]/DocumentId")

    seen: set[str] = set()
    for i, att in enumerate(pkg.attachments, 1):
        path = f"{ENCODED}/Attachment[{i}]"
        if not att.content_id.startswith("cid:") or len(att.content_id) == 4:
            raise EdxmlError(f"{path}/ContentId", f"{att.content_id!r} must be 'cid:' and an identifier")
        if att.content_id in seen:
            raise EdxmlError(f"{path}/ContentId", f"{att.content_id!r} is used twice")
        seen.add(att.content_id)
        if not att.content_type.strip():
            raise EdxmlError(f"{path}/ContentType", EMPTY)


# ---------------------------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------------------------
def _sub(parent: Any, name: str, text: str | None = None) -> Any:
    element = etree.SubElement(parent, _q(name))
    if text:  # empty values serialize as <x/>, exactly as a re-parsed tree does
        element.text = text
    return element


def _build_organization(parent: Any, name: str, org: Organization) -> None:
    element = _sub(parent, name)
    for tag, attr in _ORGANIZATION_FIELDS:
        _sub(element, tag, getattr(org, attr))


def _build_staff(parent: Any, staff: StaffInfo) -> None:
    element = _sub(parent, "StaffInfo")
    _sub(element, "Department", staff.department)
    _sub(element, "Staff", staff.staff)
    _sub(element, "Mobile", staff.mobile)
    _sub(element, "Email", staff.email)


def _build_message_header(parent: Any, h: MessageHeader) -> None:
    mh = _sub(parent, "MessageHeader")
    _build_organization(mh, "From", h.sender)
    for org in h.recipients:
        _build_organization(mh, "To", org)
    _sub(mh, "DocumentId", h.document_id)
    code = _sub(mh, "Code")
    _sub(code, "CodeNumber", h.code_number)
    _sub(code, "CodeNotation", h.code_notation)
    info = _sub(mh, "PromulgationInfo")
    _sub(info, "Place", h.promulgation_place)
    _sub(info, "PromulgationDate", format_date(h.promulgation_date))
    doc_type = _sub(mh, "DocumentType")
    _sub(doc_type, "Type", str(h.document_type))
    _sub(doc_type, "TypeName", h.document_type_name)
    _sub(mh, "Subject", h.subject)
    _sub(mh, "Content", h.content)
    signer = _sub(mh, "SignerInfo")
    _sub(signer, "Competence", h.signer.competence)
    _sub(signer, "Position", h.signer.position)
    _sub(signer, "FullName", h.signer.full_name)
    if h.due_date is not None:
        _sub(mh, "DueDate", format_date(h.due_date))
    other = _sub(mh, "OtherInfo")
    _sub(other, "Priority", str(h.priority))
    _sub(other, "SphereOfPromulgation", h.sphere_of_promulgation)
    if h.promulgation_amount is not None:
        _sub(other, "PromulgationAmount", str(h.promulgation_amount))
    if h.page_amount is not None:
        _sub(other, "PageAmount", str(h.page_amount))
    if h.steering_type is not None:
        _sub(mh, "SteeringType", str(h.steering_type))
    if h.to_places:
        places = _sub(mh, "ToPlaces")
        for place in h.to_places:
            _sub(places, "Place", place)


def _build_business(parent: Any, b: Business) -> None:
    element = _sub(parent, "Bussiness")
    _sub(element, "BussinessDocType", str(b.doc_type))
    _sub(element, "BussinessDocReason", b.reason)
    if b.document_id:
        _sub(element, "DocumentId", b.document_id)
    if b.paper is not None:
        _sub(element, "Paper", str(b.paper))
    if b.staff is not None:
        _build_staff(element, b.staff)
    if b.replacements:
        reps = _sub(element, "ReplacementInfoList")
        for rep in b.replacements:
            info = _sub(reps, "ReplacementInfo")
            _sub(info, "DocumentId", rep.document_id)
            organs = _sub(info, "OrganIdList")
            for organ_id in rep.organ_ids:
                _sub(organs, "OrganId", organ_id)


def build_package(pkg: EdxmlPackage) -> bytes:
    """Serialize ``pkg`` as a canonical, unsigned edXML package; raises EdxmlError if invalid."""
    out = io.BytesIO()
    write_package(pkg, out)
    return out.getvalue()


def write_package(pkg: EdxmlPackage, out: IO[bytes], *, files: Mapping[str, Path] | None = None) -> int:
    """Write ``pkg`` to ``out`` exactly as :func:`build_package` builds it; returns the bytes
    written. An attachment whose content id is in ``files`` is read from that file (its ``data``
    is ignored) and base64-encoded as it streams, so memory stays small whatever its size."""
    with package_skeleton(pkg, files=files) as skeleton:
        return skeleton.write(skeleton.root, out)


def package_skeleton(pkg: EdxmlPackage, *, files: Mapping[str, Path] | None = None) -> Skeleton:
    """``pkg`` as a Skeleton (what signing works on): the serialized tree read back with each
    attachment body a placeholder for its base64, from ``data`` or from ``files``."""
    _check(pkg, Reader(STRICT, []))
    if any(t.organ_id is None for t in pkg.traces):  # pragma: no cover - _check raised already
        raise EdxmlError(TRACES, "trace hop without an agency code")
    token = new_token()
    runs = [Base64Run((files or {}).get(att.content_id) or att.data) for att in pkg.attachments]
    root = _build_tree(pkg, [placeholder(token, i) for i in range(len(runs))])
    return Skeleton(Skeleton.reparse(serialize(root)), runs, token)


def _build_tree(pkg: EdxmlPackage, bodies: list[str]) -> Any:
    # The SDKs' shape: unprefixed root in the QCVN default namespace, `edXML:` from the
    # envelope down, and on ContentTransferEncoded. Receivers match these prefixes literally.
    root = etree.Element(_q("edXML"), nsmap={None: NS})
    envelope = etree.SubElement(root, _q("edXMLEnvelope"), nsmap={"edXML": NS})
    header = _sub(envelope, "edXMLHeader")
    _build_message_header(header, pkg.header)
    traces = _sub(header, "TraceHeaderList")
    for trace in pkg.traces:
        element = _sub(traces, "TraceHeader")
        _sub(element, "OrganId", trace.organ_id)
        _sub(element, "Timestamp", trace.timestamp)
    _build_business(traces, pkg.business)
    manifest = _sub(_sub(envelope, "edXMLBody"), "edXMLManifest")
    manifest.set("version", "1.0")
    for att in pkg.attachments:
        ref = _sub(manifest, "Reference")
        _sub(ref, "ContentId", att.content_id)
        _sub(ref, "ContentType", att.content_type)
        _sub(ref, "Description", att.description)
        _sub(ref, "AttachmentName", att.name)
    if pkg.attachments:
        encoded = _sub(root, "AttachmentEncoded")
        for att, body in zip(pkg.attachments, bodies, strict=True):
            element = _sub(encoded, "Attachment")
            _sub(element, "ContentId", att.content_id)
            _sub(element, "AttachmentName", att.name)
            _sub(element, "Description", att.description)
            _sub(element, "ContentType", att.content_type)
            data = etree.SubElement(element, _q("ContentTransferEncoded"), nsmap={"edXML": NS})
            data.text = body
    return root


# ---------------------------------------------------------------------------------------------
# parse
# ---------------------------------------------------------------------------------------------
def _parse_organization(rd: Reader, element: Any, path: str) -> Organization:
    organ_id = rd.required_text(element, "OrganId", path)
    values = {attr: rd.text(element, tag) for tag, attr in _ORGANIZATION_FIELDS[1:]}
    return Organization(organ_id=organ_id, **values)


def _parse_staff(rd: Reader, element: Any) -> StaffInfo:
    return StaffInfo(
        department=rd.text(element, "Department"),
        staff=rd.text(element, "Staff"),
        mobile=rd.text(element, "Mobile"),
        email=rd.text(element, "Email"),
        department_id=rd.text(element, "DepartmentId"),
        staff_id=rd.text(element, "StaffId"),
    )


def _parse_message_header(rd: Reader, mh: Any) -> MessageHeader:
    sender = _parse_organization(rd, rd.require(mh, "From", MESSAGE), f"{MESSAGE}/From")
    to_elements = rd.children(mh, "To")
    if not to_elements:
        raise EdxmlError(f"{MESSAGE}/To", "at least one recipient is required")
    recipients = [_parse_organization(rd, el, f"{MESSAGE}/To[{i}]") for i, el in enumerate(to_elements, 1)]
    code = rd.require(mh, "Code", MESSAGE)
    code_number = rd.required_text(code, "CodeNumber", f"{MESSAGE}/Code")
    info = rd.require(mh, "PromulgationInfo", MESSAGE)
    promulgation_date = rd.date(info, "PromulgationDate", f"{MESSAGE}/PromulgationInfo", required=True)
    assert promulgation_date is not None
    subject_element = rd.require(mh, "Subject", MESSAGE)
    if not (subject_element.text or "").strip():
        raise EdxmlError(f"{MESSAGE}/Subject", EMPTY)

    doc_type = rd.child(mh, "DocumentType")
    signer = rd.child(mh, "SignerInfo")
    other = rd.child(mh, "OtherInfo")
    places = rd.child(mh, "ToPlaces")
    priority = rd.integer(other, "Priority", f"{MESSAGE}/OtherInfo") if other is not None else None
    if priority is not None and not 0 <= priority <= 4:
        raise EdxmlError(f"{MESSAGE}/OtherInfo/Priority", f"{priority} is outside 0..4")
    return MessageHeader(
        sender=sender,
        recipients=recipients,
        code_number=code_number,
        code_notation=rd.text(code, "CodeNotation").strip(),
        promulgation_place=rd.text(info, "Place"),
        promulgation_date=promulgation_date,
        document_type=(rd.integer(doc_type, "Type", f"{MESSAGE}/DocumentType") or 0)
        if doc_type is not None
        else 0,
        document_type_name=rd.text(doc_type, "TypeName") if doc_type is not None else "",
        subject=str(subject_element.text),
        content=rd.text(mh, "Content"),
        signer=SignerInfo(
            competence=rd.text(signer, "Competence"),
            position=rd.text(signer, "Position"),
            full_name=rd.text(signer, "FullName"),
        )
        if signer is not None
        else SignerInfo(),
        due_date=rd.date(mh, "DueDate", MESSAGE, required=False),
        to_places=[str(p.text or "") for p in rd.children(places, "Place")] if places is not None else [],
        priority=priority or 0,
        sphere_of_promulgation=rd.text(other, "SphereOfPromulgation") if other is not None else "",
        promulgation_amount=rd.integer(other, "PromulgationAmount", f"{MESSAGE}/OtherInfo")
        if other is not None
        else None,
        page_amount=rd.integer(other, "PageAmount", f"{MESSAGE}/OtherInfo") if other is not None else None,
        steering_type=rd.integer(mh, "SteeringType", MESSAGE),
        document_id=rd.text(mh, "DocumentId").strip(),
    )


def _parse_traces(rd: Reader, trace_list: Any) -> list[TraceHeader]:
    traces = []
    for element in rd.children(trace_list, "TraceHeader"):
        organ_id = rd.text(element, "OrganId").strip()
        traces.append(
            TraceHeader(
                organ_id=None if organ_id in _NULL_TEXTS else organ_id,
                timestamp=rd.text(element, "Timestamp").strip(),
            )
        )
    return traces


def _parse_business(rd: Reader, trace_list: Any) -> Business:
    element = rd.child(trace_list, "Bussiness")
    if element is None:
        rd.deviation(BUSINESS, f"{MISSING}; read as a new document")
        return Business()
    doc_type = rd.integer(element, "BussinessDocType", BUSINESS)
    if doc_type is None:
        raise EdxmlError(f"{BUSINESS}/BussinessDocType", MISSING)
    staff = rd.child(element, "StaffInfo")
    reps = rd.child(element, "ReplacementInfoList")
    replacements: list[ReplacementInfo] = []
    if reps is not None:
        for info in rd.children(reps, "ReplacementInfo"):
            organs = rd.child(info, "OrganIdList")
            organ_ids = (
                [str(o.text or "").strip() for o in rd.children(organs, "OrganId")]
                if organs is not None
                else []
            )
            replacements.append(ReplacementInfo(rd.text(info, "DocumentId").strip(), tuple(organ_ids)))
    return Business(
        doc_type=doc_type,
        reason=rd.text(element, "BussinessDocReason"),
        document_id=rd.text(element, "DocumentId").strip(),
        paper=rd.integer(element, "Paper", BUSINESS),
        staff=_parse_staff(rd, staff) if staff is not None else None,
        replacements=tuple(replacements),
    )


def _parse_signature(rd: Reader, header: Any) -> bool:
    for element in header:
        if not isinstance(element.tag, str) or local_name(element) != "Signature":
            continue
        if namespace(element) != DSIG_NS:
            rd.deviation(
                f"{HEADER}/Signature",
                f"Signature is in namespace {namespace(element)!r}, not XML-DSig",
            )
        return True
    if rd.policy.lenient:
        rd.warnings.append(f"{HEADER}/Signature: missing; the package is unsigned")
    elif rd.policy.require_signature:
        raise EdxmlError(f"{HEADER}/Signature", MISSING)
    return False


def _payload_bytes(payload: Payload) -> bytes:
    sink = payload.sink
    return sink.getvalue() if isinstance(sink, io.BytesIO) else b""


def _parse_attachments(
    rd: Reader, envelope: Any, root: Any, payloads: dict[int, Payload]
) -> list[Attachment]:
    references: dict[str, Any] = {}
    body = rd.child(envelope, "edXMLBody")
    manifest = rd.child(body, "edXMLManifest") if body is not None else None
    if manifest is not None:
        for i, ref in enumerate(rd.children(manifest, "Reference"), 1):
            references[rd.required_text(ref, "ContentId", f"{MANIFEST}/Reference[{i}]")] = ref
    attachments: list[Attachment] = []
    encoded = rd.child(root, "AttachmentEncoded")
    for i, element in enumerate(rd.children(encoded, "Attachment") if encoded is not None else [], 1):
        path = f"{ENCODED}/Attachment[{i}]"
        content_id = rd.required_text(element, "ContentId", path)
        content_type = rd.required_text(element, "ContentType", path)
        rd.require(element, "ContentTransferEncoded", path)
        payload = payloads[i]  # the parser decoded the first ContentTransferEncoded
        if payload.error is not None:
            raise EdxmlError(f"{path}/ContentTransferEncoded", payload.error)
        ref = references.pop(content_id, None)
        if ref is None:
            rd.deviation(f"{path}/ContentId", f"{content_id!r} has no Reference in the manifest")
        else:
            listed = rd.text(ref, "ContentType").strip()
            if listed and listed != content_type:
                rd.deviation(f"{path}/ContentType", f"{content_type!r} but the manifest says {listed!r}")
        real = real_content_type(content_type, payload.head)
        if real != content_type:
            rd.deviation(
                f"{path}/ContentType", f"labelled {content_type!r} but the bytes are {real}; read as {real}"
            )
            content_type = real
        if content_type.strip().lower() in ZIP_LABELS:
            rd.warnings.append(f"{path}: {content_id} is zipped ({content_type}); kept as received")
        name = rd.text(element, "AttachmentName") or (
            rd.text(ref, "AttachmentName") if ref is not None else ""
        )
        description = rd.text(element, "Description") or (
            rd.text(ref, "Description") if ref is not None else ""
        )
        attachments.append(
            Attachment(
                content_id=content_id,
                name=name,
                content_type=content_type,
                data=_payload_bytes(payload),
                description=description,
            )
        )
    for content_id in references:
        raise EdxmlError(f"{MANIFEST}/Reference", f"{content_id!r} is listed but no Attachment carries it")
    return attachments


def parse_package(data: bytes, *, policy: ParsePolicy = LENIENT) -> EdxmlPackage:
    """Read an edXML package; deviations the policy accepts are listed in ``warnings``."""
    warnings: list[str] = []
    root, payloads = parse_stream(
        memory_chunks(data),
        size=len(data),
        policy=policy,
        warnings=warnings,
        open_sink=lambda _index: Payload(sink=io.BytesIO()),
    )
    return _read_tree(root, payloads, policy, warnings)


def read_package_metadata(source: bytes | Path, *, policy: ParsePolicy = LENIENT) -> EdxmlPackage:
    """Read and check a package (its bytes, or the file holding it) as :func:`parse_package`
    does, without keeping attachment bytes: each body is decoded only to be checked, and comes
    back as ``data == b""``. Memory stays small whatever the package's size."""
    warnings: list[str] = []
    root, payloads = parse_stream(
        memory_chunks(source) if isinstance(source, bytes) else file_chunks(source),
        size=len(source) if isinstance(source, bytes) else source.stat().st_size,
        policy=policy,
        warnings=warnings,
        open_sink=lambda _index: Payload(sink=cast(IO[bytes], _Discard())),
    )
    return _read_tree(root, payloads, policy, warnings)


@dataclass(frozen=True)
class AttachmentFile:
    """An attachment read by :func:`read_package_file`: decoded to a temporary file at
    ``path`` (deleted on exit), or, when its body is plain base64 in the package, left there:
    ``span`` is then the body's (start, end) byte offsets in the package file and ``path`` is
    None (:func:`decode_base64_span` over those bytes gives the attachment back)."""

    content_id: str
    name: str
    content_type: str
    description: str
    path: Path | None
    sha256: str
    size: int
    span: tuple[int, int] | None = None


@dataclass
class PackageFile:
    """A package read from disk: ``package.attachments`` carry no bytes (``data == b""``);
    their contents are in ``attachments``, in the same order."""

    package: EdxmlPackage
    attachments: list[AttachmentFile] = field(default_factory=list)


class _Discard(io.RawIOBase):
    """A sink that keeps nothing (the attachment stays in the package; only its digest counts)."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


@contextlib.contextmanager
def read_package_file(
    path: Path,
    *,
    attachment_dir: Path,
    policy: ParsePolicy = LENIENT,
    spans: bool = False,
    chunks: Iterable[bytes] | None = None,
) -> Iterator[PackageFile]:
    """Read a package from ``path`` in bounded memory, decoding each attachment to a temporary
    file under ``attachment_dir`` as it streams past; the files are removed on exit.

    With ``spans``, attachments whose body is plain base64 are not written anywhere: they come
    back with their ``span`` in the package. If any body is not (an entity, a comment or CDATA
    inside it), the package is read a second time with every attachment decoded to a file, so
    callers see either all spans or all files.

    ``chunks``, when given, are the package's bytes as they arrive, which the caller writes to
    ``path`` as they are taken (all of them on disk once the iteration ends): the first reading
    is from them, so a package being received is read in the same pass; a second reading, if
    one is needed, is from ``path``."""
    if spans:
        with _read_package_file(
            path, attachment_dir=attachment_dir, policy=policy, spans=True, chunks=chunks
        ) as read:
            if all(a.span is not None for a in read.attachments):
                yield read
                return
        chunks = None  # taken by the first reading; the file holds them all now
    with _read_package_file(
        path, attachment_dir=attachment_dir, policy=policy, spans=False, chunks=chunks
    ) as read:
        yield read


@contextlib.contextmanager
def _read_package_file(
    path: Path, *, attachment_dir: Path, policy: ParsePolicy, spans: bool, chunks: Iterable[bytes] | None
) -> Iterator[PackageFile]:
    opened: list[Payload] = []

    def open_sink(_index: int) -> Payload:
        if spans:
            opened.append(Payload(sink=cast(IO[bytes], _Discard())))
            return opened[-1]
        fd, name = tempfile.mkstemp(dir=attachment_dir, prefix="attachment-")
        opened.append(Payload(sink=os.fdopen(fd, "wb"), path=Path(name)))
        return opened[-1]

    if not spans:
        attachment_dir.mkdir(parents=True, exist_ok=True)
    try:
        warnings: list[str] = []
        root, payloads = parse_stream(
            file_chunks(path) if chunks is None else chunks,
            size=path.stat().st_size if chunks is None else 0,
            policy=policy,
            warnings=warnings,
            open_sink=open_sink,
        )
        for payload in payloads.values():
            payload.sink.close()
        pkg = _read_tree(root, payloads, policy, warnings)
        files = [
            AttachmentFile(
                content_id=att.content_id,
                name=att.name,
                content_type=att.content_type,
                description=att.description,
                path=payload.path,
                sha256=payload.sha256,
                size=payload.size,
                span=payload.span if spans else None,
            )
            for att, payload in zip(pkg.attachments, _in_order(payloads), strict=True)
            if payload.path is not None or spans
        ]
        yield PackageFile(package=pkg, attachments=files)
    finally:
        for payload in opened:
            payload.sink.close()
            if payload.path is not None:
                with contextlib.suppress(FileNotFoundError):
                    payload.path.unlink()


def _in_order(payloads: dict[int, Payload]) -> list[Payload]:
    return [payloads[i] for i in sorted(payloads)]


_STATUS_NOT_DOCUMENT = (
    "this is a status package, not a document; send it as messagetype=status"
    " (VDXP) or to the document's status endpoint"
)


def _document_acted_on(rd: Reader, b: Business, named_in_header: str) -> Business:
    """A recall or replacement names the document it acts on in ``Bussiness/DocumentId``;
    VNPT's builder leaves that out and names it elsewhere, read from there as a deviation:
    a replacement in ``ReplacementInfoList/ReplacementInfo/DocumentId``, a recall in
    ``MessageHeader/DocumentId`` (the recall package re-describes the recalled document)."""
    if b.document_id:
        return b
    if b.doc_type == BUSINESS_REPLACE:
        named = list(dict.fromkeys(r.document_id for r in b.replacements if r.document_id))
        if not named:
            return b
        others = f" ({len(named) - 1} more in the list)" if len(named) > 1 else ""
        rd.deviation(
            f"{BUSINESS}/DocumentId",
            f"missing; the replaced document {named[0]!r} is read from"
            f" ReplacementInfoList/ReplacementInfo/DocumentId{others}",
        )
        return dataclasses.replace(b, document_id=named[0])
    if b.doc_type == BUSINESS_RECALL and named_in_header:
        rd.deviation(
            f"{BUSINESS}/DocumentId",
            f"missing; the recalled document {named_in_header!r} is read from MessageHeader/DocumentId",
        )
        return dataclasses.replace(b, document_id=named_in_header)
    return b


def _read_tree(
    root: Any, payloads: dict[int, Payload], policy: ParsePolicy, warnings: list[str]
) -> EdxmlPackage:
    if root.tag == _q("Status"):
        raise EdxmlError(ROOT, f"{_STATUS_NOT_DOCUMENT} (root element Status)")
    if root.tag != _q("edXML"):
        raise EdxmlError(ROOT, f"root element is {root.tag!r}, expected edXML in namespace {NS}")
    rd = Reader(policy, warnings)
    envelope = rd.require(root, "edXMLEnvelope", ROOT)
    header = rd.require(envelope, "edXMLHeader", ENVELOPE)
    message_element = rd.require(header, "MessageHeader", HEADER)
    if rd.child(message_element, "StatusCode") is not None and rd.child(envelope, "edXMLBody") is None:
        raise EdxmlError(MESSAGE, f"{_STATUS_NOT_DOCUMENT} (VNPT's form: a StatusCode and no edXMLBody)")
    message = _parse_message_header(rd, message_element)
    trace_list = rd.child(header, "TraceHeaderList")
    if trace_list is None:
        raise EdxmlError(TRACES, MISSING)
    traces = _parse_traces(rd, trace_list)
    # Only a DocumentId the header carries names a recalled document, not one computed for it.
    named_in_header = rd.text(message_element, "DocumentId").strip()
    business = _document_acted_on(rd, _parse_business(rd, trace_list), named_in_header)
    signature_present = _parse_signature(rd, header)
    pkg = EdxmlPackage(
        header=message,
        traces=traces,
        business=business,
        attachments=_parse_attachments(rd, envelope, root, payloads),
        warnings=warnings,
        signature_present=signature_present,
    )
    _check(pkg, rd)
    return pkg


# ---------------------------------------------------------------------------------------------
# trace hops
# ---------------------------------------------------------------------------------------------
def format_timestamp(value: datetime.datetime) -> str:
    """``yyyy/MM/dd HH:mm:ss`` in Vietnam time (aware values are converted, naive taken as is)."""
    if value.tzinfo is not None:
        value = value.astimezone(VIETNAM_TZ)
    return value.strftime("%Y/%m/%d %H:%M:%S")


def append_trace(data: bytes, organ_id: str, timestamp: datetime.datetime) -> bytes:
    """Add a ``TraceHeader`` hop after the existing ones; the rest of the package is kept."""
    Reader(STRICT, []).organ_id(organ_id, "TraceHeader/OrganId")
    root = parse_xml(data, LENIENT, [])
    rd = Reader(LENIENT, [])
    if root.tag != _q("edXML"):
        raise EdxmlError(ROOT, f"root element is {root.tag!r}, expected edXML in namespace {NS}")
    header = rd.require(rd.require(root, "edXMLEnvelope", ROOT), "edXMLHeader", ENVELOPE)
    trace_list = rd.child(header, "TraceHeaderList")
    if trace_list is None:
        raise EdxmlError(TRACES, MISSING)
    existing = rd.children(trace_list, "TraceHeader")
    stamp = format_timestamp(timestamp)
    if existing:
        # A copy of the previous hop keeps its prefix and indentation.
        hop = copy.deepcopy(existing[-1])
        for extra in [c for c in hop if c.tag not in (_q("OrganId"), _q("Timestamp"))]:
            hop.remove(extra)
        for tag, value in (("OrganId", organ_id), ("Timestamp", stamp)):
            element = rd.child(hop, tag)
            if element is None:
                element = etree.SubElement(hop, _q(tag))
            element.text = value
        existing[-1].addnext(hop)
    else:
        hop = etree.Element(_q("TraceHeader"))
        etree.SubElement(hop, _q("OrganId")).text = organ_id
        etree.SubElement(hop, _q("Timestamp")).text = stamp
        trace_list.insert(0, hop)
        indent = trace_list.text if trace_list.text and not trace_list.text.strip() else None
        if indent is not None:
            hop.text = indent + "  "
            hop[0].tail = indent + "  "
            hop[1].tail = indent
            hop.tail = indent
    return serialize(root)
