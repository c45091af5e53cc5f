"""The two peers sigverify asks: docstore for the package, directory for certificate bindings."""

from __future__ import annotations

from typing import Any

import grpc

from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong.docstore.v1 import docstore_pb2, docstore_pb2_grpc
from lienthong_sigverify.domain import Binding


class PackageTooLarge(Exception):
    """Docstore streamed more bytes than a package may have."""


class DocstorePackages:
    """Fetches a stored edXML package from docstore (streamed)."""

    def __init__(self, channel: grpc.Channel, *, deadline_seconds: float, max_bytes: int) -> None:
        self._stub = docstore_pb2_grpc.DocumentStoreStub(channel)
        self._deadline = deadline_seconds
        self._max_bytes = max_bytes

    def __call__(self, document_id: str) -> bytes:
        """The package bytes of `document_id`; grpc.RpcError when docstore cannot give them."""
        chunks = self._stub.GetPackage(
            docstore_pb2.GetDocumentRequest(id=document_id), timeout=self._deadline
        )
        data = bytearray()
        for chunk in chunks:
            data += chunk.data
            if len(data) > self._max_bytes:
                _stop(chunks)
                raise PackageTooLarge(f"package of document {document_id} exceeds {self._max_bytes} bytes")
        return bytes(data)


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
