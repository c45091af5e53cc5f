"""Push: each delivery (to the recipient) and each status (to the sender) POSTed to a webhook.

A payload is queued in the same transaction as the change it reports (like the outbox), so
nothing is pushed that did not happen and nothing that happened is lost. The dispatcher
claims due payloads, POSTs them and records every attempt; failures are retried with
exponential back-off and jitter until `max_attempts`, then the payload is dead-lettered:
the sender sees it on the document (push_state and the timeline), operators list it, and
either the agency or an operator re-drives it. Delivery to the receiver is at least once;
the `X-Lienthong-Delivery` header (also sent as `Idempotency-Key`) is the same on every
retry of one payload, so the receiver drops duplicates by it.

Payloads carry references, never documents: a delivery names the document (id, metadata) and
the URL its content is fetched from with the recipient's own token
(`/v1/documents/{id}/content`); a status names the URL of its edXML Status package. A webhook
URL reaches only public addresses, checked when it is registered and again on every connection
(lienthong_common.outbound: no private, loopback, link-local or metadata address, no DNS
rebinding, no redirects), with an operator allow-list of CIDRs for receivers on a private
network. What a receiver answers is kept as its status code and a fixed reason only: its body
is never read, stored or shown.

Signature: `X-Lienthong-Signature: sha256=<hex>` where hex is HMAC-SHA256 with the agency's
secret over `<X-Lienthong-Timestamp>.<raw body>` (the Unix seconds in the timestamp header, a
dot, then the body bytes). Covering the timestamp lets the receiver refuse replays: reject a
timestamp older than a few minutes (`verify_signature` does, 300 s by default).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, sessionmaker

from lienthong_common.clock import now_utc
from lienthong_common.db import transaction
from lienthong_common.errors import invalid, not_found
from lienthong_common.ids import new_id
from lienthong_common.outbound import (
    OutboundPolicy,
    OutboundRefused,
    checked_client,
    failure_reason,
    status_reason,
)
from lienthong_common.settings import WebhookSettings
from lienthong_routing import evidence, repository
from lienthong_routing.domain import NewDelivery
from lienthong_routing.models import RoutedDocument, Webhook, WebhookAttempt, WebhookDelivery

log = logging.getLogger(__name__)

PENDING, PUSHED, DEAD = "pending", "pushed", "dead_lettered"
KIND_DELIVERY, KIND_STATUS = "delivery", "status"
SIGNATURE_HEADER = "X-Lienthong-Signature"
TIMESTAMP_HEADER = "X-Lienthong-Timestamp"
DELIVERY_HEADER = "X-Lienthong-Delivery"
EVENT_HEADER = "X-Lienthong-Event"


# -- signing ---------------------------------------------------------------------------------
def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Lienthong-Signature value for a body sent at `timestamp` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    *,
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - sent) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, sent, body), signature)


def backoff_seconds(
    attempt: int, settings: WebhookSettings, rng: Callable[[], float] = random.random
) -> float:
    """Delay after failed attempt `attempt` (1-based): exponential, capped, with jitter in [0.5, 1]."""
    ceiling = min(settings.max_delay_seconds, settings.base_delay_seconds * 2.0 ** (attempt - 1))
    return float(ceiling * (0.5 + 0.5 * rng()))


# -- registration ----------------------------------------------------------------------------
def policy_from(settings: WebhookSettings) -> OutboundPolicy:
    """What webhook URLs may reach: public addresses plus the operator's allowed CIDRs."""
    return OutboundPolicy.from_cidrs(settings.allowed_cidrs)


def check_url(url: str, policy: OutboundPolicy) -> None:
    """Refuse a webhook URL that is not absolute http(s) or whose host is not reachable by policy."""
    if len(url) > 2000:
        raise invalid("webhook url is longer than 2000 characters")
    try:
        policy.check_url(url)
    except OutboundRefused as refused:
        raise invalid(f"webhook url refused: {refused.reason}") from None


@dataclass(frozen=True)
class WebhookView:
    webhook: Webhook
    generated_secret: str
    counts: dict[str, int]


def set_webhook(
    *, session: Session, agency_code: str, url: str, policy: OutboundPolicy, secret: str = ""
) -> WebhookView:
    """Register or change an agency's webhook; generates a secret when none is given.

    The URL's host is resolved and every address checked against `policy` before anything is
    written (and before this transaction touches the database)."""
    if not agency_code:
        raise invalid("agency_code is required")
    check_url(url, policy)
    if secret and len(secret) < 16:
        raise invalid("a webhook secret must be at least 16 characters")
    generated = "" if secret else secrets.token_urlsafe(32)
    at = now_utc()
    hook = session.get(Webhook, agency_code)
    if hook is None:
        hook = Webhook(
            agency_code=agency_code,
            url=url,
            secret=secret or generated,
            enabled=True,
            created_at=at,
            updated_at=at,
        )
        session.add(hook)
    else:
        hook.url, hook.secret, hook.enabled, hook.updated_at = url, secret or generated, True, at
    session.flush()
    repository.forget_transaction_cache(session, _WEBHOOKS_CACHE)
    return WebhookView(hook, generated, counts(session=session, agency_code=agency_code))


def get_webhook(*, session: Session, agency_code: str) -> WebhookView:
    hook = session.get(Webhook, agency_code)
    if hook is None or not hook.enabled:
        raise not_found(f"agency {agency_code} has no webhook; pull its inbox instead")
    return WebhookView(hook, "", counts(session=session, agency_code=agency_code))


def delete_webhook(*, session: Session, agency_code: str) -> WebhookView:
    """Stop pushing to the agency; payloads not yet pushed stay listed (pull still has them all)."""
    view = get_webhook(session=session, agency_code=agency_code)
    view.webhook.enabled = False
    view.webhook.updated_at = now_utc()
    repository.forget_transaction_cache(session, _WEBHOOKS_CACHE)
    return view


def counts(*, session: Session, agency_code: str) -> dict[str, int]:
    rows = session.execute(
        select(WebhookDelivery.state, func.count())
        .where(WebhookDelivery.agency_code == agency_code)
        .group_by(WebhookDelivery.state)
    ).all()
    return {str(state): int(n) for state, n in rows}


_WEBHOOKS_CACHE = "webhooks_enabled"
_WEBHOOK_CODE = Webhook.__table__.c.agency_code
_ENABLED = Webhook.__table__.c.enabled.is_(True)
_ENABLED_AMONG = select(_WEBHOOK_CODE).where(_WEBHOOK_CODE.in_(bindparam("codes", expanding=True)), _ENABLED)
_ALL_ENABLED = select(_WEBHOOK_CODE).where(_ENABLED)


def active_webhooks(*, session: Session, agency_codes: list[str]) -> set[str]:
    """Those of `agency_codes` with an enabled webhook.

    The first call in a transaction asks about the codes given; a second one (a consumer
    batch routing document after document) reads every enabled webhook once, and the rest
    of the transaction is answered from that. Both are forgotten when this session registers
    or removes a webhook; a registration committed elsewhere applies from the next transaction.
    """
    if not agency_codes:
        return set()
    cache = repository.transaction_cache(session, _WEBHOOKS_CACHE)
    if cache is None:
        cache = {}
    known: dict[str, bool] = cache.setdefault("codes", {})
    if not cache.get("complete"):
        session.flush()  # a webhook changed earlier in this transaction and not yet flushed
        if cache.get("asked"):
            enabled = set(session.scalars(_ALL_ENABLED))
            known.clear()
            known.update(dict.fromkeys(enabled, True))
            cache["complete"] = True
        else:
            unknown = list(dict.fromkeys(agency_codes))
            enabled = set(session.scalars(_ENABLED_AMONG, {"codes": unknown}))
            known.update({code: code in enabled for code in unknown})
            cache["asked"] = True
    return {code for code in agency_codes if known.get(code, False)}


# -- queueing (in the caller's transaction) ---------------------------------------------------
def delivery_payload(document: RoutedDocument, delivery: NewDelivery, payload_id: str) -> dict[str, Any]:
    """The document by reference: its id, metadata and the URL of its content, never the package."""
    return {
        "type": KIND_DELIVERY,
        "id": payload_id,
        "recipient": delivery.recipient_code,
        "document": {
            "id": document.id,
            "document_id": document.edxml_document_id,
            "sender": document.sender_code,
            "subject": document.subject,
            "business_doc_type": document.business_doc_type,
            "referenced_document_id": document.referenced_document_id or None,
            "state": delivery.state,
            "delivered_at": delivery.delivered_at.isoformat(),
            "ack_deadline": delivery.ack_deadline.isoformat() if delivery.ack_deadline else None,
            # GET it with the recipient's own token (the package as stored, edXML).
            "content": f"/v1/documents/{document.id}/content",
            "content_type": "application/xml",
            **({"requested_code": delivery.requested_code} if delivery.requested_code else {}),
        },
    }


def enqueue(
    *,
    session: Session,
    agency_code: str,
    document_id: str,
    kind: str,
    build: Callable[[str], dict[str, Any]],
    delivery_id: str = "",
    at: datetime | None = None,
) -> WebhookDelivery:
    """Queue one payload for the agency's webhook; `build(payload_id)` makes its JSON."""
    payload_id = new_id()
    when = at or now_utc()
    item = WebhookDelivery(
        id=payload_id,
        agency_code=agency_code,
        document_id=document_id,
        delivery_id=delivery_id,
        kind=kind,
        payload=json.dumps(build(payload_id), ensure_ascii=False, separators=(",", ":")).encode(),
        state=PENDING,
        attempts=0,
        last_error="",
        next_attempt_at=when,
        created_at=when,
        pushed_at=None,
    )
    session.add(item)
    return item


def push_states_of(*, session: Session, document_ids: list[str]) -> dict[str, dict[str, WebhookDelivery]]:
    """For each of the documents (one query): the latest delivery-kind payload per delivery id."""
    found: dict[str, dict[str, WebhookDelivery]] = {}
    if not document_ids:
        return found
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.document_id.in_(document_ids), WebhookDelivery.kind == KIND_DELIVERY)
        .order_by(WebhookDelivery.created_at)
    )
    for item in session.scalars(query):
        found.setdefault(item.document_id, {})[item.delivery_id] = item
    return found


# -- listing and re-driving -------------------------------------------------------------------
def list_deliveries(
    *, session: Session, agency_code: str = "", state: str = "", document_id: str = "", limit: int = 100
) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).order_by(WebhookDelivery.created_at).limit(min(max(limit, 1), 1000))
    if agency_code:
        query = query.where(WebhookDelivery.agency_code == agency_code)
    if state:
        if state not in (PENDING, PUSHED, DEAD):
            raise invalid(f"state {state!r} is not one of {PENDING}, {PUSHED}, {DEAD}")
        query = query.where(WebhookDelivery.state == state)
    if document_id:
        query = query.where(WebhookDelivery.document_id == document_id)
    return list(session.scalars(query))


def attempts_of(*, session: Session, ids: list[str]) -> dict[str, list[WebhookAttempt]]:
    found: dict[str, list[WebhookAttempt]] = {i: [] for i in ids}
    if not ids:
        return found
    query = (
        select(WebhookAttempt).where(WebhookAttempt.webhook_delivery_id.in_(ids)).order_by(WebhookAttempt.id)
    )
    for attempt in session.scalars(query):
        found[attempt.webhook_delivery_id].append(attempt)
    return found


def redrive(*, session: Session, agency_code: str = "", ids: list[str] | None = None) -> list[str]:
    """Put dead-lettered payloads back in the queue with a fresh attempt budget."""
    query = select(WebhookDelivery).where(WebhookDelivery.state == DEAD)
    if agency_code:
        query = query.where(WebhookDelivery.agency_code == agency_code)
    if ids:
        query = query.where(WebhookDelivery.id.in_(ids))
    elif not agency_code:
        raise invalid("name the payloads to re-drive, or an agency whose dead letters to re-drive")
    items = list(session.scalars(query.with_for_update()))
    if ids:
        missing = set(ids) - {i.id for i in items}
        if missing:
            raise not_found(
                f"no dead-lettered webhook payload {', '.join(sorted(missing))}"
                + (f" for {agency_code}" if agency_code else "")
            )
    at = now_utc()
    for item in items:
        item.state, item.attempts, item.next_attempt_at, item.last_error = PENDING, 0, at, ""
        _note(session=session, item=item, state="push_redriven", text="webhook push re-driven", at=at)
    return [i.id for i in items]


def _note(*, session: Session, item: WebhookDelivery, state: str, text: str, at: datetime) -> None:
    """A timeline line (delivery payloads only: the sender's view of the recipient's push)."""
    if item.kind != KIND_DELIVERY:
        return
    repository.add_status_entry(
        session=session,
        document_id=item.document_id,
        recipient_code=item.agency_code,
        code="",
        state=state,
        description=text,
        actor_code="",
        at=at,
    )


# -- the dispatcher ----------------------------------------------------------------------------
@dataclass
class Outcome:
    ok: bool
    http_status: int
    error: str
    duration_ms: int


class WebhookDispatcher:
    """Background worker: claim due payloads, POST them, record the outcome, retry or dead-letter."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: WebhookSettings,
        *,
        client: httpx.Client | None = None,
        policy: OutboundPolicy | None = None,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        # Every connection re-resolves and re-checks the host (a name may point elsewhere now).
        self._client = client or checked_client(
            policy or policy_from(settings), timeout=settings.timeout_seconds
        )
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="webhook")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="webhook-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._settings.timeout_seconds + 5)
        self._pool.shutdown(wait=True)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception:
                log.exception("webhook dispatch round failed")
                worked = 0
            if not worked:
                self._stop.wait(self._settings.poll_seconds)

    def run_once(self) -> int:
        """One round: claim a batch, push it in parallel, record outcomes; returns how many."""
        claimed = self._claim()
        if not claimed:
            return 0
        results = list(self._pool.map(self._post, claimed))
        with transaction(self._sessions) as session:
            for (item_id, attempt, _url, _secret, _body, _kind), outcome in zip(
                claimed, results, strict=True
            ):
                self._record(session, item_id, attempt, outcome)
        return len(claimed)

    def _claim(self) -> list[tuple[str, int, str, str, bytes, str]]:
        now = self._clock()
        lease = now + timedelta(seconds=self._settings.lease_seconds)
        with transaction(self._sessions) as session:
            query = (
                select(WebhookDelivery, Webhook)
                .join(Webhook, Webhook.agency_code == WebhookDelivery.agency_code)
                .where(
                    WebhookDelivery.state == PENDING,
                    WebhookDelivery.next_attempt_at <= now,
                    Webhook.enabled.is_(True),
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(self._settings.batch)
                .with_for_update(skip_locked=True, of=WebhookDelivery)
            )
            claimed = []
            for item, hook in session.execute(query).all():
                item.attempts += 1
                item.next_attempt_at = lease  # invisible to other dispatchers while in flight
                claimed.append((item.id, item.attempts, hook.url, hook.secret, item.payload, item.kind))
            return claimed

    def _post(self, claim: tuple[str, int, str, str, bytes, str]) -> Outcome:
        item_id, attempt, url, secret, body, kind = claim
        sent_at = int(time.time())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, sent_at, body),
            TIMESTAMP_HEADER: str(sent_at),
            DELIVERY_HEADER: item_id,
            "Idempotency-Key": item_id,
            EVENT_HEADER: kind,
            "X-Lienthong-Attempt": str(attempt),
            "User-Agent": "lienthong-routing-webhooks/1",
        }
        started = time.perf_counter()
        try:
            # Streamed and closed unread: the receiver's body is never read, kept or shown.
            with self._client.stream("POST", url, content=body, headers=headers) as response:
                status = response.status_code
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OutboundRefused, ValueError) as error:
            return Outcome(False, 0, failure_reason(error), _ms(started))
        ok = 200 <= status < 300
        return Outcome(ok, status, "" if ok else status_reason(status), _ms(started))

    def _record(self, session: Session, item_id: str, attempt: int, outcome: Outcome) -> None:
        item = session.get(WebhookDelivery, item_id)
        if item is None or item.state != PENDING:
            return
        at = self._clock()
        session.add(
            WebhookAttempt(
                webhook_delivery_id=item_id,
                number=attempt,
                at=at,
                http_status=outcome.http_status,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
            )
        )
        if outcome.ok:
            item.state, item.pushed_at, item.last_error = PUSHED, at, ""
            evidence.append(
                session=session,
                kind="push",
                document_id=item.document_id,
                at=at,
                recipient_code=item.agency_code,
                facts={
                    "payload": item_id,
                    "kind": item.kind,
                    "attempt": attempt,
                    "http_status": outcome.http_status,
                },
            )
            return
        item.last_error = outcome.error
        if attempt >= self._settings.max_attempts:
            item.state = DEAD
            text = f"webhook push dead-lettered after {attempt} attempts: {outcome.error}"
            _note(session=session, item=item, state="push_dead_lettered", text=text, at=at)
            evidence.append(
                session=session,
                kind="dead_lettered",
                document_id=item.document_id,
                at=at,
                recipient_code=item.agency_code,
                facts={"payload": item_id, "kind": item.kind, "attempts": attempt, "error": outcome.error},
            )
            log.warning(
                "webhook payload %s to %s dead-lettered: %s", item_id, item.agency_code, outcome.error
            )
            return
        item.next_attempt_at = at + timedelta(seconds=backoff_seconds(attempt, self._settings))


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
