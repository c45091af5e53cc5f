"""GrpcRecipientDirectory against a stand-in directory server on a free port."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent import futures
from datetime import date

import grpc

from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong_routing.clients import GrpcRecipientDirectory, Resolution


class StandInDirectory(directory_pb2_grpc.DirectoryServiceServicer):
    def __init__(self) -> None:
        self.requests: list[directory_pb2.ResolveRecipientsRequest] = []
        self.peers: list[str] = []  # the client's ip:port per request: one per connection

    def ResolveRecipients(
        self, request: directory_pb2.ResolveRecipientsRequest, context: grpc.ServicerContext
    ) -> directory_pb2.ResolveRecipientsResponse:
        self.requests.append(request)
        self.peers.append(context.peer())
        return directory_pb2.ResolveRecipientsResponse(
            resolutions=[
                directory_pb2.Resolution(
                    requested_code="000.00.24.H44",
                    resolved_code="000.00.00.H44",
                    found=True,
                    reason="dissolved",
                ),
                directory_pb2.Resolution(requested_code="000.00.00.H99", found=False, reason="unknown"),
                directory_pb2.Resolution(
                    requested_code="000.00.01.H49", resolved_code="000.00.01.H49", found=True
                ),
            ]
        )


@contextlib.contextmanager
def _serving(servicer: StandInDirectory) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    directory_pb2_grpc.add_DirectoryServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def test_resolve_recipients_over_grpc() -> None:
    servicer = StandInDirectory()
    with _serving(servicer) as address:
        client = GrpcRecipientDirectory(address, tls=None, deadline_seconds=5)
        codes = ["000.00.01.H49", "000.00.24.H44", "000.00.00.H99"]
        resolutions = client.resolve_recipients(codes, as_of=date(2025, 7, 2))

    assert servicer.requests[0].as_of == "2025-07-02"
    assert list(servicer.requests[0].codes) == codes
    assert resolutions == [
        Resolution("000.00.01.H49", "000.00.01.H49", True, ""),
        Resolution("000.00.24.H44", "000.00.00.H44", True, "dissolved"),
        Resolution("000.00.00.H99", "000.00.00.H99", False, "unknown"),
    ]
    assert resolutions[1].redirected and not resolutions[0].redirected


def test_calls_spread_over_client_connections() -> None:
    # LIENTHONG_GRPC__CLIENT_CONNECTIONS reaches routing's directory client: with 3, its calls
    # use 3 connections (so several directory pods or workers share them), in turn.
    servicer = StandInDirectory()
    with _serving(servicer) as address:
        client = GrpcRecipientDirectory(address, tls=None, deadline_seconds=5, connections=3)
        for _ in range(6):
            client.resolve_recipients(["000.00.01.H49"], as_of=date(2025, 7, 2))
    assert len(set(servicer.peers)) == 3
