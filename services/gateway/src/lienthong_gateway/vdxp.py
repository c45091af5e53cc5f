"""The VDXP-compatible facade under /vdxp/: VNPT's SDK 2.0.1 connects to it unchanged.

A *system* (`XroadVnpt-systemid`) signs each call with its secret (vdxp_wire.py); the directory
checks the HMAC where the secret is kept and says which agencies the system acts for. Every
reply is HTTP 200 with `{status, ErrorCode, ErrorDesc, …}` in ASCII JSON — the SDK ignores HTTP
statuses and reads the body — except 429 and 5xx, which also carry the FAIL body, and
`downloadEdoc`, whose errors are an empty body (the SDK saves any non-empty body as the
package). docs/vdxp.md is the switch-over guide and the mapping of each operation.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import itertools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response, StreamingResponse

from lienthong.directory.v1 import directory_pb2
from lienthong.docstore.v1 import docstore_pb2
from lienthong.routing.v1 import routing_pb2
from lienthong_common import edxml
from lienthong_common.package_limits import base64_size
from lienthong_gateway.auth import Caller
from lienthong_gateway.context import GatewayContext, admit, gateway
from lienthong_gateway.documents import (
    document_party,
    mark_arrived,
    read_body_limited,
    record_status,
    routed_state,
    submit_package,
)
from lienthong_gateway.problems import Problem, from_rpc_error
from lienthong_gateway.status_packages_api import post_status_package
from lienthong_gateway.uploads import received_package, spool_dir
from lienthong_gateway.vdxp_wire import (
    SignedRequest,
    VdxpResponse,
    WireError,
    match_hash_file,
    read_signed_request,
    recipient_codes,
    reply_fail,
    reply_ok,
    vdxp_time,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/vdxp", tags=["vdxp"])

# HTTP statuses that stay HTTP statuses on the facade; every other refusal is 200 + FAIL.
TRANSPORT_STATUSES = frozenset({429, 502, 503, 504})
LISTED = 100  # getReceivedEdocList has no paging: the oldest pending items, this many
SMALL_BODY = 64 * 1024  # every operation but sendEdoc sends `{}`, nothing or a small JSON


@dataclass(frozen=True)
class System:
    """The authenticated VDXP system and what it may act for."""

    system_id: str
    agency_codes: tuple[str, ...]
    admin: bool
    request: SignedRequest

    def acting_for(self, code: str) -> Caller:
        """The system acting for one of its agencies (403 if it does not serve that agency)."""
        if code not in self.agency_codes:
            raise Problem(
                403,
                f"system {self.system_id} does not act for {code}; "
                f"it acts for {', '.join(self.agency_codes)}",
                kind="agency-not-served",
            )
        return Caller(code=code, roles=("agency", "admin") if self.admin else ("agency",))


Operation = Callable[[GatewayContext, System, Request], Awaitable[Response]]


async def answer(request: Request, name: str, operation: Operation) -> Response:
    """Authenticate the signed call, run the operation, fold every refusal into VDXP's FAIL."""
    try:
        ctx = gateway(request)
        system = await asyncio.to_thread(authenticate_system, ctx, request)
        return await operation(ctx, system, request)
    except WireError as error:
        return failure(name, error.code, error.reason)
    except Problem as problem:
        return failure(name, problem.status, problem.detail, headers=problem.headers)
    except grpc.RpcError as error:
        p = from_rpc_error(error)
        return failure(name, p.status, p.detail)


def failure(name: str, code: int, reason: str, *, headers: dict[str, str] | None = None) -> Response:
    """FAIL as the operation's caller reads it: downloadEdoc an empty body, sendEdoc with DocId."""
    if name == "downloadEdoc":
        return Response(status_code=code if code >= 400 else 404, headers=headers)
    extra = {"DocId": ""} if name == "sendEdoc" else {}
    response = reply_fail(code, reason, http_status=code if code in TRANSPORT_STATUSES else 200, **extra)
    response.headers.update(headers or {})
    return response


def authenticate_system(ctx: GatewayContext, request: Request) -> System:
    skew = ctx.settings.gateway.vdxp_max_future_skew_seconds
    signed = read_signed_request(
        request.scope["headers"], max_future_skew=dt.timedelta(seconds=skew) if skew > 0 else None
    )
    # The sign-in throttle (signin_guard.py): locked pairs and addresses get 429 before the check.
    reply = ctx.signin.check_vdxp(
        request,
        signed.system_id,
        signed.signed_bytes + b"\0" + signed.signature.encode(),
        lambda: ctx.clients.directory.VerifyVdxpSignature(
            directory_pb2.VerifyVdxpSignatureRequest(
                system_id=signed.system_id, signed=signed.signed_bytes, signature=signed.signature
            ),
            timeout=ctx.deadline,
        ),
    )
    if not reply.valid:
        raise WireError(401, reply.reason or f"system {signed.system_id} or its signature is not valid")
    system = System(
        system_id=reply.system.system_id,
        agency_codes=tuple(reply.system.agency_codes),
        admin=reply.system.admin,
        request=signed,
    )
    # mTLS binding and the rate limit apply per system, as per agency on /v1.
    admit(ctx, request, Caller(code=system.system_id, roles=()))
    return system


def sender_for(system: System, declared: str) -> Caller:
    if declared:
        return system.acting_for(declared)
    if len(system.agency_codes) == 1:
        return system.acting_for(system.agency_codes[0])
    raise Problem(422, f"from is required: system {system.system_id} acts for several agencies")


# -- sendEdoc -------------------------------------------------------------------------------------


def send_edoc_sync(ctx: GatewayContext, system: System, body: bytes) -> Response:
    params = system.request
    service_type = params.get("servicetype") or "eDoc"
    if service_type.lower() != "edoc":
        raise Problem(422, f"servicetype {service_type!r} is not supported; use eDoc")
    declared_hash = params.get("hash-file")
    package = body
    if declared_hash:
        matched = match_hash_file(declared_hash, body)
        if matched is None:
            raise Problem(422, "hash-file does not match the SHA-256 of the file sent", kind="hash-mismatch")
        package = matched
    elif body.endswith(b"\r\n"):
        package = body[:-2]
    if not package or package.isspace():  # no copy of a package of tens of MB
        raise Problem(422, "the body is empty: send the edXML package file")
    caller = sender_for(system, params.get("from"))
    # The SDK re-sends identical headers after a dropped connection: the same call, one document.
    # hash-file (checked above) names the file; only without it is the package hashed again.
    file_hash = declared_hash or hashlib.sha256(package).hexdigest()
    parts = [system.system_id, params.get("timestamp"), file_hash, caller.code, params.get("to")]
    key = "vdxp:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()
    message_type = (params.get("messagetype") or "edoc").lower()
    if message_type == "status" or (message_type == "edoc" and edxml.is_status_package(package)):
        return send_status(ctx, caller, package, key)
    if message_type != "edoc":
        raise Problem(422, f"messagetype {message_type!r} is not supported; use edoc or status")
    to = recipient_codes(params.get("to"))
    _, reply = submit_package(ctx, caller, package, key, expected_recipients=to or None)
    return reply_ok(DocId=reply["id"])


def send_status(ctx: GatewayContext, caller: Caller, package: bytes, key: str) -> Response:
    """A status package becomes the business status of the document it answers."""
    result = post_status_package(ctx, caller, package, key)
    ids = result.get("status_message_ids") or [result["id"]]
    return reply_ok(DocId=ids[0])


# -- receiving ------------------------------------------------------------------------------------


def pending(ctx: GatewayContext, system: System, kind: str, limit: int) -> routing_pb2.PendingResponse:
    return ctx.clients.routing.ListPending(
        routing_pb2.PendingRequest(agency_codes=system.agency_codes, kind=kind, limit=limit),
        timeout=ctx.deadline,
    )


def listed_kind(system: System) -> str:
    """`messagetype=status` lists status messages only; anything else lists everything pending."""
    return "status" if system.request.get("messagetype").lower() == "status" else ""


def received_list(ctx: GatewayContext, system: System) -> Response:
    items = pending(ctx, system, listed_kind(system), LISTED).items
    return reply_ok(
        data=[
            {
                "docId": item.id,
                "serviceType": "eDoc",
                "messageType": item.kind,
                "created_time": vdxp_time(stamp(item.created_at)),
                "updated_time": vdxp_time(stamp(item.updated_at)),
                "from": item.from_code,
                "to": item.to_code,
                "status": item.state,
                "status_desc": status_desc(item),
            }
            for item in items
        ]
    )


def status_desc(item: routing_pb2.PendingItem) -> str:
    if item.kind == "status":
        return f"{item.status_code} {item.description}".strip()
    return item.subject


def stamp(ts: Any) -> dt.datetime | None:
    if not ts.seconds and not ts.nanos:
        return None
    moment: dt.datetime = ts.ToDatetime(tzinfo=dt.UTC)
    return moment


def count_pending(ctx: GatewayContext, system: System, kind: str) -> Response:
    return reply_ok(count=int(pending(ctx, system, kind, 1).total))


def status_message(ctx: GatewayContext, system: System, doc_id: str) -> routing_pb2.StatusMessage | None:
    try:
        return ctx.clients.routing.GetStatusMessage(
            routing_pb2.StatusMessageRequest(id=doc_id, agency_codes=system.agency_codes),
            timeout=ctx.deadline,
        )
    except grpc.RpcError as error:
        if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            return None
        raise


def party_for(
    ctx: GatewayContext, system: System, doc_id: str
) -> tuple[Caller, docstore_pb2.DocumentMetadata]:
    """The agency of the system that is a party to the document (404 alike for absent and not theirs)."""
    code, meta = document_party(ctx, system.agency_codes, doc_id)
    return system.acting_for(code), meta


def required_doc_id(system: System) -> str:
    doc_id = system.request.get("docId")
    if not doc_id:
        raise Problem(422, "docId is required")
    return doc_id


def package_bytes(ctx: GatewayContext, system: System, doc_id: str) -> tuple[int, Iterator[bytes]]:
    """The stored bytes of a document or status message the system may read: their size, and
    the bytes as they stream from docstore. The first chunk is fetched here, so a refusal (not
    found, docstore away) is raised before any reply starts."""
    message = status_message(ctx, system, doc_id)
    if message is not None:
        return len(message.package), iter((bytes(message.package),))
    _, meta = party_for(ctx, system, doc_id)
    stream = ctx.clients.docstore.GetPackage(
        docstore_pb2.GetDocumentRequest(id=doc_id), timeout=ctx.deadline * 6
    )
    chunks = (chunk.data for chunk in stream)
    first = next(chunks, b"")
    return meta.package_size, itertools.chain((first,), chunks)


def get_edoc_sync(ctx: GatewayContext, system: System) -> Response:
    """``reply_ok(data=<the package in base64>)``, byte for byte, written as the package streams
    from docstore: never the package, its base64 and the JSON text in memory at once."""
    doc_id = required_doc_id(system)
    size, chunks = package_bytes(ctx, system, doc_id)
    marker = "@@package@@"
    head, tail = bytes(reply_ok(data=marker).body).split(marker.encode("ascii"))
    return StreamingResponse(
        itertools.chain((head,), base64_chunks(chunks), (tail,)),
        media_type=VdxpResponse.media_type,
        headers={"Content-Length": str(len(head) + base64_size(size) + len(tail))},
    )


def base64_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Standard base64 of the concatenated chunks, in pieces (whole 3-byte groups each)."""
    pending = b""
    for chunk in chunks:
        data = pending + chunk if pending else chunk
        cut = len(data) - len(data) % 3
        pending = data[cut:]
        if cut:
            yield base64.b64encode(memoryview(data)[:cut])
    if pending:
        yield base64.b64encode(pending)


def update_status_sync(ctx: GatewayContext, system: System) -> Response:
    """Delivery acknowledgement: done takes the item off the list; fail and processing keep it."""
    doc_id = required_doc_id(system)
    outcome = system.request.get("status").lower()
    if outcome not in ("done", "fail", "processing"):
        if len(outcome) == 2 and outcome.isdigit():
            caller, _ = party_for(ctx, system, doc_id)
            record_status(ctx, caller, doc_id, outcome, system.request.get("description"), "")
            return reply_ok()
        raise Problem(422, f"status {outcome!r} is not one of done, fail, processing")
    if status_message(ctx, system, doc_id) is not None:
        ctx.clients.routing.AckStatusMessage(
            routing_pb2.AckStatusMessageRequest(id=doc_id, agency_codes=system.agency_codes, outcome=outcome),
            timeout=ctx.deadline,
        )
        return reply_ok()
    _, meta = party_for(ctx, system, doc_id)
    receiving = [c for c in system.agency_codes if c != meta.sender_code]
    if not receiving:
        raise Problem(403, "only a recipient acknowledges a document", kind="status-not-allowed")
    if outcome == "done":
        state = routed_state(ctx, doc_id)
        delivered = {d.recipient_code for d in state.deliveries}
        for code in receiving:
            if code in delivered:
                mark_arrived(ctx, system.acting_for(code), doc_id, state)
    return reply_ok()


# -- what was sent ----------------------------------------------------------------------------------

SEND_STATUS = {"routed": ("done", "delivered to the recipient"), "refused": ("fail", "refused")}


def sent_list(ctx: GatewayContext, system: System) -> Response:
    doc_id = system.request.get("docId")
    try:
        documents = ctx.clients.routing.ListSent(
            routing_pb2.ListSentRequest(sender_codes=system.agency_codes, document_id=doc_id, limit=LISTED),
            timeout=ctx.deadline,
        ).documents
    except grpc.RpcError as error:
        if not (doc_id and error.code() == grpc.StatusCode.NOT_FOUND):
            raise
        return reply_ok(data=unrouted_rows(ctx, system, doc_id))
    return reply_ok(data=[row for document in documents for row in sent_rows(document)])


def notation(edxml_document_id: str) -> str:
    parts = edxml_document_id.split(",", 2)
    return parts[2] if len(parts) == 3 else ""


def sent_row(document_id: str, sender: str, edxml_document_id: str, subject: str) -> dict[str, Any]:
    """What every getSentEdocList row of one document shares."""
    return {
        "serviceType": "eDoc",
        "messageType": "edoc",
        "senderDocId": document_id,
        "fromCode": sender,
        "notation": notation(edxml_document_id),
        "title": subject,
    }


def sent_rows(document: routing_pb2.DocumentState) -> list[dict[str, Any]]:
    """One row per recipient, as getSentEdocList has them."""
    common = sent_row(
        document.document_id, document.sender_code, document.edxml_document_id, document.subject
    )
    common["sentTime"] = vdxp_time(stamp(document.routed_at))
    if document.state == "refused":
        return [
            {
                **common,
                "toCode": code,
                "sendStatus": "fail",
                "sendStatusDesc": f"refused: {document.refusal_reason}",
                "receiveStatus": "",
            }
            for code in document.addressed_codes
        ]
    return [
        {
            **common,
            "receiverDocId": document.document_id,
            "toCode": d.recipient_code,
            "receivedTime": vdxp_time(stamp(d.delivered_at)),
            "sendStatus": "done",
            "sendStatusDesc": "delivered"
            if not d.requested_code
            else f"delivered to the successor of {d.requested_code}",
            "receiveStatus": d.last_status_code or "pending",
            "receiveStatusDesc": d.state,
        }
        for d in document.deliveries
    ]


def unrouted_rows(ctx: GatewayContext, system: System, doc_id: str) -> list[dict[str, Any]]:
    """A document still being verified: known to the store, not yet to routing."""
    _, meta = party_for(ctx, system, doc_id)
    if meta.sender_code not in system.agency_codes:
        raise Problem(404, f"document {doc_id} was not sent by {', '.join(system.agency_codes)}")
    return [
        {
            **sent_row(meta.id, meta.sender_code, meta.edxml_document_id, meta.subject),
            "toCode": code,
            "sendStatus": "processing",
            "sendStatusDesc": "signatures being verified",
            "receiveStatus": "",
        }
        for code in meta.recipient_codes
    ]


# -- the directory ----------------------------------------------------------------------------------


def agencies(ctx: GatewayContext, tier: int = 0) -> list[directory_pb2.Agency]:
    return list(
        ctx.clients.directory.ListAgencies(
            directory_pb2.ListAgenciesRequest(tier=tier), timeout=ctx.deadline
        ).agencies
    )


def agencies_list(ctx: GatewayContext) -> Response:
    return reply_ok(
        data=[
            {"id": a.code, "pid": a.parent_code, "code": a.code, "name": a.name, "mail": a.email}
            for a in agencies(ctx)
        ]
    )


def agencies_qd20(ctx: GatewayContext, system: System) -> Response:
    level = system.request.get("level")
    if level and not (level.isdigit() and 1 <= int(level) <= 4):
        raise Problem(422, f"level {level!r} is not a tier from 1 to 4")
    return reply_ok(
        data=[
            {"id": a.code, "code": a.code, "name": a.name, "mail": a.email, "code102": a.code}
            for a in agencies(ctx, int(level or 0))
        ]
    )


def synchronize_units(ctx: GatewayContext) -> Response:
    """Every unit with a version that grows when it changes (its current version's start date)."""
    return reply_ok(
        data=[
            {
                "id": a.code,
                "pid": a.parent_code,
                "code": a.code,
                "name": a.name,
                "mail": a.email,
                "version": int(a.valid_from.replace("-", "") or 0),
                "centerCode": a.province_code,
                "deleted": a.status == "dissolved",
                "modifyDate": a.valid_from,
                "isAgency": True,
            }
            for a in agencies(ctx)
        ]
    )


def lenient_object(body: bytes) -> dict[str, str]:
    """registerAgency's body: JSON, or the `"key":value` pairs of the SDK sample's broken JSON."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text)
        if isinstance(parsed, dict):
            return {str(k): "" if v is None else str(v) for k, v in parsed.items()}
    except ValueError:
        pass
    pairs = dict(re.findall(r'"(\w+)"\s*:\s*"([^"]*)"', text))
    if not pairs:
        raise Problem(422, "the body is not a JSON object with the agency's code and name")
    return pairs


def register_agency_sync(ctx: GatewayContext, system: System, body: bytes) -> Response:
    if not system.admin:
        raise Problem(403, "only an administrator system writes the directory", kind="admin-only")
    record = lenient_object(body)
    if not record.get("code") or not record.get("name"):
        raise Problem(422, "the agency needs at least code and name")
    ctx.clients.directory.UpsertAgency(
        directory_pb2.UpsertAgencyRequest(
            agency=directory_pb2.Agency(
                code=record["code"],
                name=record["name"],
                parent_code=record.get("pcode", ""),
                email=record.get("mail", ""),
                telephone=record.get("mobile", ""),
            )
        ),
        timeout=ctx.deadline,
    )
    return reply_ok()


def delete_agency_sync(ctx: GatewayContext, system: System) -> Response:
    """Dissolves the agency from today (its history and documents stay)."""
    if not system.admin:
        raise Problem(403, "only an administrator system writes the directory", kind="admin-only")
    code = system.request.get("AgencyCode")
    if not code:
        raise Problem(422, "AgencyCode is required")
    ctx.clients.directory.Reorganize(
        directory_pb2.ReorganizeRequest(
            changes=[
                directory_pb2.Reorganization(
                    note=f"deleteAgency by VDXP system {system.system_id}",
                    dissolve=directory_pb2.Dissolve(code=code),
                )
            ]
        ),
        timeout=ctx.deadline,
    )
    return reply_ok()


# -- routes -----------------------------------------------------------------------------------------


def threaded(work: Callable[[GatewayContext, System], Response]) -> Operation:
    async def run(ctx: GatewayContext, system: System, request: Request) -> Response:
        # Read (and so answer Expect: 100-continue for) the small body every call carries.
        await read_body_limited(request, SMALL_BODY)
        return await asyncio.to_thread(work, ctx, system)

    return run


async def send_edoc(ctx: GatewayContext, system: System, request: Request) -> Response:
    # A large package waits in a spool file as it arrives and is read back in one piece: one
    # copy in memory, not the arriving chunks and their join (uploads.py).
    limit = ctx.settings.gateway.max_request_bytes
    spool = spool_dir(ctx.settings.data_dir)
    async with received_package(request, limit=limit, spool=spool, trailer=2) as body:

        def work() -> Response:
            data = body if isinstance(body, bytes) else sdk_file(body, system.request.get("hash-file"))
            return send_edoc_sync(ctx, system, data)

        return await asyncio.to_thread(work)


def sdk_file(path: Path, declared_hash: str) -> bytes:
    """A spooled sendEdoc body as send_edoc_sync takes it. When it ends with the CRLF the SDK
    appends and `hash-file` names the file without it, the file alone is read: match_hash_file
    then gives back this very object as the package, where from the whole body it would copy
    it (a 40 MB package once in memory instead of twice). Otherwise the whole body."""
    size = path.stat().st_size
    with path.open("rb") as source:
        if declared_hash and size >= 2:
            source.seek(size - 2)
            if source.read(2) == b"\r\n":
                source.seek(0)
                file = source.read(size - 2)
                if match_hash_file(declared_hash, file) is file:
                    return file
                del file
        source.seek(0)
        return source.read()


async def register_agency(ctx: GatewayContext, system: System, request: Request) -> Response:
    body = await read_body_limited(request, SMALL_BODY)
    return await asyncio.to_thread(register_agency_sync, ctx, system, body)


async def download_edoc(ctx: GatewayContext, system: System, request: Request) -> Response:
    def work() -> Response:
        size, chunks = package_bytes(ctx, system, required_doc_id(system))
        return StreamingResponse(chunks, media_type="application/xml", headers={"Content-Length": str(size)})

    return await asyncio.to_thread(work)


OPERATIONS: dict[str, tuple[str, Operation, str]] = {
    "sendEdoc": ("POST", send_edoc, "Send an edXML document or status package (the file is the body)"),
    "getReceivedEdocList": (
        "POST",
        threaded(received_list),
        "Documents and status messages waiting for the system's agencies, oldest first",
    ),
    "getEdoc": ("POST", threaded(get_edoc_sync), "One document or status message, base64 in data"),
    "updateStatus": (
        "POST",
        threaded(update_status_sync),
        "Acknowledge a received item: done (taken), fail or processing (offered again)",
    ),
    "getSentEdocList": (
        "POST",
        threaded(sent_list),
        "What the system's agencies sent, one row per recipient with its status",
    ),
    "countReceiveEdoc": ("POST", threaded(lambda ctx, s: count_pending(ctx, s, "edoc")), "Pending documents"),
    "countReceiveStatus": (
        "POST",
        threaded(lambda ctx, s: count_pending(ctx, s, "status")),
        "Pending status messages",
    ),
    "downloadEdoc": ("GET", download_edoc, "One document's package as raw bytes (errors: empty body)"),
    "getAgenciesList": ("POST", threaded(lambda ctx, s: agencies_list(ctx)), "Every agency today"),
    "getAgenciesListQD20": ("POST", threaded(agencies_qd20), "Agencies of one tier (level)"),
    "getSynchronizeUnit": ("POST", threaded(lambda ctx, s: synchronize_units(ctx)), "Every unit, versioned"),
    "registerAgency": ("POST", register_agency, "Register or change an agency (administrator systems)"),
    "deleteAgency": ("POST", threaded(delete_agency_sync), "Dissolve an agency (administrator systems)"),
}


def dispatch(name: str) -> Callable[[Request], Awaitable[Response]]:
    method, operation, _ = OPERATIONS[name]

    async def endpoint(request: Request) -> Response:
        if request.method != method and not (name.startswith("count") and request.method == "GET"):
            return reply_fail(405, f"{name} is called with {method}")
        return await answer(request, name, operation)

    endpoint.__name__ = name
    return endpoint


class VdxpReply(BaseModel):
    """Every reply: the envelope the SDK reads, plus the operation's own fields."""

    model_config = ConfigDict(extra="allow")
    status: str
    ErrorCode: str
    ErrorDesc: str
    DocId: str | None = None
    data: Any = None
    count: int | None = None


REPLY_EXAMPLES: dict[str, dict[str, Any]] = {
    "sendEdoc": {"DocId": "8af226c8-7cde-4fbe-88fe-e15a768b49cb"},
    "getReceivedEdocList": {
        "data": [
            {
                "docId": "8af226c8-7cde-4fbe-88fe-e15a768b49cb",
                "serviceType": "eDoc",
                "messageType": "edoc",
                "created_time": "2026-12-07T09:15:31+07:00",
                "from": "000.00.00.H49",
                "to": "000.00.02.H49",
                "status": "pending",
            }
        ]
    },
    "getEdoc": {"data": "PD94bWwgdmVyc2lvbj0iMS4wIj8+…"},
    "getSentEdocList": {
        "data": [
            {
                "serviceType": "eDoc",
                "messageType": "edoc",
                "senderDocId": "8af226c8-7cde-4fbe-88fe-e15a768b49cb",
                "receiverDocId": "8af226c8-7cde-4fbe-88fe-e15a768b49cb",
                "fromCode": "000.00.00.H49",
                "toCode": "000.00.02.H49",
                "notation": "123/UBND-VP",
                "title": "Về việc thử nghiệm",
                "sendStatus": "done",
                "receiveStatus": "03",
            }
        ]
    },
    "countReceiveEdoc": {"count": 2},
    "countReceiveStatus": {"count": 1},
    "getAgenciesList": {
        "data": [
            {"id": "000.00.02.H49", "pid": "000.00.00.H49", "code": "000.00.02.H49", "name": "Sở Nội vụ"}
        ]
    },
}
REQUEST_BODIES: dict[str, dict[str, Any]] = {
    "sendEdoc": {
        "requestBody": {
            "content": {
                "application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"},
                    "example": '<?xml version="1.0" encoding="UTF-8"?><edXML …/>\r\n',
                }
            }
        }
    },
    "registerAgency": {
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "example": {"code": "000.00.30.H49", "name": "Sở Thử nghiệm", "pcode": "000.00.00.H49"},
                }
            }
        }
    },
}


def reply_doc(name: str) -> dict[int | str, dict[str, Any]]:
    ok = {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success", **REPLY_EXAMPLES.get(name, {})}
    refused = {"status": "FAIL", "ErrorCode": "401", "ErrorDesc": "XroadVnpt-hash-header does not match"}
    media = "application/xml" if name == "downloadEdoc" else "application/json"
    example: Any = (
        "<edXML …/>" if name == "downloadEdoc" else {"ok": {"value": ok}, "refused": {"value": refused}}
    )
    if name == "downloadEdoc":
        refusals: dict[int | str, dict[str, Any]] = {
            code: {"description": f"{why} (empty body: the SDK saves any body as the package)"}
            for code, why in EMPTY_REFUSALS.items()
        }
        return {
            200: {
                "description": "the package's bytes",
                "content": {media: {"schema": {"type": "string", "format": "binary"}, "example": example}},
            },
            **refusals,
        }
    transport: dict[int | str, dict[str, Any]] = {
        code: {"description": f"{why} (status FAIL)", "model": VdxpReply}
        for code, why in TRANSPORT_REASONS.items()
    }
    return {
        200: {"description": "the VDXP reply", "model": VdxpReply, "content": {media: {"examples": example}}},
        **transport,
    }


TRANSPORT_REASONS = {
    429: "rate limited or sign-in throttled, with Retry-After",
    502: "a platform service failed",
    503: "a platform service is unavailable",
    504: "a platform service timed out",
}
EMPTY_REFUSALS = {
    401: "not authenticated",
    403: "not allowed",
    404: "no such document for this system",
    409: "not delivered yet",
    413: "too large",
    422: "docId missing or not valid",
    **TRANSPORT_REASONS,
}


for _name, (_method, _, _summary) in OPERATIONS.items():
    router.add_api_route(
        f"/{_name}",
        dispatch(_name),
        methods=[_method],
        operation_id=f"vdxp_{_name}",
        summary=_summary,
        description="Headers XroadVnpt-*, signed as VNPT's SDK signs them (docs/vdxp.md).",
        response_class=Response if _name == "downloadEdoc" else VdxpResponse,
        responses=reply_doc(_name),
        openapi_extra=REQUEST_BODIES.get(_name),
    )


@router.api_route("/{path:path}", methods=["GET", "POST"], include_in_schema=False)
async def any_other(path: str, request: Request) -> Response:
    """`//op` (an endpoint configured with a trailing slash) and unknown operations, never redirected."""
    name = path.strip("/").rsplit("/", 1)[-1]
    if name in OPERATIONS:
        return await dispatch(name)(request)
    return reply_fail(404, f"{name or path!r} is not a VDXP operation")


__all__ = ["router"]
