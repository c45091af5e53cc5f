"""Who may write and read which Kafka topic: the one table the broker's ACLs are made from.

Each topic has exactly one owner, the service whose outbox publishes it; each consuming
service reads the topics its consumers subscribe to, as its own consumer group. From this
table come the ACLs of the local broker (`python -m lienthong_common.kafka_access apply`, run
by infra/kafka.sh), the chart's KafkaUser ACLs (values.yaml `kafka.access`, checked against
this table by a test) and the consumers' producer-header check (docs/adr/0070, 0071).

The relay stamps `PRODUCER_HEADER` (the service's name) on every record; a consumer skips a
record whose header is not the topic's owner. The ACLs are the control, the header is defence
in depth against a misconfigured principal.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import logging
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from lienthong_common.outbox import (
    ALL_TOPICS,
    TOPIC_DELIVERIES,
    TOPIC_DIRECTORY,
    TOPIC_SUBMITTED,
    TOPIC_VERIFIED,
)

log = logging.getLogger(__name__)

PRODUCER_HEADER = "lienthong-producer"
# The broker's super user: formats storage, creates topics and ACLs; never a service.
ADMIN_USER = "admin"


@dataclass(frozen=True)
class ServiceAccess:
    """One service's principal: the topics it owns (writes), reads, and its consumer groups."""

    service: str
    writes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


ACCESS: tuple[ServiceAccess, ...] = (
    # AgencyChanged (events.py); consumes the delivery events (consumers.DeliveryEvents).
    ServiceAccess(
        "directory", writes=(TOPIC_DIRECTORY,), reads=(TOPIC_DELIVERIES,), groups=("lienthong-directory",)
    ),
    # DocumentSubmitted (events.py); consumes nothing.
    ServiceAccess("docstore", writes=(TOPIC_SUBMITTED,)),
    # DocumentVerified (events.py); consumes submitted (events.SubmittedDocuments).
    ServiceAccess(
        "sigverify", writes=(TOPIC_VERIFIED,), reads=(TOPIC_SUBMITTED,), groups=("lienthong-sigverify",)
    ),
    # DeliveryUpdated / DocumentRefused (events.py); consumes verified (consumers.VerifiedDocuments).
    ServiceAccess(
        "routing", writes=(TOPIC_DELIVERIES,), reads=(TOPIC_VERIFIED,), groups=("lienthong-routing",)
    ),
    # Emits nothing; counts submitted, verified and delivery events (consumers.ExchangeEvents,
    # and its rebuild, which reads the topics with no group and the live group's offsets).
    ServiceAccess(
        "statistics",
        reads=(TOPIC_SUBMITTED, TOPIC_VERIFIED, TOPIC_DELIVERIES),
        groups=("lienthong-statistics",),
    ),
)

SERVICES: tuple[str, ...] = tuple(a.service for a in ACCESS)
OWNERS: dict[str, str] = {topic: a.service for a in ACCESS for topic in a.writes}


def owner_of(topic: str) -> str | None:
    """The service that alone may publish `topic` (None for a topic not of the platform)."""
    return OWNERS.get(topic)


def producer_of(headers: list[tuple[str, bytes]] | None) -> str | None:
    """A record's producer header (the last one, as Kafka clients read headers), or None."""
    found = None
    for key, value in headers or []:
        if key == PRODUCER_HEADER:
            found = bytes(value or b"").decode("utf-8", "replace")
    return found


def from_owner(topic: str, headers: list[tuple[str, bytes]] | None) -> bool:
    """Whether a record may be applied: its producer header names its topic's owner (a topic
    not of the platform is not judged here)."""
    owner = owner_of(topic)
    return owner is None or producer_of(headers) == owner


def access_of(service: str) -> ServiceAccess:
    for access in ACCESS:
        if access.service == service:
            return access
    raise KeyError(f"{service!r} has no Kafka principal (services: {', '.join(SERVICES)})")


def acl_entries(principal_of: dict[str, str] | None = None) -> list[tuple[str, str, str, str]]:
    """(principal, resource type, resource name, operation) for every ALLOW entry, sorted.

    `principal_of` maps a service to its principal ("User:<service>" when absent).
    WRITE on a topic implies IDEMPOTENT_WRITE on the cluster (Kafka 3.0+, KIP-679), READ on a
    topic or group implies DESCRIBE, so these are all a service needs.
    """
    principal_of = principal_of or {}
    entries = []
    for access in ACCESS:
        principal = principal_of.get(access.service, f"User:{access.service}")
        for topic in access.writes:
            entries.append((principal, "topic", topic, "WRITE"))
        for topic in access.reads:
            entries.append((principal, "topic", topic, "READ"))
        for group in access.groups:
            entries.append((principal, "group", group, "READ"))
    return sorted(entries)


def ensure_passwords(directory: Path) -> dict[str, Path]:
    """A password file per principal (the admin and every service) in `directory`, made once.

    The directory is 0700 and each file 0600; a file that exists is kept, so a rotated password
    (written there by an operator) stays. Returns user -> file.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    files = {}
    for user in (ADMIN_USER, *SERVICES):
        path = directory / f"{user}.password"
        if not path.exists() or not path.read_text(encoding="utf-8").strip():
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                out.write(secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
        files[user] = path
    return files


def scram_format_argument(user: str, password: str, iterations: int = 8192) -> str:
    """The `kafka-storage format --add-scram` value for a user, salted here so the password
    itself never appears on a command line."""
    salt = secrets.token_bytes(24)
    salted = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return (
        f"SCRAM-SHA-512=[name={user},iterations={iterations},"
        f'salt="{base64.b64encode(salt).decode()}",saltedpassword="{base64.b64encode(salted).decode()}"]'
    )


def apply(*, bootstrap: str, admin_password: str, passwords: dict[str, str], partitions: int) -> None:
    """As the admin: set each service's SCRAM credential (`passwords`, service -> password),
    create the platform's topics when missing and the ACLs of the table. Idempotent."""
    from kafka.admin import (  # type: ignore[import-untyped]
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        NewTopic,
        ResourcePattern,
        ResourceType,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="lienthong-access",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=ADMIN_USER,
        sasl_plain_password=admin_password,
    )
    try:
        upserts = [
            UserScramCredentialUpsertion(user, ScramMechanism.SCRAM_SHA_512, password, iterations=8192)
            for user, password in sorted(passwords.items())
        ]
        if upserts:
            refused = {u: e for u, e in admin.alter_user_scram_credentials(upserts).items() if e}
            if refused:
                raise RuntimeError(f"setting the SCRAM credentials failed: {refused}")
        existing = set(admin.list_topics())
        missing = [
            # Kept forever: `lienthong stats rebuild` replays them from offset 0.
            NewTopic(
                name=t, num_partitions=partitions, replication_factor=1, topic_configs={"retention.ms": "-1"}
            )
            for t in ALL_TOPICS
            if t not in existing
        ]
        if missing:
            admin.create_topics(missing, raise_errors=False)
        types = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
        acls = [
            ACL(
                principal=principal,
                host="*",
                operation=getattr(ACLOperation, operation),
                permission_type=ACLPermissionType.ALLOW,
                resource_pattern=ResourcePattern(types[kind], name, ACLResourcePatternType.LITERAL),
            )
            for principal, kind, name, operation in acl_entries()
        ]
        result = admin.create_acls(acls)
        failed = result.get("failed", []) if isinstance(result, dict) else []
        if failed:
            raise RuntimeError(f"creating Kafka ACLs failed: {failed}")
    finally:
        admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lienthong_common.kafka_access",
        description="The platform's Kafka principals and ACLs (used by infra/kafka.sh).",
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("services", help="print the services that have a principal, one a line")
    acls = verbs.add_parser("acls", help="print the ACL entries, one a line")
    acls.add_argument("--principal-prefix", default="User:")
    made = verbs.add_parser("passwords", help="make the missing password files (0600) in DIR")
    made.add_argument("dir", type=Path)
    fmt = verbs.add_parser("format-argument", help="print the admin's `format --add-scram` value")
    fmt.add_argument("dir", type=Path)
    run = verbs.add_parser("apply", help="as the admin: the services' SCRAM users, the topics and the ACLs")
    run.add_argument("dir", type=Path, help="the password files <user>.password (see `passwords`)")
    run.add_argument("--bootstrap", required=True)
    run.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args(argv)
    if args.verb == "services":
        print("\n".join(SERVICES))
    elif args.verb == "passwords":
        ensure_passwords(args.dir)
    elif args.verb == "format-argument":
        print(scram_format_argument(ADMIN_USER, _read(args.dir / f"{ADMIN_USER}.password")))
    elif args.verb == "acls":
        mapping = {s: f"{args.principal_prefix}{s}" for s in SERVICES}
        for entry in acl_entries(mapping):
            print(" ".join(entry))
    else:
        if args.partitions < 1:
            parser.error(f"--partitions must be at least 1, not {args.partitions}")
        # Only read: the directory may be a read-only Secret volume (kube-local's Job).
        apply(
            bootstrap=args.bootstrap,
            admin_password=_read(args.dir / f"{ADMIN_USER}.password"),
            passwords={s: _read(args.dir / f"{s}.password") for s in SERVICES},
            partitions=args.partitions,
        )
        print(f"kafka_access: topics and {len(acl_entries())} ACL entries applied", file=sys.stderr)
    return 0


def _read(path: Path) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise SystemExit(
            f"kafka_access: cannot read {path} ({error.strerror}); make it with `passwords`"
        ) from None
    if not value:
        raise SystemExit(f"kafka_access: {path} is empty")
    return value


if __name__ == "__main__":
    raise SystemExit(main())
