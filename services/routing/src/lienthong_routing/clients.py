"""What routing asks the directory: who actually receives a document addressed to some codes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong_common.grpcutil import channel_pool
from lienthong_common.mtls import ClientTls


@dataclass(frozen=True)
class Resolution:
    requested_code: str
    resolved_code: str
    found: bool
    reason: str = ""
    group_code: str = ""  # set when requested_code is a group address and this is a member

    @property
    def redirected(self) -> bool:
        return self.found and not self.group_code and self.resolved_code != self.requested_code


class RecipientDirectory(Protocol):
    def resolve_recipients(self, codes: Sequence[str], *, as_of: date) -> list[Resolution]:
        """One resolution per requested code, in order."""
        ...


class GrpcRecipientDirectory:
    """The directory service over gRPC (channel opened on first use)."""

    def __init__(
        self, address: str, *, tls: ClientTls | None, deadline_seconds: float, connections: int = 1
    ) -> None:
        self._address = address
        self._tls = tls
        self._connections = connections
        self._deadline = deadline_seconds
        self._stub: directory_pb2_grpc.DirectoryServiceStub | None = None

    def _directory(self) -> directory_pb2_grpc.DirectoryServiceStub:
        if self._stub is None:
            self._stub = directory_pb2_grpc.DirectoryServiceStub(
                channel_pool(self._address, self._connections, tls=self._tls, peer="directory")
            )
        return self._stub

    def resolve_recipients(self, codes: Sequence[str], *, as_of: date) -> list[Resolution]:
        reply = self._directory().ResolveRecipients(
            directory_pb2.ResolveRecipientsRequest(codes=list(codes), as_of=as_of.isoformat()),
            timeout=self._deadline,
        )
        # A group address answers with one resolution per member, all under the same code.
        by_code: dict[str, list[directory_pb2.Resolution]] = {}
        for r in reply.resolutions:
            by_code.setdefault(r.requested_code, []).append(r)
        resolutions = []
        for code in codes:
            answers = by_code.get(code)
            if not answers:
                resolutions.append(Resolution(code, "", False, "the directory did not answer for it"))
                continue
            for found in answers:
                resolutions.append(
                    Resolution(code, found.resolved_code or code, found.found, found.reason, found.group_code)
                )
        return resolutions
