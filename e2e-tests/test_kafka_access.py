"""Kafka is authenticated and authorised: SASL/SCRAM principals, ACLs from the ownership table,
and consumers that ignore records whose producer header is not the topic's owner
(docs/adr/0070, 0071). Against the session's real broker (infra/kafka.sh)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # type: ignore[import-untyped]
from kafka.admin import KafkaAdminClient  # type: ignore[import-untyped]
from kafka.errors import (  # type: ignore[import-untyped]
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from harness import DEPARTMENT, KAFKA_PORT, PROVINCE, ROOT, RunningPlatform, eventually
from lienthong_common.kafka_access import PRODUCER_HEADER
from lienthong_common.outbox import TOPIC_DELIVERIES, TOPIC_DIRECTORY, TOPIC_VERIFIED, new_event

SERVER_LOG = ROOT / ".data" / f"kafka-{KAFKA_PORT}" / "server.log"


def credentials(platform: RunningPlatform) -> Path:
    found = platform.local.kafka_credentials_dir()
    assert found is not None, "infra/kafka.sh made no credentials"
    return found


def sasl(platform: RunningPlatform, user: str, password: str | None = None) -> dict[str, Any]:
    secret = password or (credentials(platform) / f"{user}.password").read_text().strip()
    return {
        "bootstrap_servers": platform.local.kafka_bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": user,
        "sasl_plain_password": secret,
    }


def topics_seen_by(options: dict[str, Any]) -> set[str]:
    admin = KafkaAdminClient(client_id="e2e-access", bootstrap_timeout_ms=8000, **options)
    try:
        return {t for t in admin.list_topics() if not t.startswith("__")}
    finally:
        admin.close()


def test_an_unauthenticated_client_is_refused(platform: RunningPlatform) -> None:
    with pytest.raises(KafkaError):
        topics_seen_by({"bootstrap_servers": platform.local.kafka_bootstrap})
    # The same broker answers a principal with its password, and shows it only its topics.
    assert topics_seen_by(sasl(platform, "routing")) == {TOPIC_VERIFIED, TOPIC_DELIVERIES}


def test_a_wrong_password_is_refused(platform: RunningPlatform) -> None:
    before = SERVER_LOG.read_text(errors="replace").count("invalid credentials")
    with pytest.raises(KafkaError):
        topics_seen_by(sasl(platform, "routing", password="not-the-password"))
    log = SERVER_LOG.read_text(errors="replace")
    assert log.count("invalid credentials with SASL mechanism SCRAM-SHA-512") > before
    assert (credentials(platform) / "routing.password").read_text().strip() not in log


def test_a_service_cannot_write_a_topic_it_does_not_own(platform: RunningPlatform) -> None:
    # Statistics writes nothing; routing owns the delivery topic, not the verified one.
    for user in ("statistics", "routing"):
        producer = KafkaProducer(client_id=f"e2e-{user}", enable_idempotence=False, **sasl(platform, user))
        try:
            with pytest.raises(TopicAuthorizationFailedError):
                producer.send(TOPIC_VERIFIED, key=b"forged", value=b"forged").get(timeout=30)
        finally:
            producer.close(timeout=5)


def end_offsets_as(platform: RunningPlatform, user: str, topic: str) -> dict[Any, int]:
    # A consumer of its own per question: kafka-python keeps a topic it was refused in its
    # metadata and would wait on it for the next one.
    consumer = KafkaConsumer(client_id=f"e2e-{user}", group_id=None, **sasl(platform, user))
    try:
        return dict(consumer.end_offsets([TopicPartition(topic, 0)], timeout_ms=30000))
    finally:
        consumer.close()


def test_a_service_cannot_read_a_topic_it_does_not_consume_nor_join_another_group(
    platform: RunningPlatform,
) -> None:
    assert end_offsets_as(platform, "statistics", TOPIC_DELIVERIES)  # a topic it consumes
    with pytest.raises(TopicAuthorizationFailedError):
        end_offsets_as(platform, "statistics", TOPIC_DIRECTORY)
    admin = KafkaAdminClient(client_id="e2e-statistics", **sasl(platform, "statistics"))
    try:
        [described] = admin.describe_topics([TOPIC_DIRECTORY])
    finally:
        admin.close()
    assert described["error_code"] == TopicAuthorizationFailedError.errno
    joining = KafkaConsumer(
        TOPIC_DELIVERIES,
        client_id="e2e-statistics",
        group_id="lienthong-routing",
        **sasl(platform, "statistics"),
    )
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            for _ in range(20):
                joining.poll(timeout_ms=1000)
    finally:
        joining.close(autocommit=False)


def committed_offset(platform: RunningPlatform, group: str, topic: str, partition: int) -> int:
    admin = KafkaAdminClient(client_id="e2e-admin", **sasl(platform, "admin"))
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    meta = offsets.get(TopicPartition(topic, partition))
    return int(meta.offset) if meta is not None else -1


def foreign_records_counted(platform: RunningPlatform, service: str) -> float:
    port = platform.local.metrics_port(service)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("lienthong_consumer_foreign_records_total")
        and f'messaging_consumer_group_name="lienthong-{service}"' in line
        and 'lienthong_producer="statistics"' in line
    )


def test_a_record_with_a_forged_producer_header_is_ignored_and_its_offset_moves_on(
    platform: RunningPlatform,
) -> None:
    # A DocumentVerified that routing would deliver at once, on the verified topic, written by
    # a principal allowed to write there but carrying another service's name as its producer.
    document_id = str(uuid.uuid4())
    forged = new_event(document_id)
    forged.verified.sender_code = PROVINCE
    forged.verified.recipient_codes.append(DEPARTMENT)
    forged.verified.subject = "Forged: never to be delivered"
    forged.verified.indication = "TOTAL_PASSED"
    counted_before = foreign_records_counted(platform, "routing")
    producer = KafkaProducer(client_id="e2e-forger", **sasl(platform, "sigverify"))
    try:
        sent = producer.send(
            TOPIC_VERIFIED,
            key=document_id.encode(),
            value=forged.SerializeToString(),
            headers=[(PRODUCER_HEADER, b"statistics")],
        ).get(timeout=30)
    finally:
        producer.close(timeout=5)

    # Routing commits past the record (the commit follows the batch, so it has been decided)...
    eventually(
        lambda: committed_offset(platform, "lienthong-routing", TOPIC_VERIFIED, sent.partition) > sent.offset,
        what="routing to commit past the forged record",
    )
    # ...counted it as foreign, and applied nothing: no delivery, no document.
    assert foreign_records_counted(platform, "routing") == counted_before + 1
    inbox = platform.cli_json("inbox", "--as", DEPARTMENT, "--all")["items"]
    assert document_id not in {item["id"] for item in inbox}
