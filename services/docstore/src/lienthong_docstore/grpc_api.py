"""The DocumentStore gRPC servicer: translates protobuf to the domain and back."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import grpc
from sqlalchemy.orm import Session, sessionmaker

from lienthong.docstore.v1 import docstore_pb2, docstore_pb2_grpc
from lienthong_common.db import transaction
from lienthong_common.errors import DomainError, invalid, not_found
from lienthong_common.grpcutil import abort, translate_errors
from lienthong_common.outbox import timestamp
from lienthong_common.settings import DocstoreSettings
from lienthong_docstore import domain, repository
from lienthong_docstore.blobstore import BlobNotFound, BlobStore
from lienthong_docstore.models import Document

SERVICE_NAME = "lienthong.docstore.v1.DocumentStore"


class DocumentStoreServicer(docstore_pb2_grpc.DocumentStoreServicer):
    """Stores edXML packages and serves them, their metadata and attachments back in chunks."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        settings: DocstoreSettings,
        spool_dir: Path,
    ) -> None:
        self.sessions = sessions
        self.blobs = blobs
        self.settings = settings
        self.spool_dir = spool_dir
        self.policy = domain.parse_policy(settings.max_package_bytes)

    @translate_errors
    def PutPackage(
        self,
        request: Iterator[bytes | docstore_pb2.PutPackageRequest],
        context: grpc.ServicerContext,
    ) -> docstore_pb2.PutPackageResponse:
        first = next(request, None)
        if first is None or isinstance(first, bytes) or first.WhichOneof("part") != "header":
            raise invalid("the first message of PutPackage must be the package header")
        header = domain.PackageHeader(
            id=first.header.id,
            sender_code=first.header.sender_code,
            recipient_codes=tuple(first.header.recipient_codes),
            idempotency_key=first.header.idempotency_key,
            declared_size=first.header.declared_size,
        )
        with domain.received_package(
            _package_chunks(request),
            directory=self.spool_dir,
            limit=self.settings.max_package_bytes,
            policy=self.policy,
            declared_size=header.declared_size,
        ) as received:
            submission = domain.submit_package(
                sessions=self.sessions,
                blobs=self.blobs,
                header=header,
                received=received,
                duplicate_window=timedelta(days=self.settings.duplicate_window_days),
            )
        return docstore_pb2.PutPackageResponse(
            document=document_metadata(submission.document),
            duplicate=submission.duplicate,
            replayed=submission.replayed,
        )

    @translate_errors
    def GetMetadata(
        self, request: docstore_pb2.GetDocumentRequest, context: grpc.ServicerContext
    ) -> docstore_pb2.DocumentMetadata:
        with transaction(self.sessions) as session:
            return document_metadata(domain.get_document(session=session, id=request.id))

    @translate_errors
    def GetPackage(
        self, request: docstore_pb2.GetDocumentRequest, context: grpc.ServicerContext
    ) -> Iterator[docstore_pb2.Chunk]:
        # Look up and open eagerly, so NOT_FOUND is raised here rather than mid-stream.
        with transaction(self.sessions) as session:
            document = domain.get_document(session=session, id=request.id)
        try:
            stream = self.blobs.open(document.package_sha256)
        except BlobNotFound:
            raise not_found(f"the package of document {request.id} is missing from the blob store") from None
        return _stream(stream, self.settings.chunk_bytes)

    @translate_errors
    def GetAttachment(
        self, request: docstore_pb2.GetAttachmentRequest, context: grpc.ServicerContext
    ) -> Iterator[docstore_pb2.Chunk]:
        with transaction(self.sessions) as session:
            stored = domain.get_attachment(session=session, sha256=request.sha256)
        # Opened eagerly, as GetPackage does, so NOT_FOUND is raised here rather than mid-stream.
        try:
            stream = self.blobs.open(stored.blob)
        except BlobNotFound:
            raise not_found(f"attachment {stored.attachment.sha256} is not in the store") from None
        if not stored.in_package:
            return _stream(stream, self.settings.chunk_bytes)
        return _decoded(domain.decode_attachment(stream, stored, self.settings.chunk_bytes), context)

    @translate_errors
    def ListSentDocuments(
        self, request: docstore_pb2.ListSentRequest, context: grpc.ServicerContext
    ) -> docstore_pb2.ListSentResponse:
        if not request.sender_code:
            raise invalid("sender_code is required")
        limit = request.limit or 50
        if not 1 <= limit <= 500:
            raise invalid(f"limit must be between 1 and 500, not {limit}")
        after = _decode_sent_cursor(request.cursor) if request.cursor else None
        with transaction(self.sessions) as session:
            documents = repository.list_sent(
                session=session, sender_code=request.sender_code, after=after, limit=limit + 1
            )
            page = [document_metadata(d) for d in documents[:limit]]
            last = documents[limit - 1] if len(documents) > limit else None
            next_cursor = _encode_sent_cursor(_as_utc(last.submitted_at), last.id) if last else ""
        return docstore_pb2.ListSentResponse(documents=page, next_cursor=next_cursor)


def _encode_sent_cursor(at: datetime, document_id: str) -> str:
    raw = f"{at.isoformat()}|{document_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_sent_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, document_id = raw.partition("|")
        parsed = datetime.fromisoformat(at)
    except (ValueError, UnicodeDecodeError):
        raise invalid(f"cursor {cursor!r} is not one this service issued") from None
    if not document_id:
        raise invalid(f"cursor {cursor!r} is not one this service issued")
    return _as_utc(parsed), document_id


def _package_chunks(request: Iterator[bytes | docstore_pb2.PutPackageRequest]) -> Iterator[bytes]:
    for message in request:
        if isinstance(message, bytes):
            yield message
        elif message.WhichOneof("part") == "chunk":
            yield message.chunk
        else:
            raise invalid("PutPackage takes one header, then only chunks")


_CHUNK_TAG = b"\x12"  # PutPackageRequest field 2 (chunk), length-delimited


def put_package_request(data: bytes) -> bytes | docstore_pb2.PutPackageRequest:
    """A PutPackage message off the wire: a message holding only a chunk gives the chunk's
    bytes, sliced out of the message (its tag, a varint length, the bytes); any other message
    is parsed by protobuf. Parsing a 256 KiB chunk message and reading its field back copied
    the bytes twice more and cost more CPU than the spool write per package."""
    if data[:1] == _CHUNK_TAG:
        length, shift, at = 0, 0, 1
        while at < min(len(data), 11):
            byte = data[at]
            at += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                if at + length == len(data):
                    return data[at:]
                break
            shift += 7
    return docstore_pb2.PutPackageRequest.FromString(data)


class _HandlerTable:
    """Stands in for a server to take the generated registration's method handlers."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, _handlers: object) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.handlers.update(handlers)


def add_to_server(servicer: DocumentStoreServicer, server: grpc.Server) -> None:
    """Register the servicer with the generated method handlers, PutPackage's messages read by
    :func:`put_package_request` instead of protobuf."""
    table = _HandlerTable()
    docstore_pb2_grpc.add_DocumentStoreServicer_to_server(servicer, table)  # type: ignore[arg-type]
    if "PutPackage" not in table.handlers:
        raise RuntimeError("the generated DocumentStore registration gave no PutPackage handler")
    handlers = dict(table.handlers)
    handlers["PutPackage"] = handlers["PutPackage"]._replace(request_deserializer=put_package_request)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)  # type: ignore[attr-defined]


def _decoded(data: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[docstore_pb2.Chunk]:
    """Chunks of a decoded attachment; damage found mid-stream ends it with its status."""
    try:
        for chunk in data:
            yield docstore_pb2.Chunk(data=chunk)
    except DomainError as error:
        abort(context, error)


def _stream(stream: BinaryIO, chunk_bytes: int) -> Iterator[docstore_pb2.Chunk]:
    """Read the blob `chunk_bytes` at a time; the whole file is never in memory."""
    with stream:
        while data := stream.read(chunk_bytes):
            yield docstore_pb2.Chunk(data=data)


def document_metadata(document: Document) -> docstore_pb2.DocumentMetadata:
    """The protobuf view of a stored document."""
    return docstore_pb2.DocumentMetadata(
        id=document.id,
        sender_code=document.sender_code,
        recipient_codes=document.recipient_codes,
        edxml_document_id=document.edxml_document_id,
        subject=document.subject,
        package_sha256=document.package_sha256,
        package_size=document.package_size,
        attachments=[
            docstore_pb2.Attachment(
                content_id=a.content_id,
                name=a.name,
                content_type=a.content_type,
                sha256=a.sha256,
                size=a.size,
            )
            for a in document.attachments
        ],
        submitted_at=timestamp(_as_utc(document.submitted_at)),
        warnings=document.warnings,
        business_doc_type=document.business_doc_type,
        referenced_document_id=document.referenced_document_id,
        traceparent=document.traceparent or "",
    )


def _as_utc(at: datetime) -> datetime:
    """SQLite returns naive datetimes; every time stored here is UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
