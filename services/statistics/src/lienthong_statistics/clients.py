"""What statistics asks the directory: every agency's tier and province, cached briefly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong_common.grpcutil import channel_pool
from lienthong_common.mtls import ClientTls
from lienthong_statistics.domain import AgencyInfo


class AgencyDirectory(Protocol):
    def list_agencies(self) -> list[AgencyInfo]:
        """Every agency the directory lists today."""
        ...


class GrpcAgencyDirectory:
    """The directory service over gRPC (channel opened on first use)."""

    def __init__(
        self, address: str, *, tls: ClientTls | None, deadline_seconds: float, connections: int = 1
    ) -> None:
        self._address = address
        self._tls = tls
        self._connections = connections
        self._deadline = deadline_seconds
        self._stub: directory_pb2_grpc.DirectoryServiceStub | None = None

    def list_agencies(self) -> list[AgencyInfo]:
        if self._stub is None:
            self._stub = directory_pb2_grpc.DirectoryServiceStub(
                channel_pool(self._address, self._connections, tls=self._tls, peer="directory")
            )
        reply = self._stub.ListAgencies(directory_pb2.ListAgenciesRequest(), timeout=self._deadline)
        return [
            AgencyInfo(code=a.code, tier=a.tier, province_code=a.province_code, status=a.status or "active")
            for a in reply.agencies
        ]


class CachedAgencyDirectory:
    """Keeps the last answer for `ttl_seconds`; reports ask often, agencies change rarely."""

    def __init__(
        self,
        inner: AgencyDirectory,
        *,
        ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._agencies: list[AgencyInfo] | None = None
        self._fetched_at = 0.0

    def list_agencies(self) -> list[AgencyInfo]:
        with self._lock:
            now = self._clock()
            if self._agencies is None or now - self._fetched_at >= self._ttl:
                self._agencies = self._inner.list_agencies()
                self._fetched_at = now
            return self._agencies
