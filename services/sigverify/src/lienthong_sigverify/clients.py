"""The two peers sigverify asks: docstore for the package, directory for certificate bindings."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import grpc

from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong.docstore.v1 import docstore_pb2, docstore_pb2_grpc
from lienthong_sigverify.domain import Binding


class PackageTooLarge(Exception):
    """Docstore streamed more bytes than a package may have."""


class DocstorePackages:
    """Fetches a stored edXML package from docstore, streamed to a spool file."""

    def __init__(
        self, channel: grpc.Channel, *, deadline_seconds: float, max_bytes: int, spool_dir: Path | None = None
    ) -> None:
        self._stub = docstore_pb2_grpc.DocumentStoreStub(channel)
        self._deadline = deadline_seconds
        self._max_bytes = max_bytes
        self._spool_dir = spool_dir

    def __call__(self, document_id: str) -> Path:
        """A new file holding the package of `document_id` (the caller removes it); grpc.RpcError
        when docstore cannot give it, PackageTooLarge past the limit."""
        if self._spool_dir is not None:
            self._spool_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._spool_dir, prefix="package-", suffix=".edxml")
        path = Path(name)
        try:
            chunks = self._stub.GetPackage(
                docstore_pb2.GetDocumentRequest(id=document_id), timeout=self._deadline
            )
            size = 0
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    size += len(chunk.data)
                    if size > self._max_bytes:
                        _stop(chunks)
                        raise PackageTooLarge(
                            f"package of document {document_id} exceeds {self._max_bytes} bytes"
                        )
                    out.write(chunk.data)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path


def _stop(stream: Any) -> None:
    """End a server stream early (instrumented channels hand back a plain generator)."""
    stop = getattr(stream, "cancel", None) or getattr(stream, "close", None)
    if callable(stop):
        stop()


class DirectoryBindings:
    """Asks the directory whether a signing certificate is registered to an agency."""

    def __init__(self, channel: grpc.Channel, *, deadline_seconds: float) -> None:
        self._stub = directory_pb2_grpc.DirectoryServiceStub(channel)
        self._deadline = deadline_seconds

    def __call__(self, *, agency_code: str, fingerprint: str) -> Binding:
        reply = self._stub.CheckCertificate(
            directory_pb2.CheckCertificateRequest(agency_code=agency_code, fingerprint=fingerprint),
            timeout=self._deadline,
        )
        return Binding(bound=reply.bound, owner_codes=tuple(reply.owner_codes))
