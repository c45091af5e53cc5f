"""The entry point wires the servicer to the runtime and names the service it serves."""

from __future__ import annotations

from pathlib import Path

from lienthong_common.grpcutil import make_server
from lienthong_common.service import ServiceRuntime
from lienthong_common.settings import DocstoreSettings, Settings
from lienthong_docstore.main import build
from lienthong_docstore.models import OUTBOX, Base


def test_build_registers_the_document_store(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'docstore.db'}",
        docstore=DocstoreSettings(blob_dir=tmp_path / "blobs"),
    )
    runtime = ServiceRuntime(name="docstore", settings=settings, metadata=Base.metadata, outbox=OUTBOX)
    server = make_server(1)
    try:
        assert build(runtime)(server) == ["lienthong.docstore.v1.DocumentStore"]
    finally:
        server.stop(grace=None)
        runtime.engine.dispose()
