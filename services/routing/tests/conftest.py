"""Fixtures: a fresh SQLite database per test and a fake directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from routing_support import FakeDirectory, serving
from sqlalchemy.orm import Session, sessionmaker

from lienthong.routing.v1 import routing_pb2_grpc
from lienthong_common.db import make_engine, make_session_factory
from lienthong_routing.grpc_api import RoutingServicer
from lienthong_routing.models import Base


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'routing.db'}")
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as s, s.begin():
        yield s


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory()


@pytest.fixture
def stub(sessions: sessionmaker[Session]) -> Iterator[routing_pb2_grpc.RoutingStub]:
    """Routing's gRPC API over a real server on loopback."""
    with serving(RoutingServicer(sessions)) as stub:
        yield stub
