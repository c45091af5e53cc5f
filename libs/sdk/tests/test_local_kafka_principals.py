"""LocalPlatform hands each service its Kafka principal from the broker's credentials (ADR 0070)."""

from __future__ import annotations

from pathlib import Path

from lienthong_sdk.local import LocalPlatform


def test_each_service_gets_its_own_principal_and_the_gateway_none(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    local = LocalPlatform(data_dir=tmp_path / "data", kafka_credentials=credentials, otlp_endpoint="")
    routing = local.env_for("routing.1")
    assert routing["LIENTHONG_KAFKA__USERNAME"] == "routing"
    assert routing["LIENTHONG_KAFKA__PASSWORD_FILE"] == str(credentials / "routing.password")
    assert routing["LIENTHONG_KAFKA__ENSURE_TOPICS"] == "false"
    assert local.env_for("docstore")["LIENTHONG_KAFKA__USERNAME"] == "docstore"
    assert "LIENTHONG_KAFKA__USERNAME" not in local.env_for("gateway")
    assert "LIENTHONG_KAFKA__PASSWORD" not in routing  # a file, never the password in the environment


def test_a_broker_without_credentials_gets_no_principal(tmp_path: Path) -> None:
    # No infra/kafka.sh data dir for this port: an external broker without authentication.
    local = LocalPlatform(data_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", otlp_endpoint="")
    assert local.kafka_credentials_dir() is None
    assert "LIENTHONG_KAFKA__USERNAME" not in local.env_for("routing")
