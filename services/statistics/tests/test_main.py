"""main.build wires the event consumer and the servicer into a runtime."""

from __future__ import annotations

from concurrent import futures
from pathlib import Path

import grpc
from statistics_support import demo_directory

from lienthong_common.kafka_access import access_of
from lienthong_common.outbox import TOPIC_DELIVERIES, TOPIC_SUBMITTED, TOPIC_VERIFIED
from lienthong_common.service import ServiceRuntime
from lienthong_common.settings import Settings
from lienthong_statistics.main import build
from lienthong_statistics.models import OUTBOX, Base


def test_build_registers_the_consumer_and_the_service(tmp_path: Path) -> None:
    runtime = ServiceRuntime(
        name="statistics", settings=Settings(data_dir=tmp_path), metadata=Base.metadata, outbox=OUTBOX
    )
    register = build(runtime, directory=demo_directory())
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    try:
        assert register(server) == ["lienthong.statistics.v1.Statistics"]
    finally:
        server.stop(grace=None)
        runtime.engine.dispose()
    [consumer] = runtime.consumers
    assert consumer.group == "lienthong-statistics"
    assert consumer.topics == [TOPIC_SUBMITTED, TOPIC_VERIFIED, TOPIC_DELIVERIES]
    # What the broker lets statistics' principal do (docs/adr/0070) covers what it consumes.
    access = access_of("statistics")
    assert consumer.group in access.groups and set(consumer.topics) <= set(access.reads)
