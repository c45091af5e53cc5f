"""Webhooks cannot be turned on the platform's own network (issue 20, item 1).

Every form of an internal address is refused when the webhook is registered, and again when
a payload is pushed (a webhook registered before these rules, or a name that resolves
elsewhere by then); the connection goes to the address that was checked; redirects are not
followed; what a receiver answers is kept as its status only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from routing_support import HA_LONG, FakeDirectory, route
from sqlalchemy.orm import Session, sessionmaker
from test_webhooks import SECRET, drain, fast

from lienthong_common.clock import now_utc
from lienthong_common.db import transaction
from lienthong_common.errors import DomainError, ErrorKind
from lienthong_common.outbound import OutboundPolicy, checked_client
from lienthong_routing import evidence, repository, webhooks
from lienthong_routing.grpc_api import webhook_delivery_message
from lienthong_routing.models import Webhook

INTERNAL_REPLY = "root:x:0:0:INTERNAL-SECRET"


@dataclass
class Names:
    """A resolver the tests control: name -> addresses (as DNS would answer now)."""

    table: dict[str, list[str]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return list(self.table.get(host, []))


@pytest.fixture
def names() -> Names:
    return Names(
        {
            "vanthu.agency.vn": ["8.8.8.8"],
            "internal.agency.vn": ["10.0.0.5"],
            "mixed.agency.vn": ["8.8.8.8", "10.0.0.5"],  # one private address refuses the name
            "v6.agency.vn": ["2001:4860:4860::8888", "fd00::5"],
            "mapped.agency.vn": ["::ffff:192.168.1.1"],
        }
    )


@dataclass
class Receiver:
    """A loopback HTTP server answering every request with `status` and an internal-looking body."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    port: int = 0


def serve(receiver: Receiver, context: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            receiver.requests.append(dict(self.headers.items()))
            body = INTERNAL_REPLY.encode()
            self.send_response(receiver.status)
            for name, value in receiver.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    receiver.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    server = serve(r)
    yield r
    server.shutdown()
    server.server_close()


def internal_urls(port: int) -> list[str]:
    """Every way of writing an address the platform must not reach (port: the loopback receiver's)."""
    return [
        f"http://127.0.0.1:{port}/hook",
        f"http://localhost:{port}/hook",
        f"http://LOCALHOST.:{port}/hook",
        f"http://app.localhost:{port}/hook",
        f"http://0.0.0.0:{port}/hook",
        f"http://0:{port}/hook",
        f"http://127.1:{port}/hook",
        f"http://2130706433:{port}/hook",
        f"http://0x7f000001:{port}/hook",
        f"http://0x7f.1:{port}/hook",
        f"http://017700000001:{port}/hook",
        f"http://[::1]:{port}/hook",
        f"http://[::]:{port}/hook",
        f"http://[::ffff:127.0.0.1]:{port}/hook",
        f"http://[::ffff:7f00:1]:{port}/hook",
        f"http://[2002:7f00:1::]:{port}/hook",  # 6to4 carrying 127.0.0.1
        "http://10.1.2.3/hook",
        "http://172.16.5.4/hook",
        "http://172.31.255.255/hook",
        "http://192.168.0.1/hook",
        "http://100.64.0.1/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://[64:ff9b::a00:1]/hook",  # NAT64 carrying 10.0.0.1
        "http://[fc00::1]/hook",
        "http://[fd00::1]/hook",
        "http://[fd12:3456:789a::1]/hook",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://169.254.10.10/hook",
        "http://[fe80::1]/hook",
        "http://[fe80::1%25eth0]/hook",
        "http://[fec0::1]/hook",
        "http://224.0.0.1/hook",
        "http://239.255.255.250/hook",
        "http://[ff02::1]/hook",
        "http://240.0.0.1/hook",
        "http://255.255.255.255/hook",
        "http://192.0.2.10/hook",  # documentation (not routable)
        "http://198.18.0.1/hook",  # benchmarking
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata.google.internal./computeMetadata/v1/",
        "http://metadata/computeMetadata/v1/",
        "http://metadata.goog/",
        "http://instance-data/latest/",
        "http://[fd00:ec2::254]/latest/",
        "http://100.100.100.200/latest/",
        "https://internal.agency.vn/hook",  # a name resolving to a private address
        "https://mixed.agency.vn/hook",
        "https://v6.agency.vn/hook",
        "https://mapped.agency.vn/hook",
    ]


def test_every_internal_address_form_is_refused_at_registration(session: Session, names: Names) -> None:
    policy = OutboundPolicy(resolver=names)
    for url in [*internal_urls(8080), "https://nowhere.agency.vn/hook", "gopher://vanthu.agency.vn/"]:
        with pytest.raises(DomainError) as refused:
            webhooks.set_webhook(session=session, agency_code=HA_LONG, url=url, policy=policy)
        assert refused.value.kind is ErrorKind.INVALID, url
        assert refused.value.message.startswith("webhook url"), (url, refused.value.message)
    assert session.get(Webhook, HA_LONG) is None
    # A public name is accepted, and so is a private network the operator allowed.
    webhooks.set_webhook(
        session=session, agency_code=HA_LONG, url="https://vanthu.agency.vn/h", policy=policy
    )
    allowed = OutboundPolicy.from_cidrs(["10.0.0.0/8"], resolver=names)
    webhooks.set_webhook(
        session=session, agency_code=HA_LONG, url="https://internal.agency.vn/h", policy=allowed
    )
    # The allow-list never opens the metadata service.
    everything = OutboundPolicy.from_cidrs(["0.0.0.0/0", "::/0"], resolver=names)
    for url in ("http://169.254.169.254/", "http://metadata.google.internal/", "http://[fd00:ec2::254]/"):
        with pytest.raises(DomainError):
            webhooks.set_webhook(session=session, agency_code=HA_LONG, url=url, policy=everything)


def legacy_webhook(sessions: sessionmaker[Session], url: str) -> None:
    """A webhook as registered before the rules (written directly, unchecked)."""
    with transaction(sessions) as session:
        hook = session.get(Webhook, HA_LONG)
        at = now_utc()
        if hook is None:
            session.add(
                Webhook(
                    agency_code=HA_LONG, url=url, secret=SECRET, enabled=True, created_at=at, updated_at=at
                )
            )
        else:
            hook.url = url


def test_every_internal_address_form_is_refused_at_delivery(
    sessions: sessionmaker[Session], directory: FakeDirectory, receiver: Receiver, names: Names
) -> None:
    policy = OutboundPolicy(resolver=names)
    urls = internal_urls(receiver.port)
    dispatcher = webhooks.WebhookDispatcher(sessions, fast(max_attempts=1), policy=policy)
    try:
        for url in urls:
            legacy_webhook(sessions, url)
            with transaction(sessions) as session:
                route(session, directory, recipients=[HA_LONG])
            drain(sessions, fast(max_attempts=1), dispatcher=dispatcher)
    finally:
        dispatcher.stop()
    assert receiver.requests == []  # not one connection reached the loopback receiver
    with transaction(sessions) as session:
        items = webhooks.list_deliveries(session=session, agency_code=HA_LONG, limit=1000)
        assert len(items) == len(urls) and {i.state for i in items} == {webhooks.DEAD}
        for item, url in zip(items, urls, strict=True):
            [attempt] = webhooks.attempts_of(session=session, ids=[item.id])[item.id]
            assert attempt.http_status == 0 and attempt.error.startswith("refused: "), (url, attempt.error)
            assert item.last_error == attempt.error


def test_a_name_that_turns_private_after_registration_is_refused_at_delivery(
    sessions: sessionmaker[Session], directory: FakeDirectory, receiver: Receiver, names: Names
) -> None:
    """DNS rebinding: public when registered, loopback when pushed; the push never leaves."""
    policy = OutboundPolicy(resolver=names)
    names.table["rebind.agency.vn"] = ["8.8.8.8"]
    with transaction(sessions) as session:
        webhooks.set_webhook(
            session=session,
            agency_code=HA_LONG,
            url=f"http://rebind.agency.vn:{receiver.port}/hook",
            secret=SECRET,
            policy=policy,
        )
        document_id = route(session, directory, recipients=[HA_LONG])
    names.table["rebind.agency.vn"] = ["127.0.0.1"]
    drain(sessions, fast(max_attempts=2), policy=policy)
    assert receiver.requests == []
    with transaction(sessions) as session:
        [item] = webhooks.list_deliveries(session=session, agency_code=HA_LONG)
        assert item.state == webhooks.DEAD
        assert (
            item.last_error
            == "refused: rebind.agency.vn is a loopback address; the platform does not connect there"
        )
        timeline = repository.timeline_of(session=session, document_id=document_id)
        assert timeline[-1].state == "push_dead_lettered" and "loopback" in timeline[-1].description


def test_the_connection_goes_to_the_checked_address_with_the_name_in_host(
    sessions: sessionmaker[Session], directory: FakeDirectory, receiver: Receiver, names: Names
) -> None:
    """Resolved once per connection, by the check; the request still names the host."""
    receiver.status = 204
    names.table["hook.agency.vn"] = ["127.0.0.1"]
    policy = OutboundPolicy.from_cidrs(["127.0.0.0/8"], resolver=names)
    with transaction(sessions) as session:
        webhooks.set_webhook(
            session=session,
            agency_code=HA_LONG,
            url=f"http://hook.agency.vn:{receiver.port}/hook",
            secret=SECRET,
            policy=policy,
        )
        route(session, directory, recipients=[HA_LONG])
    names.asked.clear()
    drain(sessions, fast(), policy=policy)
    [headers] = receiver.requests
    assert headers["Host"] == f"hook.agency.vn:{receiver.port}"
    assert names.asked == ["hook.agency.vn"]  # the check's answer is the address connected to


def test_redirects_are_not_followed(
    sessions: sessionmaker[Session], directory: FakeDirectory, receiver: Receiver, names: Names
) -> None:
    receiver.status = 302
    receiver.headers = {"Location": "http://169.254.169.254/latest/meta-data/"}
    policy = OutboundPolicy.from_cidrs(["127.0.0.0/8"], resolver=names)
    legacy_webhook(sessions, f"http://127.0.0.1:{receiver.port}/hook")
    with transaction(sessions) as session:
        route(session, directory, recipients=[HA_LONG])
    drain(sessions, fast(max_attempts=1), policy=policy)
    assert len(receiver.requests) == 1
    with transaction(sessions) as session:
        [item] = webhooks.list_deliveries(session=session, agency_code=HA_LONG)
        assert (item.state, item.last_error) == (webhooks.DEAD, "HTTP 302 (redirects are not followed)")


def test_the_receivers_reply_is_never_kept_or_shown(
    sessions: sessionmaker[Session], directory: FakeDirectory, receiver: Receiver
) -> None:
    """The probe: an internal service's reply came back in deliveries and the timeline."""
    receiver.status = 500
    policy = OutboundPolicy.from_cidrs(["127.0.0.0/8"])
    legacy_webhook(sessions, f"http://127.0.0.1:{receiver.port}/hook")
    with transaction(sessions) as session:
        document_id = route(session, directory, recipients=[HA_LONG])
    drain(sessions, fast(max_attempts=2), policy=policy)
    assert len(receiver.requests) == 2
    with transaction(sessions) as session:
        [item] = webhooks.list_deliveries(session=session, agency_code=HA_LONG)
        history = webhooks.attempts_of(session=session, ids=[item.id])[item.id]
        message = webhook_delivery_message(item, history)
        assert (item.state, item.last_error) == (webhooks.DEAD, "HTTP 500")
        assert [(a.http_status, a.error) for a in history] == [(500, "HTTP 500")] * 2
        shown = [
            message.SerializeToString().decode(errors="replace"),
            *(e.description for e in repository.timeline_of(session=session, document_id=document_id)),
            *(e.body for e in evidence.entries_of(session=session, document_id=document_id)),
        ]
        assert not any("INTERNAL-SECRET" in text for text in shown)


def self_signed(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for `name`, and a client context trusting only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


def test_tls_checks_the_certificate_for_the_name_while_connecting_to_the_checked_address(
    sessions: sessionmaker[Session], directory: FakeDirectory, names: Names, tmp_path: Path
) -> None:
    server_context, client_context = self_signed(tmp_path, "hook.agency.vn")
    tls = Receiver(status=204)
    server = serve(tls, server_context)
    try:
        names.table.update({"hook.agency.vn": ["127.0.0.1"], "other.agency.vn": ["127.0.0.1"]})
        policy = OutboundPolicy.from_cidrs(["127.0.0.0/8"], resolver=names)
        settings = fast(max_attempts=1)

        def push_to(url: str) -> str:
            legacy_webhook(sessions, url)
            with transaction(sessions) as session:
                route(session, directory, recipients=[HA_LONG])
            client = checked_client(policy, timeout=5, verify=client_context)
            dispatcher = webhooks.WebhookDispatcher(sessions, settings, client=client)
            try:
                drain(sessions, settings, dispatcher=dispatcher)
            finally:
                dispatcher.stop()
            with transaction(sessions) as session:
                return webhooks.list_deliveries(session=session, agency_code=HA_LONG)[-1].last_error

        assert push_to(f"https://hook.agency.vn:{tls.port}/hook") == ""
        assert len(tls.requests) == 1 and tls.requests[0]["Host"] == f"hook.agency.vn:{tls.port}"
        # The same address under another name: the certificate does not name it.
        assert push_to(f"https://other.agency.vn:{tls.port}/hook") == "TLS certificate not valid for the host"
        assert len(tls.requests) == 1
    finally:
        server.shutdown()
        server.server_close()


def test_policy_from_settings_reads_the_allow_list() -> None:
    from lienthong_common.settings import WebhookSettings

    policy = webhooks.policy_from(WebhookSettings(allowed_cidrs=["10.20.0.0/16", "fd12::/16"]))
    assert policy.address_problem(ipaddress.ip_address("10.20.1.1")) is None
    assert policy.address_problem(ipaddress.ip_address("10.21.1.1")) == "a private address"
    assert policy.address_problem(ipaddress.ip_address("fd12::1")) is None
    with pytest.raises(ValueError, match="not a network"):
        WebhookSettings(allowed_cidrs=["10.20.0.0/33"])
    assert json.loads(WebhookSettings().model_dump_json())["allowed_cidrs"] == []
