"""main.build wires the verified consumer and the servicer into a runtime."""

from __future__ import annotations

from concurrent import futures
from pathlib import Path

import grpc
from routing_support import FakeDirectory

from lienthong_common.kafka_access import access_of
from lienthong_common.outbox import TOPIC_VERIFIED
from lienthong_common.service import ServiceRuntime
from lienthong_common.settings import RoutingSettings, Settings, WebhookSettings
from lienthong_routing.main import build
from lienthong_routing.models import OUTBOX, Base
from lienthong_routing.webhooks import WebhookDispatcher


def test_build_registers_the_consumer_and_the_service(tmp_path: Path) -> None:
    runtime = ServiceRuntime(
        name="routing", settings=Settings(data_dir=tmp_path), metadata=Base.metadata, outbox=OUTBOX
    )
    register = build(runtime, directory=FakeDirectory())
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    try:
        assert register(server) == ["lienthong.routing.v1.Routing"]
    finally:
        server.stop(grace=None)
        runtime.engine.dispose()
    [consumer] = runtime.consumers
    assert (consumer.group, consumer.topics) == ("lienthong-routing", [TOPIC_VERIFIED])
    # What the broker lets routing's principal do (docs/adr/0070) covers what it consumes.
    access = access_of("routing")
    assert consumer.group in access.groups and set(consumer.topics) <= set(access.reads)
    [dispatcher] = runtime.workers
    assert isinstance(dispatcher, WebhookDispatcher)
    dispatcher.stop()


def test_webhooks_can_be_switched_off(tmp_path: Path) -> None:
    runtime = ServiceRuntime(
        name="routing", settings=Settings(data_dir=tmp_path), metadata=Base.metadata, outbox=OUTBOX
    )
    settings = RoutingSettings(webhooks=WebhookSettings(enabled=False))
    build(runtime, directory=FakeDirectory(), settings=settings)
    runtime.engine.dispose()
    assert runtime.workers == []
