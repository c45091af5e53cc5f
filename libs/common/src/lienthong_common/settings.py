"""Settings read from the environment (prefix LIENTHONG_, nested with `__`), once per process.

Every setting of every service lives here, in one model: the runtime's (database, Kafka, gRPC,
HTTP, addresses, metrics) and one section per service (`LIENTHONG_<SERVICE>__<KEY>`), so a
process reads and validates its whole configuration once at start (docs/service-conventions.md).
"""

from __future__ import annotations

import ipaddress
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

# Refused in production, and by the gateway unless it listens only on loopback (anyone who
# knows it, which is everyone, could mint tokens); `lienthong run` generates a secret instead.
PLACEHOLDER_SECRET = "change-me-development-only"  # noqa: S105


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_partitions: int = 3
    # Consumers re-read from the beginning when they have no committed offset: a new
    # consumer group must see events published before it first joined.
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    ensure_topics: bool = True
    # How long the broker holds a consumer's fetch when there is nothing new. A fetch returns as
    # soon as a record arrives, so this sets only how often an idle consumer asks again (the
    # client's default, 500 ms, was 8 fetches a second from the four idle consumer groups).
    consumer_fetch_max_wait_ms: int = Field(default=5000, ge=100, le=25000)
    # The service's Kafka principal (SASL/SCRAM, docs/adr/0070): a username and its password,
    # given as LIENTHONG_KAFKA__PASSWORD or (preferred: never in the environment) as a file,
    # LIENTHONG_KAFKA__PASSWORD_FILE, read again at each connection so a rotated file is used
    # on the next reconnect. No username: no authentication (a broker with ACLs refuses it).
    username: str = ""
    password: SecretStr | None = None
    password_file: Path | None = None
    # Empty: SASL_PLAINTEXT with a username, PLAINTEXT without; SASL_SSL for a TLS listener.
    security_protocol: Literal["", "PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = ""
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    # SASL_SSL: the CA bundle (PEM) that signed the brokers' certificates.
    ssl_cafile: Path | None = None

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]

    @model_validator(mode="after")
    def _credentials_complete(self) -> KafkaSettings:
        if self.password is not None and self.password_file is not None:
            raise ValueError("set LIENTHONG_KAFKA__PASSWORD or LIENTHONG_KAFKA__PASSWORD_FILE, not both")
        has_password = self.password is not None or self.password_file is not None
        if self.username and not has_password:
            raise ValueError(
                f"LIENTHONG_KAFKA__USERNAME is {self.username!r} but neither LIENTHONG_KAFKA__PASSWORD "
                "nor LIENTHONG_KAFKA__PASSWORD_FILE is set"
            )
        if has_password and not self.username:
            raise ValueError("a Kafka password is set but LIENTHONG_KAFKA__USERNAME is empty")
        if self.security_protocol.startswith("SASL") and not self.username:
            raise ValueError(f"LIENTHONG_KAFKA__SECURITY_PROTOCOL={self.security_protocol} needs a username")
        if self.password_file is not None:
            self.read_password()  # refuse a missing or empty file at start, not at first publish
        return self

    def read_password(self) -> str:
        """The principal's password (from the file when one is given); never logged."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is None:
            return ""
        try:
            value = self.password_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ValueError(
                f"LIENTHONG_KAFKA__PASSWORD_FILE {self.password_file} cannot be read ({error.strerror})"
            ) from None
        if not value:
            raise ValueError(f"LIENTHONG_KAFKA__PASSWORD_FILE {self.password_file} is empty")
        return value

    def client_options(self) -> dict[str, Any]:
        """Connection and authentication options for every kafka-python client (producer,
        consumer, admin) of this principal."""
        protocol = self.security_protocol or ("SASL_PLAINTEXT" if self.username else "PLAINTEXT")
        options: dict[str, Any] = {"bootstrap_servers": self.servers, "security_protocol": protocol}
        if protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self.read_password()
        if protocol == "SASL_SSL" and self.ssl_cafile is not None:
            options["ssl_cafile"] = str(self.ssl_cafile)
        return options


class GrpcTlsSettings(BaseModel):
    """mTLS on every gRPC hop (docs/adr/0065): LIENTHONG_GRPC__TLS__<KEY>.

    Unset files default to data_dir/grpc-tls/{ca.pem,<identity>.pem,<identity>-key.pem}
    (lienthong_common.mtls.tls_files). The CA file may hold several CAs during a rotation.
    """

    # false = plaintext: refused unless the gRPC server binds to loopback only (unit tests).
    enabled: bool = True
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class GrpcSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 0
    tls: GrpcTlsSettings = GrpcTlsSettings()
    # A second, plaintext port serving only grpc.health.v1 (kubelet's gRPC probes present no
    # client certificate); 0 = none. Serves nothing but SERVING/NOT_SERVING.
    health_port: int = 0
    deadline_seconds: float = 10.0
    max_workers: int = 16
    # Processes of `lienthong-<svc> serve` sharing the gRPC port (SO_REUSEPORT): the kernel
    # spreads connections over them. On Kubernetes keep 1 and scale with replicas.
    workers: int = 1
    # Connections a client opens to each peer address, used round-robin per call: with more
    # than one, calls spread over the peer's worker processes (and over the pods behind a
    # ClusterIP), which one long-lived HTTP/2 connection never does.
    client_connections: int = 1
    # A server closes each client connection after about this long (gRPC adds +-10 % jitter),
    # gently: GOAWAY, calls in flight finish, the client reconnects for the next call. So
    # connections made before a scale-out are remade and reach the new pods or workers too,
    # instead of pinning every call to the old ones forever. 0 keeps connections for ever.
    max_connection_age_seconds: float = 300.0

    @model_validator(mode="after")
    def _plaintext_only_on_loopback(self) -> GrpcSettings:
        if not self.tls.enabled and not is_loopback(self.host):
            raise ValueError(
                f"LIENTHONG_GRPC__TLS__ENABLED=false (plaintext gRPC) is allowed only when "
                f"LIENTHONG_GRPC__HOST is a loopback address, not {self.host!r}"
            )
        return self

    @field_validator("max_connection_age_seconds")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError(f"LIENTHONG_GRPC__MAX_CONNECTION_AGE_SECONDS must be 0 or more, not {value}")
        return value

    @field_validator("workers", "client_connections")
    @classmethod
    def _at_least_one(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            raise ValueError(
                f"LIENTHONG_GRPC__{str(info.field_name).upper()} must be at least 1, not {value}"
            )
        return value


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080


class ServiceAddresses(BaseModel):
    """Where each gRPC service listens; one place, not repeated per caller."""

    directory: str = "127.0.0.1:50051"
    docstore: str = "127.0.0.1:50052"
    sigverify: str = "127.0.0.1:50053"
    routing: str = "127.0.0.1:50054"
    statistics: str = "127.0.0.1:50055"


DEFAULT_PORTS = {
    "directory": 50051,
    "docstore": 50052,
    "sigverify": 50053,
    "routing": 50054,
    "statistics": 50055,
    "gateway": 8080,
}


class DocstoreSettings(BaseModel):
    blob_dir: Path | None = None
    max_package_bytes: int = 50 * 1024 * 1024
    duplicate_window_days: int = 30
    chunk_bytes: int = 256 * 1024
    # Keep a newly written blob's pages in the page cache (see FilesystemBlobStore): off, the
    # pages are dropped once the blob is on disk and reused by the next upload's writes.
    cache_new_blobs: bool = False


def _cidrs(variable: str, value: list[str]) -> list[str]:
    """An operator's allow-list of networks, each one checked (the variable named when not)."""
    for cidr in value:
        try:
            ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError as error:
            raise ValueError(f"{variable}: {cidr!r} is not a network ({error})") from None
    return value


class SigverifySettings(BaseModel):
    # PEM files (root and intermediate CAs) trusted for document signatures.
    trust_roots: list[Path] = Field(default_factory=list)
    # if-declared: a declared CRL/OCSP source that cannot be reached is INDETERMINATE/TRY_LATER
    # (docs/adr/0064), and the document is held and re-verified, not passed (docs/adr/0075).
    revocation: Literal["off", "soft-fail", "if-declared", "hard-fail"] = "if-declared"
    # A document whose signer's revocation cannot be confirmed (TRY_LATER) is held: re-verified
    # after base, 2*base, 4*base ... seconds (at most max), and refused once it has been held
    # this long without a definite verdict (docs/adr/0075).
    revocation_deadline_seconds: float = Field(default=86400.0, gt=0)
    held_retry_base_seconds: float = Field(default=60.0, gt=0)
    held_retry_max_seconds: float = Field(default=3600.0, gt=0)
    # How often the re-verify loop looks for due holds, and how many it takes at once.
    held_poll_seconds: float = Field(default=5.0, gt=0)
    held_batch: int = Field(default=8, ge=1)
    # Whether the signer's certificate must be registered to the sending agency.
    require_binding: bool = True
    # Processes verifying PDFs in parallel: None = one per core, 0 = in the service process.
    workers: int | None = None
    # CRLs/OCSP responses kept until their nextUpdate (default data_dir/sigverify/revocation-cache).
    revocation_cache_dir: Path | None = None
    # Off: work from the revocation cache only (no network).
    revocation_fetching: bool = True
    revocation_fetch_timeout_seconds: float = 5.0
    # CRL/OCSP URLs (chosen by whoever issued a certificate) reach public addresses only
    # (lienthong_common.outbound, docs/adr/0080); these CIDRs are let through as well, e.g.
    # LIENTHONG_SIGVERIFY__REVOCATION_ALLOWED_CIDRS='["10.30.0.0/16"]' for a CA's internal
    # responder. Cloud metadata never is.
    revocation_allowed_cidrs: list[str] = Field(default_factory=list)
    # Verdicts per (PDF digest, policy, trust-store version), reused for this long at most.
    verdict_cache_seconds: int = 600
    verdict_cache_entries: int = 10000
    # The edXML envelope's XML-DSig: ignored, verified when present, or required.
    envelope_signature: Literal["off", "if-present", "required"] = "if-present"
    # Legacy senders sign with rsa-sha1; accepted (with a warning) unless this is off.
    allow_rsa_sha1: bool = True
    # PAdES signatures (the binding ones) made with SHA-1: refused (INDETERMINATE/
    # CRYPTO_CONSTRAINTS_FAILURE, "refused by policy") unless this is on.
    allow_sha1_pades: bool = False

    @field_validator("revocation_allowed_cidrs")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return _cidrs("LIENTHONG_SIGVERIFY__REVOCATION_ALLOWED_CIDRS", value)


class DirectorySettings(BaseModel):
    # An agency counts as connected when it has an active credential and exchanged this recently.
    connection_window_days: int = 30
    # Master keys wrapping the data keys of VDXP systems' secrets (docs/adr/0002): entries
    # `id:base64-of-32-bytes`, separated by commas or newlines, the first the current one; older
    # ones only decrypt until `lienthong-directory vdxp-rewrap` has moved every secret off them.
    # Either inline, or a file holding the same (a mounted Kubernetes Secret); not both. Without
    # either: in development a key generated once in data_dir; elsewhere VDXP systems are off.
    master_keys: SecretStr | None = None
    master_keys_file: Path | None = None


class GatewaySettings(BaseModel):
    jwt_secret: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    # The `kid` of tokens signed with jwt_secret (e.g. "2027-01"); empty: a random id chosen when
    # the gateway starts. Never derived from the secret: it only says which key to try first.
    jwt_key_id: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9._-]*$")
    # Keys that still verify tokens during a rotation (the newest, jwt_secret, signs).
    previous_jwt_secrets: list[SecretStr] = Field(default_factory=list)
    token_ttl_seconds: int = 900
    # How long the gateway trusts the directory's "this credential version is current" before
    # asking again: a credential revoked or rotated elsewhere stops working within this time
    # (0 = ask the directory on every request). See docs/adr/0017-gateway-credential-cache.md.
    credential_cache_seconds: float = 5.0
    max_request_bytes: int = 50 * 1024 * 1024
    # Per-agency token bucket: sustained requests per second and burst; 0 turns limiting off.
    rate_limit_per_second: float = 50.0
    rate_limit_burst: int = 200
    # How long a status post's Idempotency-Key is remembered by this gateway process.
    idempotency_ttl_seconds: int = 24 * 3600
    # HTTPS and optional mTLS: with tls_client_ca set, a presented client certificate must chain
    # to it and be registered to the calling agency in the directory; require_client_cert makes
    # one mandatory on every authenticated request.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    require_client_cert: bool = False
    # /vdxp/: refuse an XroadVnpt-timestamp more than this far in the future (0 = off, the
    # default: the SDK fixes the timestamp per service object, so its age means nothing).
    vdxp_max_future_skew_seconds: int = 0
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto uvicorn honours (comma-separated IPs or
    # CIDRs; "*" any). Only a TLS-terminating proxy's own addresses: whoever is trusted here
    # chooses the source address the sign-in throttle keys on and whether a request was HTTPS.
    forwarded_allow_ips: str = "127.0.0.1"
    # Sign-in throttle on every secret check (token, /reports/login, /vdxp), docs/security-matrix.md:
    # a (client id, source address) pair is locked after `signin_pair_failures` failures within
    # the window, a source address after `signin_address_failures`; locks last
    # `signin_lockout_seconds`, doubling on each repeat (at most an hour). The client id alone
    # is never locked, so its owner signs in from elsewhere while someone guesses.
    signin_pair_failures: int = 10
    signin_address_failures: int = 50
    signin_failure_window_seconds: float = 900.0
    signin_lockout_seconds: float = 300.0
    # A wrong (id, secret) seen this recently is refused again without asking the directory.
    signin_negative_cache_seconds: float = 30.0
    # Secret checks (scrypt in the directory) run on their own threads, this many at once.
    signin_concurrency: int = 4
    # Agencies besides each province's People's Committee (000.00.00.<province>) that play the
    # province's reporting role: they see every agency's paper counts in their province's report.
    report_reviewers: list[str] = Field(default_factory=list)


class WebhookSettings(BaseModel):
    """Routing's webhook pushes: LIENTHONG_ROUTING__WEBHOOKS__<KEY>."""

    enabled: bool = True
    # Attempts before a payload is dead-lettered (the first POST counts as one).
    max_attempts: int = Field(default=8, ge=1)
    # Back-off before attempt n+1: min(max_delay, base * 2**(n-1)), times a random factor in [0.5, 1].
    base_delay_seconds: float = Field(default=2.0, gt=0)
    max_delay_seconds: float = Field(default=600.0, gt=0)
    timeout_seconds: float = Field(default=10.0, gt=0)
    # How often the dispatcher looks for due payloads, and how many it claims at once.
    poll_seconds: float = Field(default=0.5, gt=0)
    batch: int = Field(default=32, ge=1)
    concurrency: int = Field(default=4, ge=1)
    # A claimed payload is invisible to other dispatchers this long (crash recovery).
    lease_seconds: float = Field(default=60.0, gt=0)
    # Receivers should refuse signatures older than this (documented, and used by verify_signature).
    signature_tolerance_seconds: int = 300
    # Webhooks reach only public addresses (lienthong_common.outbound): these CIDRs are let through
    # as well, for agencies whose receivers really are on a private network, e.g.
    # LIENTHONG_ROUTING__WEBHOOKS__ALLOWED_CIDRS='["10.20.0.0/16"]'. Cloud metadata never is.
    allowed_cidrs: list[str] = Field(default_factory=list)

    @field_validator("allowed_cidrs")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return _cidrs("LIENTHONG_ROUTING__WEBHOOKS__ALLOWED_CIDRS", value)


class DeadlineSettings(BaseModel):
    """Acknowledgement deadlines: LIENTHONG_ROUTING__DEADLINES__<KEY> (lists as JSON)."""

    time_zone: str = "Asia/Ho_Chi_Minh"
    # Weekday numbers (Monday = 0) that are working days.
    working_days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    holidays: list[date] = Field(default_factory=list)


class RoutingSettings(BaseModel):
    """Routing's section (LIENTHONG_ROUTING__…), e.g.

    LIENTHONG_ROUTING__WEBHOOKS__MAX_ATTEMPTS=8
    LIENTHONG_ROUTING__WEBHOOKS__ALLOWED_CIDRS='["10.20.0.0/16"]'   # private receivers let through
    LIENTHONG_ROUTING__DEADLINES__WORKING_DAYS='[0,1,2,3,4]'     # Monday = 0
    LIENTHONG_ROUTING__DEADLINES__HOLIDAYS='["2026-09-02","2027-01-01"]'
    """

    webhooks: WebhookSettings = WebhookSettings()
    deadlines: DeadlineSettings = DeadlineSettings()


class MetricsSettings(BaseModel):
    """Where a service serves its OpenTelemetry metrics for Prometheus to scrape; port 0 = off."""

    host: str = "127.0.0.1"
    port: int = 0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIENTHONG_", env_nested_delimiter="__", extra="ignore")

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path(".data")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "LIENTHONG_DATABASE_URL")
    )
    drain_seconds: float = 10.0
    # How often a serving process re-checks that its database and broker are reachable (its
    # readiness); while not ready it checks every second, so it is back within a second.
    readiness_check_seconds: float = Field(default=5.0, ge=1.0)
    kafka: KafkaSettings = KafkaSettings()
    grpc: GrpcSettings = GrpcSettings()
    http: HttpSettings = HttpSettings()
    services: ServiceAddresses = ServiceAddresses()
    docstore: DocstoreSettings = DocstoreSettings()
    sigverify: SigverifySettings = SigverifySettings()
    gateway: GatewaySettings = GatewaySettings()
    directory: DirectorySettings = DirectorySettings()
    routing: RoutingSettings = RoutingSettings()
    metrics: MetricsSettings = MetricsSettings()

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if (
            self.environment == "production"
            and self.gateway.jwt_secret.get_secret_value() == PLACEHOLDER_SECRET
        ):
            raise ValueError(
                "LIENTHONG_GATEWAY__JWT_SECRET still holds the development placeholder; "
                "set a real secret in production"
            )
        return self

    def database_url_for(self, service: str) -> str:
        """The service's own database: DATABASE_URL, else a SQLite file under data_dir."""
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    def grpc_port_for(self, service: str) -> int:
        return self.grpc.port or DEFAULT_PORTS[service]

    def blob_dir(self) -> Path:
        return self.docstore.blob_dir or self.data_dir / "blobs"


def load_settings() -> Settings:
    """Read settings from the environment; call once in a process's entry point."""
    return Settings()
