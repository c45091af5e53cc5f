"""LIENTHONG_GRPC__CLIENT_CONNECTIONS: the gateway's channels to the services, pooled or not."""

from __future__ import annotations

from fastapi.testclient import TestClient

from lienthong_common.grpcutil import ChannelPool
from lienthong_common.settings import GrpcSettings, ServiceAddresses, Settings
from lienthong_gateway.app import create_app
from lienthong_gateway.clients import PlatformClients


def test_one_connection_per_service_by_default() -> None:
    clients = PlatformClients.connect(ServiceAddresses(), tls=None)
    try:
        assert len(clients.channels) == 5
        assert not any(isinstance(ch, ChannelPool) for ch in clients.channels)
    finally:
        clients.close()


def test_several_connections_per_service() -> None:
    clients = PlatformClients.connect(ServiceAddresses(), tls=None, connections=3)
    try:
        assert all(isinstance(ch, ChannelPool) and len(ch.channels) == 3 for ch in clients.channels)
    finally:
        clients.close()


def test_the_lifespan_takes_the_count_from_settings() -> None:
    settings = Settings(grpc=GrpcSettings(client_connections=4))
    with TestClient(create_app(settings)) as client:
        channels = client.app.state.gateway.clients.channels  # type: ignore[attr-defined]
        assert all(isinstance(ch, ChannelPool) and len(ch.channels) == 4 for ch in channels)
