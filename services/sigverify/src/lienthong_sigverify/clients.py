"""The two peers sigverify asks: docstore for the package, directory for certificate bindings."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import grpc

from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong.docstore.v1 import docstore_pb2, docstore_pb2_grpc
from lienthong_sigverify.domain import IN_MEMORY_BYTES, Binding


class PackageTooLarge(Exception):
    """Docstore streamed more bytes than a package may have."""


class DocstorePackages:
    """Fetches a stored edXML package from docstore: in memory when small, else streamed to a
    spool file (the same threshold as PreparedPackage's)."""

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        deadline_seconds: float,
        max_bytes: int,
        spool_dir: Path | None = None,
        in_memory_bytes: int = IN_MEMORY_BYTES,
    ) -> None:
        self._stub = docstore_pb2_grpc.DocumentStoreStub(channel)
        self._deadline = deadline_seconds
        self._max_bytes = max_bytes
        self._spool_dir = spool_dir
        self._in_memory_bytes = in_memory_bytes

    def __call__(self, document_id: str) -> bytes | Path:
        """The package of `document_id`: its bytes when small, else a new file holding it (which
        the caller removes); grpc.RpcError when docstore cannot give it, PackageTooLarge past the
        limit."""
        chunks = self._stub.GetPackage(
            docstore_pb2.GetDocumentRequest(id=document_id), timeout=self._deadline
        )
        held: list[bytes] = []
        size = 0
        path: Path | None = None
        out: BinaryIO | None = None
        try:
            for chunk in chunks:
                size += len(chunk.data)
                if size > self._max_bytes:
                    _stop(chunks)
                    raise PackageTooLarge(
                        f"package of document {document_id} exceeds {self._max_bytes} bytes"
                    )
                if out is not None:
                    out.write(chunk.data)
                    continue
                held.append(chunk.data)
                if size > self._in_memory_bytes:  # large: on to disk, from here on
                    path, out = self._spool()
                    for data in held:
                        out.write(data)
                    held.clear()
            if out is None:
                return b"".join(held)
            out.close()
            assert path is not None
            return path
        except BaseException:
            if out is not None:
                out.close()
            if path is not None:
                path.unlink(missing_ok=True)
            raise

    def _spool(self) -> tuple[Path, BinaryIO]:
        if self._spool_dir is not None:
            self._spool_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._spool_dir, prefix="package-", suffix=".edxml")
        return Path(name), os.fdopen(fd, "wb")


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
