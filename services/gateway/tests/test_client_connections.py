"""LIENTHONG_GRPC__CLIENT_CONNECTIONS: the gateway's channels to the services, pooled or not."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from lienthong_common.grpcutil import ChannelPool
from lienthong_common.mtls import TLS_DIR, ensure_identities
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


def test_the_lifespan_takes_the_count_from_settings(tmp_path: Path) -> None:
    ensure_identities(tmp_path / TLS_DIR)  # the gateway's identity, where lienthong run puts it
    settings = Settings(data_dir=tmp_path, grpc=GrpcSettings(client_connections=4))
    with TestClient(create_app(settings)) as client:
        gateway = client.app.state.gateway  # type: ignore[attr-defined]
        assert all(isinstance(ch, ChannelPool) and len(ch.channels) == 4 for ch in gateway.clients.channels)
        assert gateway.clients.tls.identity == "gateway"
