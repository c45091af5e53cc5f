"""The DocumentStore through in-process gRPC against the real PostgreSQL (infra/postgres.sh).

One fresh database per module (random name, migrated with the service's Alembic scripts,
dropped afterwards); each test uses its own DocumentIds and keys so they do not meet.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from docstore_factories import (
    MAX_PACKAGE_BYTES,
    RECIPIENTS,
    SENDER,
    make_package,
    pdf_attachment,
    put_requests,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lienthong.docstore.v1 import docstore_pb2, docstore_pb2_grpc
from lienthong_common import db
from lienthong_common.ids import new_id
from lienthong_common.testing import throwaway_postgres
from lienthong_docstore.main import MIGRATIONS
from lienthong_docstore.models import OUTBOX, Document

ROOT = Path(__file__).resolve().parents[3]
PGPORT = os.environ.get("PGPORT", "55432")
Stub = docstore_pb2_grpc.DocumentStoreStub


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A migrated database of its own on the shared local server (started if it is not)."""
    with throwaway_postgres("docstore_it") as url:
        db.upgrade_database(url, MIGRATIONS)
        yield url


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """Overrides conftest's SQLite database: the servicer and stub fixtures use PostgreSQL."""
    return postgres_url


def code() -> str:
    """A CodeNumber (so a DocumentId) no other test uses."""
    return str(uuid.uuid4().int % 10**9)


def outbox_count(sessions: sessionmaker[Session], key: str) -> int:
    with db.transaction(sessions) as session:
        return int(
            session.scalar(select(func.count()).select_from(OUTBOX.table).where(OUTBOX.table.c.key == key))
            or 0
        )


def test_it_runs_on_postgresql(sessions: sessionmaker[Session]) -> None:
    with db.transaction(sessions) as session:
        assert session.get_bind().dialect.name == "postgresql"


def test_put_then_get_package_metadata_and_attachment(stub: Stub, sessions: sessionmaker[Session]) -> None:
    scan = os.urandom(3 * 1024 * 1024 + 17)
    number = code()
    package = make_package(
        code_number=number,
        attachments=[pdf_attachment(scan, name="scan.pdf"), pdf_attachment(b"%PDF-1.7", content_id="cid:2")],
    )
    id = new_id()

    reply = stub.PutPackage(put_requests(package, id=id))

    doc = reply.document
    assert not reply.duplicate and not reply.replayed
    assert (doc.id, doc.sender_code, list(doc.recipient_codes)) == (id, SENDER, RECIPIENTS)
    assert doc.edxml_document_id == f"{SENDER},2025/07/01,{number}/UBND-VP"
    assert doc.package_sha256 == hashlib.sha256(package).hexdigest()
    assert doc.package_size == len(package)
    assert [(a.name, a.size) for a in doc.attachments] == [("scan.pdf", len(scan)), ("vanban.pdf", 8)]
    assert doc.submitted_at.seconds > 0

    chunks = [c.data for c in stub.GetPackage(docstore_pb2.GetDocumentRequest(id=id))]
    assert b"".join(chunks) == package
    assert len(chunks) > 1, "the package comes back in chunks"
    assert stub.GetMetadata(docstore_pb2.GetDocumentRequest(id=id)) == doc
    request = docstore_pb2.GetAttachmentRequest(sha256=doc.attachments[0].sha256)
    attachment = b"".join(c.data for c in stub.GetAttachment(request))
    assert attachment == scan
    assert outbox_count(sessions, id) == 1
    with db.transaction(sessions) as session:
        stored = session.get(Document, id)
        assert stored is not None and stored.submitted_at.tzinfo is not None


def test_an_idempotency_key_replays_and_a_different_body_is_refused(
    stub: Stub, sessions: sessionmaker[Session]
) -> None:
    key = f"k-{uuid.uuid4()}"
    package = make_package(code_number=code())
    first = stub.PutPackage(put_requests(package, idempotency_key=key))

    again = stub.PutPackage(put_requests(package, idempotency_key=key))
    assert again.replayed and again.document == first.document

    with pytest.raises(grpc.RpcError) as refused:
        stub.PutPackage(put_requests(make_package(code_number=code()), idempotency_key=key))
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert f"Idempotency-Key {key} was used with a different body" in (refused.value.details() or "")
    assert outbox_count(sessions, first.document.id) == 1


def test_concurrent_retries_with_one_key_store_one_document(stub: Stub) -> None:
    """The unique (sender, key) index settles a race: one stores, the others replay it."""
    key = f"race-{uuid.uuid4()}"
    package = make_package(code_number=code())

    def put(_: int) -> docstore_pb2.PutPackageResponse:
        return stub.PutPackage(put_requests(package, idempotency_key=key))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(put, range(4)))

    assert len({r.document.id for r in replies}) == 1
    assert sum(not r.replayed and not r.duplicate for r in replies) == 1


def test_the_same_document_id_is_a_duplicate_returning_the_first(stub: Stub) -> None:
    number = code()
    first = stub.PutPackage(put_requests(make_package(code_number=number, subject="Lần đầu")))

    again = stub.PutPackage(put_requests(make_package(code_number=number, subject="Gửi lại")))

    assert again.duplicate and not again.replayed
    assert again.document.id == first.document.id
    assert again.document.subject == "Lần đầu"


def test_a_package_over_the_limit_is_refused_with_the_limit(stub: Stub) -> None:
    big = make_package(code_number=code(), attachments=[pdf_attachment(b"\0" * MAX_PACKAGE_BYTES)])

    with pytest.raises(grpc.RpcError) as error:
        stub.PutPackage(put_requests(big))

    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"the limit is {MAX_PACKAGE_BYTES} bytes" in (error.value.details() or "")


def test_unknown_documents_are_not_found(stub: Stub) -> None:
    with pytest.raises(grpc.RpcError) as error:
        stub.GetMetadata(docstore_pb2.GetDocumentRequest(id=new_id()))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
