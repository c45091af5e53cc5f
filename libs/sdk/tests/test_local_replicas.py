"""LocalPlatform's replicas: names, ports and environments (nothing is started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lienthong_sdk.local import (
    ALL_SERVICES,
    CONSUMER_SERVICES,
    LocalPlatform,
    process_name,
    split_process_name,
)


def platform(tmp_path: Path, replicas: int = 1) -> LocalPlatform:
    return LocalPlatform(
        data_dir=tmp_path, grpc_port_base=28051, http_port=28151, replicas=replicas, otlp_endpoint=""
    )


def test_one_replica_is_the_plain_platform(tmp_path: Path) -> None:
    local = platform(tmp_path)
    assert local.process_names() == list(ALL_SERVICES)
    assert local.grpc_address("routing") == "127.0.0.1:28054"
    assert local.metrics_port("routing") == 28254
    assert local.metrics_port("gateway") == 28256  # not the API port: no anonymous /metrics there
    assert local.log_path("routing") == tmp_path / "logs" / "routing.log"


def test_names_round_trip() -> None:
    assert process_name("sigverify", 0) == "sigverify"
    assert process_name("sigverify", 1) == "sigverify.1"
    assert split_process_name("sigverify.1") == ("sigverify", 1)
    assert split_process_name("gateway") == ("gateway", 0)


def test_replicas_of_the_consumer_services_only(tmp_path: Path) -> None:
    local = platform(tmp_path, replicas=2)
    names = local.process_names()
    assert names[: len(ALL_SERVICES)] == list(ALL_SERVICES)
    assert names[len(ALL_SERVICES) :] == [f"{s}.1" for s in CONSUMER_SERVICES]
    assert "docstore.1" not in names and "gateway.1" not in names


def test_each_replica_has_its_own_ports_and_the_same_database(tmp_path: Path) -> None:
    local = platform(tmp_path, replicas=3)
    local.database_urls = {"routing": "postgresql+psycopg://x/routing"}
    ports = {local.grpc_port(n) for n in local.process_names() if n != "gateway"}
    metrics = {local.metrics_port(n) for n in local.process_names()}
    assert len(ports) == len(local.process_names()) - 1
    assert len(metrics) == len(ports) + 1 and not ports & metrics
    assert local.http_port not in ports | metrics
    first, second = local.env_for("routing"), local.env_for("routing.2")
    assert first["LIENTHONG_GRPC__PORT"] == "28054"
    assert second["LIENTHONG_GRPC__PORT"] == "28074"
    assert second["LIENTHONG_METRICS__PORT"] == "28274"
    assert first["DATABASE_URL"] == second["DATABASE_URL"] == "postgresql+psycopg://x/routing"
    # Callers keep addressing replica 0.
    assert second["LIENTHONG_SERVICES__ROUTING"] == "127.0.0.1:28054"
    assert local.log_path("routing.2") == tmp_path / "logs" / "routing.2.log"


def test_replica_count_is_bounded(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="replicas"):
        platform(tmp_path, replicas=0)
    with pytest.raises(ValueError, match="replicas"):
        platform(tmp_path, replicas=11)
    highest = platform(tmp_path, replicas=10)
    assert max(highest.grpc_port(n) for n in highest.process_names() if n != "gateway") < highest.http_port
