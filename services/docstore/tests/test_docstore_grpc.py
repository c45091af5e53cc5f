"""PutPackage, GetMetadata, GetPackage and GetAttachment through an in-process gRPC server."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from docstore_factories import (
    CHUNK_BYTES,
    MAX_PACKAGE_BYTES,
    RECIPIENTS,
    SENDER,
    make_package,
    pdf_attachment,
    put_requests,
)
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lienthong.docstore.v1 import docstore_pb2, docstore_pb2_grpc
from lienthong.events.v1 import events_pb2
from lienthong_common.clock import now_utc
from lienthong_common.db import transaction
from lienthong_common.edxml import BUSINESS_RECALL, Business
from lienthong_common.ids import new_id
from lienthong_common.outbox import TOPIC_SUBMITTED
from lienthong_docstore import domain, grpc_api
from lienthong_docstore.blobstore import FilesystemBlobStore
from lienthong_docstore.models import OUTBOX, DocumentAttachment

Stub = docstore_pb2_grpc.DocumentStoreStub
RECALLED = "000.00.00.H49,2025/06/30,7000/UBND-VP"


def outbox_events(sessions: sessionmaker[Session]) -> list[tuple[str, str, events_pb2.Event]]:
    with transaction(sessions) as session:
        rows = session.execute(
            select(OUTBOX.table.c.topic, OUTBOX.table.c.key, OUTBOX.table.c.payload).order_by(
                OUTBOX.table.c.id
            )
        ).all()
    return [(topic, key, events_pb2.Event.FromString(payload)) for topic, key, payload in rows]


def rpc_error(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        if callable(call):
            result = call()
            if not isinstance(result, docstore_pb2.PutPackageResponse):
                list(result)  # drain a server stream
    return info.value


def download(stub: Stub, id: str) -> list[bytes]:
    return [chunk.data for chunk in stub.GetPackage(docstore_pb2.GetDocumentRequest(id=id))]


def test_a_multi_megabyte_package_round_trips_in_chunks(stub: Stub, blobs: FilesystemBlobStore) -> None:
    scan = os.urandom(4 * 1024 * 1024)
    package = make_package(
        attachments=[
            pdf_attachment(scan, name="scan.pdf"),
            pdf_attachment(b"%PDF", content_id="cid:2"),
        ]
    )
    id = new_id()

    reply = stub.PutPackage(put_requests(package, id=id, idempotency_key="k-1"))

    doc = reply.document
    assert not reply.duplicate and not reply.replayed
    assert doc.id == id
    assert doc.sender_code == SENDER
    assert list(doc.recipient_codes) == RECIPIENTS
    assert doc.edxml_document_id == "000.00.00.H49,2025/07/01,7816/UBND-VP"
    assert doc.subject == "Về việc triển khai liên thông văn bản điện tử"
    assert doc.package_sha256 == hashlib.sha256(package).hexdigest()
    assert doc.package_size == len(package)
    assert [(a.content_id, a.name, a.size) for a in doc.attachments] == [
        ("cid:1", "scan.pdf", len(scan)),
        ("cid:2", "vanban.pdf", 4),
    ]
    assert doc.attachments[0].sha256 == hashlib.sha256(scan).hexdigest()
    assert any("Signature" in w for w in doc.warnings), "unsigned packages carry a warning"
    assert doc.submitted_at.seconds > 0

    chunks = download(stub, id)
    assert b"".join(chunks) == package
    assert len(chunks) == -(-len(package) // CHUNK_BYTES)
    assert max(len(c) for c in chunks) == CHUNK_BYTES
    assert blobs.size(doc.package_sha256) == len(package)

    request = docstore_pb2.GetAttachmentRequest(sha256=doc.attachments[0].sha256)
    attachment = b"".join(c.data for c in stub.GetAttachment(request))
    assert attachment == scan

    assert stub.GetMetadata(docstore_pb2.GetDocumentRequest(id=id)) == doc


def test_the_package_is_spooled_in_bounded_memory(tmp_path: Path) -> None:
    """Receiving never holds the package: 40 MB pass through a 64 KB-at-a-time spool."""
    import tracemalloc

    block = b"x" * CHUNK_BYTES
    total = 40 * 1024 * 1024

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(total // CHUNK_BYTES):
            yield bytes(block)  # a fresh buffer each time, freed once written

    tracemalloc.start()
    try:
        with domain.received_package(chunks(), directory=tmp_path, limit=total) as received:
            _, peak = tracemalloc.get_traced_memory()
            spooled = received.spooled
            assert spooled.size == total
            assert spooled.sha256 == hashlib.sha256(block * (total // CHUNK_BYTES)).hexdigest()
            assert received.parsed is None and received.error is not None  # not XML: refused
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024
    assert list(tmp_path.iterdir()) == [], "the spool file is removed afterwards"


def test_a_package_over_the_limit_is_refused_while_receiving(stub: Stub) -> None:
    big = make_package(attachments=[pdf_attachment(b"\0" * MAX_PACKAGE_BYTES)])

    error = rpc_error(lambda: stub.PutPackage(put_requests(big)))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"; the limit is {MAX_PACKAGE_BYTES} bytes" in error.details()
    assert error.details().startswith("package is at least ")

    declared = rpc_error(lambda: stub.PutPackage(put_requests(b"<x/>", declared_size=MAX_PACKAGE_BYTES + 1)))
    assert declared.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert declared.details() == (
        f"package is {MAX_PACKAGE_BYTES + 1} bytes; the limit is {MAX_PACKAGE_BYTES} bytes"
    )


def test_a_malformed_package_is_invalid_and_names_the_element(
    stub: Stub, sessions: sessionmaker[Session]
) -> None:
    broken = make_package().replace(b"<edXML:CodeNumber>7816</edXML:CodeNumber>", b"")

    error = rpc_error(lambda: stub.PutPackage(put_requests(broken)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "edXML/edXMLEnvelope/edXMLHeader/MessageHeader/Code/CodeNumber: required element is missing"
    )

    not_xml = rpc_error(lambda: stub.PutPackage(put_requests(b"<edXML><unclosed>")))
    assert not_xml.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not well-formed XML" in not_xml.details()
    assert outbox_events(sessions) == []


def test_the_sender_must_be_the_packages_from(stub: Stub) -> None:
    error = rpc_error(lambda: stub.PutPackage(put_requests(make_package(), sender="000.00.00.G22")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "000.00.00.G22" in error.details() and SENDER in error.details()


def test_the_stream_must_start_with_a_header(stub: Stub) -> None:
    only_chunks = iter([docstore_pb2.PutPackageRequest(chunk=make_package())])
    error = rpc_error(lambda: stub.PutPackage(only_chunks))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "header" in error.details()

    header = docstore_pb2.PutPackageRequest(
        header=docstore_pb2.PackageHeader(id=new_id(), sender_code=SENDER)
    )
    two_headers = iter([header, header])
    error = rpc_error(lambda: stub.PutPackage(two_headers))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "PutPackage takes one header, then only chunks"


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16_383, 16_384, 256 * 1024, 3 * 1024 * 1024])
def test_a_chunk_message_is_read_as_its_bytes(size: int) -> None:
    chunk = os.urandom(size)
    wire = docstore_pb2.PutPackageRequest(chunk=chunk).SerializeToString()

    read = grpc_api.put_package_request(wire)
    assert isinstance(read, bytes) and read == chunk


def test_any_other_put_message_is_read_by_protobuf() -> None:
    header = docstore_pb2.PutPackageRequest(header=docstore_pb2.PackageHeader(id="d1", sender_code=SENDER))
    read = grpc_api.put_package_request(header.SerializeToString())
    assert isinstance(read, docstore_pb2.PutPackageRequest) and read == header

    # A chunk followed by a field this version does not know: protobuf reads it, chunk and all.
    extra = docstore_pb2.PutPackageRequest(chunk=b"abc").SerializeToString() + b"\x18\x01"
    read = grpc_api.put_package_request(extra)
    assert isinstance(read, docstore_pb2.PutPackageRequest) and read.chunk == b"abc"

    # A length running past the message is not sliced: protobuf refuses it.
    with pytest.raises(Exception, match=r"[Tt]runcated|[Ee]rror parsing|decode"):
        grpc_api.put_package_request(b"\x12\x05abc")


def test_every_docstore_method_is_registered() -> None:
    server = grpc_api._HandlerTable()  # records what a server would be given
    grpc_api.add_to_server(docstore_pb2_grpc.DocumentStoreServicer(), server)  # type: ignore[arg-type]
    service = docstore_pb2.DESCRIPTOR.services_by_name["DocumentStore"]
    assert sorted(server.handlers) == sorted(m.name for m in service.methods)
    put = server.handlers["PutPackage"]
    assert put.request_deserializer is grpc_api.put_package_request  # type: ignore[attr-defined]


def test_the_same_idempotency_key_replays_the_first_document(
    stub: Stub, sessions: sessionmaker[Session]
) -> None:
    package = make_package()
    first = stub.PutPackage(put_requests(package, idempotency_key="send-42"))

    again = stub.PutPackage(put_requests(package, idempotency_key="send-42"))

    assert again.replayed and not again.duplicate
    assert again.document == first.document
    assert len(outbox_events(sessions)) == 1


def test_an_idempotency_key_reused_with_a_different_body_is_refused(
    stub: Stub, sessions: sessionmaker[Session]
) -> None:
    stub.PutPackage(put_requests(make_package(), idempotency_key="send-43"))

    error = rpc_error(
        lambda: stub.PutPackage(put_requests(make_package(code_number="7817"), idempotency_key="send-43"))
    )
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "Idempotency-Key send-43 was used with a different body" in error.details()
    assert len(outbox_events(sessions)) == 1

    other_sender = stub.PutPackage(
        put_requests(
            make_package(sender="000.00.24.H44", recipients=[SENDER]),
            sender="000.00.24.H44",
            recipients=[SENDER],
            idempotency_key="send-43",
        )
    )
    assert not other_sender.replayed, "keys are scoped to their sender"


def test_the_same_document_id_within_the_window_is_a_duplicate(
    stub: Stub, sessions: sessionmaker[Session]
) -> None:
    first = stub.PutPackage(put_requests(make_package(subject="Lần đầu")))

    # A different body (so a different digest) with the same sender + DocumentId.
    again = stub.PutPackage(put_requests(make_package(subject="Gửi lại")))

    assert again.duplicate and not again.replayed
    assert again.document.id == first.document.id
    assert again.document.subject == "Lần đầu"
    assert len(outbox_events(sessions)) == 1


def test_the_same_document_id_after_the_window_is_a_new_document(
    stub: Stub,
    sessions: sessionmaker[Session],
    blobs: FilesystemBlobStore,
    tmp_path: Path,
) -> None:
    package = make_package()
    with domain.received_package([package], directory=tmp_path / "spool", limit=len(package)) as p:
        old = domain.submit_package(
            sessions=sessions,
            blobs=blobs,
            header=domain.PackageHeader(id=new_id(), sender_code=SENDER),
            received=p,
            duplicate_window=timedelta(days=30),
            now=now_utc() - timedelta(days=31),
        )

    reply = stub.PutPackage(put_requests(package))

    assert not reply.duplicate
    assert reply.document.id != old.document.id
    assert reply.document.package_sha256 == old.document.package_sha256
    assert len(outbox_events(sessions)) == 2


def test_an_attachment_shared_by_two_documents_is_stored_once(
    stub: Stub, blobs: FilesystemBlobStore, sessions: sessionmaker[Session]
) -> None:
    shared = os.urandom(100_000)
    first = stub.PutPackage(put_requests(make_package(code_number="1", attachments=[pdf_attachment(shared)])))
    second = stub.PutPackage(
        put_requests(
            make_package(
                code_number="2",
                attachments=[
                    pdf_attachment(b"cover letter", name="a.pdf"),
                    pdf_attachment(shared, content_id="cid:2", name="b.pdf"),
                ],
            )
        )
    )

    digest = hashlib.sha256(shared).hexdigest()
    assert first.document.attachments[0].sha256 == digest
    assert second.document.attachments[1].sha256 == digest
    stored = [p for p in blobs.root.rglob("*") if p.is_file() and p.parent.name != ".incoming"]
    # Plain base64 bodies stay inside their packages, which are stored byte for byte anyway:
    # the two packages are the only blobs, and no attachment is written a second time.
    assert sorted(p.name for p in stored) == sorted(
        {first.document.package_sha256, second.document.package_sha256}
    )
    with transaction(sessions) as session:
        spans = session.execute(
            select(DocumentAttachment.package_offset, DocumentAttachment.package_length)
        ).all()
    assert len(spans) == 3 and all(offset and length for offset, length in spans)
    for data in (shared, b"cover letter"):
        request = docstore_pb2.GetAttachmentRequest(sha256=hashlib.sha256(data).hexdigest())
        assert b"".join(c.data for c in stub.GetAttachment(request)) == data


def test_an_attachment_body_with_markup_inside_gets_a_blob_of_its_own(
    stub: Stub, blobs: FilesystemBlobStore
) -> None:
    data = os.urandom(5_000)
    package = make_package(attachments=[pdf_attachment(data)])
    # A comment inside the body: the parser skips it, so the bytes in the package are not the
    # attachment's base64 alone; the decoded attachment is stored as a blob instead.
    body = package.index(b">", package.index(b"ContentTransferEncoded")) + 1
    package = package[:body] + b"<!-- scanned -->" + package[body:]
    reply = stub.PutPackage(put_requests(package))

    digest = hashlib.sha256(data).hexdigest()
    assert reply.document.attachments[0].sha256 == digest
    assert blobs.exists(digest)
    request = docstore_pb2.GetAttachmentRequest(sha256=digest)
    assert b"".join(c.data for c in stub.GetAttachment(request)) == data


def test_a_damaged_package_blob_is_reported_as_data_loss_when_its_attachment_is_read(
    stub: Stub, blobs: FilesystemBlobStore
) -> None:
    data = os.urandom(50_000)
    reply = stub.PutPackage(put_requests(make_package(attachments=[pdf_attachment(data)])))
    path = blobs.path_for(reply.document.package_sha256)
    raw = bytearray(path.read_bytes())
    middle = raw.index(b">", raw.index(b"ContentTransferEncoded")) + 30_000
    raw[middle] = ord("A") if raw[middle] != ord("A") else ord("B")  # still base64, other bytes
    path.chmod(0o644)
    path.write_bytes(bytes(raw))

    request = docstore_pb2.GetAttachmentRequest(sha256=hashlib.sha256(data).hexdigest())
    error = rpc_error(lambda: stub.GetAttachment(request))
    assert error.code() == grpc.StatusCode.DATA_LOSS
    assert "gives back other bytes" in (error.details() or "")


def test_storing_writes_one_submitted_event_with_the_document(
    stub: Stub, sessions: sessionmaker[Session]
) -> None:
    package = make_package(
        priority=3,
        business=Business(doc_type=BUSINESS_RECALL, document_id=RECALLED),
    )
    reply = stub.PutPackage(put_requests(package, recipients=["000.00.24.H44"]))

    [(topic, key, event)] = outbox_events(sessions)
    doc = reply.document
    assert topic == TOPIC_SUBMITTED
    assert key == doc.id
    assert event.document_id == doc.id
    assert event.event_id
    assert event.WhichOneof("payload") == "submitted"
    submitted = event.submitted
    assert submitted.sender_code == SENDER
    assert list(submitted.recipient_codes) == ["000.00.24.H44"]
    assert submitted.edxml_document_id == doc.edxml_document_id
    assert submitted.subject == doc.subject
    assert submitted.package_sha256 == doc.package_sha256
    assert submitted.package_size == doc.package_size
    assert [(a.content_id, a.sha256, a.size) for a in submitted.attachments] == [
        (a.content_id, a.sha256, a.size) for a in doc.attachments
    ]
    assert submitted.business_doc_type == BUSINESS_RECALL
    assert submitted.referenced_document_id == RECALLED
    assert doc.business_doc_type == BUSINESS_RECALL
    assert doc.referenced_document_id == submitted.referenced_document_id
    assert submitted.priority == 3
    assert event.occurred_at == doc.submitted_at


def test_recipients_default_to_the_packages_to_list(stub: Stub) -> None:
    reply = stub.PutPackage(put_requests(make_package(), recipients=[]))
    assert list(reply.document.recipient_codes) == RECIPIENTS


def test_a_reused_document_id_is_refused(stub: Stub) -> None:
    id = new_id()
    stub.PutPackage(put_requests(make_package(code_number="1"), id=id))
    error = rpc_error(lambda: stub.PutPackage(put_requests(make_package(code_number="2"), id=id)))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error.details() == f"document {id} is already in the store"


def test_unknown_documents_and_attachments_are_not_found(stub: Stub) -> None:
    metadata = rpc_error(lambda: stub.GetMetadata(docstore_pb2.GetDocumentRequest(id="nope")))
    assert metadata.code() == grpc.StatusCode.NOT_FOUND
    assert metadata.details() == "document nope is not in the store"

    package = rpc_error(lambda: stub.GetPackage(docstore_pb2.GetDocumentRequest(id="nope")))
    assert package.code() == grpc.StatusCode.NOT_FOUND
    assert package.details() == "document nope is not in the store"

    digest = hashlib.sha256(b"never stored").hexdigest()
    attachment = rpc_error(lambda: stub.GetAttachment(docstore_pb2.GetAttachmentRequest(sha256=digest)))
    assert attachment.code() == grpc.StatusCode.NOT_FOUND
    assert attachment.details() == f"attachment {digest} is not in the store"

    malformed = rpc_error(lambda: stub.GetAttachment(docstore_pb2.GetAttachmentRequest(sha256="../etc")))
    assert malformed.code() == grpc.StatusCode.INVALID_ARGUMENT
