"""Fixtures: a migrated SQLite database, a blob folder, and an in-process gRPC DocumentStore."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from docstore_factories import CHUNK_BYTES, MAX_PACKAGE_BYTES
from sqlalchemy.orm import Session, sessionmaker

from lienthong.docstore.v1 import docstore_pb2_grpc
from lienthong_common import db
from lienthong_common.grpcutil import channel, make_server
from lienthong_common.settings import DocstoreSettings
from lienthong_docstore.blobstore import FilesystemBlobStore
from lienthong_docstore.grpc_api import DocumentStoreServicer, add_to_server
from lienthong_docstore.main import MIGRATIONS


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'docstore.db'}"
    db.upgrade_database(url, MIGRATIONS)
    return url


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = db.make_engine(database_url)
    yield db.make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def blobs(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


@pytest.fixture
def docstore_settings() -> DocstoreSettings:
    return DocstoreSettings(
        max_package_bytes=MAX_PACKAGE_BYTES, chunk_bytes=CHUNK_BYTES, duplicate_window_days=30
    )


@pytest.fixture
def servicer(
    sessions: sessionmaker[Session],
    blobs: FilesystemBlobStore,
    docstore_settings: DocstoreSettings,
    tmp_path: Path,
) -> DocumentStoreServicer:
    return DocumentStoreServicer(
        sessions=sessions, blobs=blobs, settings=docstore_settings, spool_dir=tmp_path / "spool"
    )


@pytest.fixture
def stub(servicer: DocumentStoreServicer) -> Iterator[docstore_pb2_grpc.DocumentStoreStub]:
    """A client of the servicer served in-process on a free port."""
    server: grpc.Server = make_server(4)
    add_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with channel(f"127.0.0.1:{port}", tls=None) as ch:
        yield docstore_pb2_grpc.DocumentStoreStub(ch)
    server.stop(grace=None).wait()
