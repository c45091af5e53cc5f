"""gRPC stubs for the five platform services, created once per app in its lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from lienthong.directory.v1 import directory_pb2_grpc
from lienthong.docstore.v1 import docstore_pb2_grpc
from lienthong.routing.v1 import routing_pb2_grpc
from lienthong.sigverify.v1 import sigverify_pb2_grpc
from lienthong.statistics.v1 import statistics_pb2_grpc
from lienthong_common.grpcutil import channel_pool
from lienthong_common.mtls import ClientTls
from lienthong_common.settings import ServiceAddresses


@dataclass
class PlatformClients:
    directory: directory_pb2_grpc.DirectoryServiceStub
    docstore: docstore_pb2_grpc.DocumentStoreStub
    sigverify: sigverify_pb2_grpc.SignatureVerifierStub
    routing: routing_pb2_grpc.RoutingStub
    statistics: statistics_pb2_grpc.StatisticsStub
    addresses: ServiceAddresses
    channels: list[grpc.Channel]
    # The gateway's own identity (mTLS), also for /readyz's health checks; None = plaintext.
    tls: ClientTls | None = None

    @classmethod
    def connect(
        cls, addresses: ServiceAddresses, *, tls: ClientTls | None, connections: int = 1
    ) -> PlatformClients:
        """Channels to the five services, each over `connections` connections (round-robin),
        presenting the gateway's certificate (`tls`)."""
        chans = {
            name: channel_pool(getattr(addresses, name), connections, tls=tls, peer=name)
            for name in ("directory", "docstore", "sigverify", "routing", "statistics")
        }
        return cls(
            directory=directory_pb2_grpc.DirectoryServiceStub(chans["directory"]),
            docstore=docstore_pb2_grpc.DocumentStoreStub(chans["docstore"]),
            sigverify=sigverify_pb2_grpc.SignatureVerifierStub(chans["sigverify"]),
            routing=routing_pb2_grpc.RoutingStub(chans["routing"]),
            statistics=statistics_pb2_grpc.StatisticsStub(chans["statistics"]),
            addresses=addresses,
            channels=list(chans.values()),
            tls=tls,
        )

    def close(self) -> None:
        for ch in self.channels:
            ch.close()
