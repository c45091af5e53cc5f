"""The Kafka ownership table, the ACLs made from it, the producer-header rule and the
principal's settings (docs/adr/0070, 0071)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from lienthong_common.kafka_access import (
    ACCESS,
    ADMIN_USER,
    OWNERS,
    PRODUCER_HEADER,
    SERVICES,
    acl_entries,
    ensure_passwords,
    from_owner,
    main,
    scram_format_argument,
)
from lienthong_common.outbox import (
    ALL_TOPICS,
    TOPIC_DELIVERIES,
    TOPIC_DIRECTORY,
    TOPIC_SUBMITTED,
    TOPIC_VERIFIED,
)
from lienthong_common.settings import KafkaSettings


def test_every_platform_topic_has_exactly_one_owner() -> None:
    writers = [topic for access in ACCESS for topic in access.writes]
    assert sorted(writers) == sorted(ALL_TOPICS)
    assert OWNERS == {
        TOPIC_SUBMITTED: "docstore",
        TOPIC_VERIFIED: "sigverify",
        TOPIC_DELIVERIES: "routing",
        TOPIC_DIRECTORY: "directory",
    }
    assert len(set(SERVICES)) == len(SERVICES) and ADMIN_USER not in SERVICES


def test_acls_allow_each_service_only_its_own_topics_and_groups() -> None:
    entries = set(acl_entries())
    statistics = {e for e in entries if e[0] == "User:statistics"}
    assert statistics == {
        ("User:statistics", "topic", TOPIC_SUBMITTED, "READ"),
        ("User:statistics", "topic", TOPIC_VERIFIED, "READ"),
        ("User:statistics", "topic", TOPIC_DELIVERIES, "READ"),
        ("User:statistics", "group", "lienthong-statistics", "READ"),
    }
    assert {e for e in entries if e[0] == "User:docstore"} == {
        ("User:docstore", "topic", TOPIC_SUBMITTED, "WRITE")
    }
    # One writer per topic; no entry on the cluster or with a wildcard.
    writes = [e[2] for e in entries if e[3] == "WRITE"]
    assert sorted(writes) == sorted(ALL_TOPICS)
    assert all(e[1] in ("topic", "group") and "*" not in e[2] for e in entries)
    mapped = acl_entries({"routing": "User:prod-routing"})
    assert ("User:prod-routing", "topic", TOPIC_DELIVERIES, "WRITE") in mapped


@pytest.mark.parametrize(
    ("topic", "headers", "applied"),
    [
        (TOPIC_VERIFIED, [(PRODUCER_HEADER, b"sigverify")], True),
        (TOPIC_VERIFIED, [(PRODUCER_HEADER, b"statistics")], False),
        (TOPIC_VERIFIED, [], False),
        (TOPIC_VERIFIED, None, False),
        # The last header is the record's (as Kafka clients read them).
        (TOPIC_VERIFIED, [(PRODUCER_HEADER, b"sigverify"), (PRODUCER_HEADER, b"routing")], False),
        (TOPIC_VERIFIED, [(PRODUCER_HEADER, b"routing"), (PRODUCER_HEADER, b"sigverify")], True),
        ("someone.elses.topic", [], True),
    ],
)
def test_a_record_is_applied_only_when_its_producer_header_is_the_owner(
    topic: str, headers: list[tuple[str, bytes]] | None, applied: bool
) -> None:
    assert from_owner(topic, headers) is applied


def test_passwords_are_made_once_per_principal_readable_by_the_owner_only(tmp_path: Path) -> None:
    files = ensure_passwords(tmp_path / "credentials")
    assert set(files) == {ADMIN_USER, *SERVICES}
    assert (tmp_path / "credentials").stat().st_mode & 0o777 == 0o700
    first = {user: path.read_text() for user, path in files.items()}
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in files.values())
    assert len(set(first.values())) == len(first) and all(len(v.strip()) >= 40 for v in first.values())
    files["routing"].write_text("rotated-by-the-operator\n")
    again = ensure_passwords(tmp_path / "credentials")
    assert again["routing"].read_text() == "rotated-by-the-operator\n"
    assert again["admin"].read_text() == first["admin"]


def test_the_format_argument_carries_a_salted_password_never_the_password(tmp_path: Path) -> None:
    argument = scram_format_argument("admin", "s3cret-value-of-the-admin")
    assert argument.startswith("SCRAM-SHA-512=[name=admin,iterations=8192,salt=")
    assert "s3cret-value-of-the-admin" not in argument
    assert scram_format_argument("admin", "x") != scram_format_argument("admin", "x")  # fresh salt


def test_the_cli_lists_the_principals(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["services"]) == 0
    assert capsys.readouterr().out.split() == list(SERVICES)


def test_without_a_username_clients_connect_without_authentication() -> None:
    options = KafkaSettings(bootstrap_servers="a:1, b:2").client_options()
    assert options == {"bootstrap_servers": ["a:1", "b:2"], "security_protocol": "PLAINTEXT"}


def test_a_password_file_is_read_at_each_connection(tmp_path: Path) -> None:
    secret = tmp_path / "routing.password"
    secret.write_text("first-password\n")
    settings = KafkaSettings(username="routing", password_file=secret)
    options = settings.client_options()
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("routing", "first-password")
    secret.write_text("rotated-password\n")
    assert settings.client_options()["sasl_plain_password"] == "rotated-password"
    assert "first-password" not in repr(settings) and "rotated-password" not in repr(settings)


def test_a_password_given_inline_is_kept_secret() -> None:
    settings = KafkaSettings(username="docstore", password="inline-password")  # type: ignore[arg-type]
    assert settings.client_options()["sasl_plain_password"] == "inline-password"
    assert "inline-password" not in repr(settings) and "inline-password" not in str(settings)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"username": "routing"}, "neither LIENTHONG_KAFKA__PASSWORD nor LIENTHONG_KAFKA__PASSWORD_FILE"),
        ({"password": "x"}, "LIENTHONG_KAFKA__USERNAME is empty"),
        ({"security_protocol": "SASL_SSL"}, "SECURITY_PROTOCOL=SASL_SSL needs a username"),
        ({"username": "a", "password": "x", "password_file": "/p"}, "not both"),
        ({"username": "routing", "password_file": "/nonexistent/routing.password"}, "cannot be read"),
    ],
)
def test_incomplete_kafka_credentials_are_refused_at_start(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaSettings(**values)  # type: ignore[arg-type]


def test_an_empty_password_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "routing.password"
    empty.write_text("\n")
    with pytest.raises(ValidationError, match="is empty"):
        KafkaSettings(username="routing", password_file=empty)


def test_the_charts_access_values_are_the_ownership_table() -> None:
    values = yaml.safe_load(
        (Path(__file__).resolve().parents[3] / "charts/lienthong/values.yaml").read_text()
    )
    chart = {
        service: (tuple(a["writes"]), tuple(a["reads"]), tuple(a["groups"]))
        for service, a in values["kafka"]["access"].items()
    }
    assert chart == {a.service: (a.writes, a.reads, a.groups) for a in ACCESS}
    assert values["kafka"]["auth"]["enabled"] is True  # secure by default
