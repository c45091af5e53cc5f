"""Push: signed POSTs to a loopback receiver, retries with back-off, dead letters, re-drive.

The receiver listens on loopback, which webhooks never reach by default: these tests allow
127.0.0.0/8 the way an operator allows a private network (`allowed_cidrs`). The refusals
themselves are in test_webhook_ssrf.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from routing_support import HA_LONG, QUANG_NINH, SENDER, FakeDirectory, route
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lienthong_common import edxml
from lienthong_common.db import transaction
from lienthong_common.errors import DomainError
from lienthong_common.outbound import OutboundPolicy
from lienthong_common.settings import WebhookSettings
from lienthong_routing import deliveries, evidence, repository, status_packages, webhooks
from lienthong_routing.models import WebhookDelivery

SECRET = "s3cret-for-tests-0123456789"
# The test receivers' network let through, as an operator's allow-list would; names resolve to
# a public address without asking DNS.
LOOPBACK = OutboundPolicy.from_cidrs(["127.0.0.0/8"], resolver=lambda host, port: ["203.0.113.7"])
PUBLIC = OutboundPolicy(resolver=lambda host, port: ["8.8.8.8"])


@dataclass
class Receiver:
    """An HTTP endpoint on loopback that answers 500 to its first `failures` requests."""

    failures: int = 0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                failing = len(receiver.requests) <= receiver.failures
                self.send_response(500 if failing else 204)
                self.end_headers()
                if failing:
                    self.wfile.write(b"receiver down")

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), r.handler())
    r.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield r
    server.shutdown()
    server.server_close()


def fast(max_attempts: int = 5) -> WebhookSettings:
    return WebhookSettings(
        max_attempts=max_attempts, base_delay_seconds=0.001, max_delay_seconds=0.01, timeout_seconds=5
    )


def drain(
    sessions: sessionmaker[Session],
    settings: WebhookSettings,
    rounds: int = 50,
    policy: OutboundPolicy = LOOPBACK,
    dispatcher: webhooks.WebhookDispatcher | None = None,
) -> None:
    owned = dispatcher is None
    dispatcher = dispatcher or webhooks.WebhookDispatcher(sessions, settings, policy=policy)
    try:
        for _ in range(rounds):
            with transaction(sessions) as session:
                due = session.scalar(
                    select(WebhookDelivery.id).where(WebhookDelivery.state == webhooks.PENDING)
                )
            if due is None:
                return
            dispatcher.run_once()
            threading.Event().wait(0.02)
    finally:
        if owned:
            dispatcher.stop()


def test_signature_round_trip_and_replay_window() -> None:
    body = b'{"type":"delivery"}'
    signature = webhooks.sign(SECRET, 1_800_000_000, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    check = {"secret": SECRET, "body": body, "timestamp": "1800000000", "signature": signature}
    assert webhooks.verify_signature(**check, now=1_800_000_100)
    assert not webhooks.verify_signature(**{**check, "body": body + b" "}, now=1_800_000_100)
    assert not webhooks.verify_signature(**{**check, "secret": SECRET + "x"}, now=1_800_000_100)
    assert not webhooks.verify_signature(**{**check, "timestamp": "1800000001"}, now=1_800_000_100)
    assert not webhooks.verify_signature(**check, now=1_800_000_000 + 301)  # a replay, too late


def test_backoff_is_exponential_capped_and_jittered() -> None:
    settings = WebhookSettings(base_delay_seconds=2, max_delay_seconds=60)
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (12, 60)]:
        assert webhooks.backoff_seconds(attempt, settings, rng=lambda: 1.0) == ceiling
        assert webhooks.backoff_seconds(attempt, settings, rng=lambda: 0.0) == ceiling / 2


def test_registration_rules(session: Session) -> None:
    view = webhooks.set_webhook(
        session=session, agency_code=HA_LONG, url="https://example.gov.vn/hook", policy=PUBLIC
    )
    assert len(view.generated_secret) >= 32 and view.webhook.secret == view.generated_secret
    again = webhooks.set_webhook(
        session=session, agency_code=HA_LONG, url="https://example.gov.vn/h2", secret=SECRET, policy=PUBLIC
    )
    assert again.generated_secret == "" and again.webhook.url.endswith("/h2")
    with pytest.raises(DomainError):
        webhooks.set_webhook(session=session, agency_code=HA_LONG, url="ftp://x", policy=PUBLIC)
    with pytest.raises(DomainError):
        webhooks.set_webhook(
            session=session, agency_code=HA_LONG, url="https://x", secret="short", policy=PUBLIC
        )
    webhooks.delete_webhook(session=session, agency_code=HA_LONG)
    with pytest.raises(DomainError):
        webhooks.get_webhook(session=session, agency_code=HA_LONG)


def test_delivery_is_pushed_signed_after_retries(
    sessions: sessionmaker[Session], directory: FakeDirectory, receiver: Receiver
) -> None:
    receiver.failures = 2
    with transaction(sessions) as session:
        webhooks.set_webhook(
            session=session, agency_code=HA_LONG, url=receiver.url, secret=SECRET, policy=LOOPBACK
        )
        document_id = route(session, directory, recipients=[HA_LONG, QUANG_NINH])
    drain(sessions, fast())

    assert len(receiver.requests) == 3
    ids = {headers["X-Lienthong-Delivery"] for headers, _ in receiver.requests}
    assert len(ids) == 1  # one idempotency id across the retries
    for headers, body in receiver.requests:
        assert headers["Idempotency-Key"] in ids
        assert webhooks.verify_signature(
            secret=SECRET,
            body=body,
            timestamp=headers["X-Lienthong-Timestamp"],
            signature=headers["X-Lienthong-Signature"],
        )
    payload = json.loads(receiver.requests[-1][1])
    assert payload["type"] == "delivery" and payload["recipient"] == HA_LONG
    assert payload["document"]["id"] == document_id
    assert payload["document"]["content"] == f"/v1/documents/{document_id}/content"
    assert b"base64" not in body and b"edXML" not in body  # by reference, never the package

    with transaction(sessions) as session:
        [item] = webhooks.list_deliveries(session=session, agency_code=HA_LONG)
        assert (item.state, item.attempts) == ("pushed", 3)
        history = webhooks.attempts_of(session=session, ids=[item.id])[item.id]
        assert [a.http_status for a in history] == [500, 500, 204]
        view = deliveries.document_state(session=session, document_id=document_id)
        pushes = {d.recipient_code: view.pushes.get(d.id) for d in view.deliveries}
        assert pushes[QUANG_NINH] is None  # no webhook: pull only
        assert pushes[HA_LONG] is not None and pushes[HA_LONG].state == "pushed"
        # Pull keeps working beside push.
        assert [doc.id for _, doc in deliveries.inbox(session=session, agency_code=HA_LONG).items] == [
            document_id
        ]
        assert evidence.verify(session=session).valid


def test_dead_letter_then_redrive(
    sessions: sessionmaker[Session], directory: FakeDirectory, receiver: Receiver
) -> None:
    receiver.failures = 3
    with transaction(sessions) as session:
        webhooks.set_webhook(
            session=session, agency_code=HA_LONG, url=receiver.url, secret=SECRET, policy=LOOPBACK
        )
        document_id = route(session, directory, recipients=[HA_LONG])
    drain(sessions, fast(max_attempts=3))
    assert len(receiver.requests) == 3

    with transaction(sessions) as session:
        [item] = webhooks.list_deliveries(session=session, state=webhooks.DEAD)
        assert (item.attempts, item.last_error) == (3, "HTTP 500")  # the receiver's words not kept
        timeline = repository.timeline_of(session=session, document_id=document_id)
        assert any(e.state == "push_dead_lettered" and "after 3 attempts" in e.description for e in timeline)
        entries = evidence.entries_of(session=session, document_id=document_id)
        assert entries[-1].kind == "dead_lettered"
        # What the receiver wrote in its 500 replies is nowhere: not on the timeline, not in
        # the evidence, not in the attempts.
        attempts = webhooks.attempts_of(session=session, ids=[item.id])[item.id]
        shown = [e.description for e in timeline] + [e.body for e in entries] + [a.error for a in attempts]
        assert not any("receiver down" in text for text in shown)
        with pytest.raises(DomainError):
            webhooks.redrive(session=session)  # neither ids nor an agency
        assert webhooks.redrive(session=session, agency_code=HA_LONG) == [item.id]
    drain(sessions, fast(max_attempts=3))  # the receiver answers now
    with transaction(sessions) as session:
        [item] = webhooks.list_deliveries(session=session, agency_code=HA_LONG)
        assert item.state == "pushed"
        assert [a.http_status for a in webhooks.attempts_of(session=session, ids=[item.id])[item.id]] == [
            500,
            500,
            500,
            204,
        ]
    assert len({h["X-Lienthong-Delivery"] for h, _ in receiver.requests}) == 1


def test_unreachable_receiver_is_recorded(sessions: sessionmaker[Session], directory: FakeDirectory) -> None:
    with transaction(sessions) as session:
        webhooks.set_webhook(
            session=session,
            agency_code=HA_LONG,
            url="http://127.0.0.1:9/hook",
            secret=SECRET,
            policy=LOOPBACK,
        )
        route(session, directory, recipients=[HA_LONG])
    drain(sessions, fast(max_attempts=2))
    with transaction(sessions) as session:
        [item] = webhooks.list_deliveries(session=session, agency_code=HA_LONG)
        assert item.state == "dead_lettered"
        history = webhooks.attempts_of(session=session, ids=[item.id])[item.id]
        assert [(a.http_status, a.error) for a in history] == [(0, "connection failed")] * 2


def test_statuses_are_pushed_to_the_sender(
    sessions: sessionmaker[Session], directory: FakeDirectory, receiver: Receiver
) -> None:
    with transaction(sessions) as session:
        webhooks.set_webhook(
            session=session, agency_code=SENDER, url=receiver.url, secret=SECRET, policy=LOOPBACK
        )
        document_id = route(session, directory, recipients=[HA_LONG])
        deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="03")
    drain(sessions, fast())
    [(headers, body)] = receiver.requests
    assert headers["X-Lienthong-Event"] == "status"
    payload = json.loads(body)
    assert payload["status"]["code"] == "03" and payload["status"]["from"] == HA_LONG
    # By reference: the package's URL (and size), never the package inline.
    assert "package_base64" not in payload["status"] and b"edXML" not in body
    assert payload["status"]["url"] == f"/v1/documents/{document_id}/statuses/1"
    with transaction(sessions) as session:
        kept = status_packages.get(session=session, document_id=document_id, number=1)
        assert edxml.parse_status_package(kept.package).status_code == "03"
        assert payload["status"]["size"] == len(kept.package)
        assert payload["status"]["content_type"] == "application/xml"


def test_disabled_webhook_is_not_pushed(
    sessions: sessionmaker[Session], directory: FakeDirectory, receiver: Receiver
) -> None:
    with transaction(sessions) as session:
        webhooks.set_webhook(
            session=session, agency_code=HA_LONG, url=receiver.url, secret=SECRET, policy=LOOPBACK
        )
        webhooks.delete_webhook(session=session, agency_code=HA_LONG)
        route(session, directory, recipients=[HA_LONG])
        assert webhooks.list_deliveries(session=session) == []
    drain(sessions, fast())
    assert receiver.requests == []
