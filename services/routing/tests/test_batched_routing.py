"""Routing many documents in one transaction, as the consumer's batches do.

The handler writes with set-based Core statements and keeps the evidence head, the inbox
positions and the webhook lookups for the rest of the transaction: these tests hold it to
exactly what one transaction per document gave — a valid chain, gap-free inboxes, pushes to
a webhook registered a moment before — and check that nothing cached outlives a rollback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from routing_support import HA_LONG, QUANG_NINH, SENDER, FakeDirectory, outbox_events, route, verified_event
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lienthong_common.kafka import EventConsumer
from lienthong_common.kafka_access import PRODUCER_HEADER, owner_of
from lienthong_common.outbound import OutboundPolicy
from lienthong_common.outbox import TOPIC_VERIFIED, install_after_commit_hooks
from lienthong_common.settings import KafkaSettings
from lienthong_routing import evidence, repository, webhooks
from lienthong_routing.consumers import VerifiedDocuments
from lienthong_routing.models import OUTBOX, Delivery, EvidenceEntry, WebhookDelivery

AGENCIES = [f"000.00.{i:02d}.H49" for i in range(1, 8)]
SECRET = "s" * 32


def _inboxes(session: Session) -> dict[str, list[int]]:
    rows = session.execute(
        select(Delivery.recipient_code, Delivery.inbox_sequence).order_by(
            Delivery.recipient_code, Delivery.inbox_sequence
        )
    ).all()
    inboxes: dict[str, list[int]] = {}
    for code, sequence in rows:
        inboxes.setdefault(code, []).append(sequence)
    return inboxes


def _gap_free(session: Session) -> bool:
    return all(seq == list(range(1, len(seq) + 1)) for seq in _inboxes(session).values())


def test_many_documents_in_one_transaction(sessions: sessionmaker[Session], directory: FakeDirectory) -> None:
    with sessions() as session, session.begin():
        for n in range(30):
            route(session, directory, recipients=[AGENCIES[(n + k) % len(AGENCIES)] for k in range(3)])
    with sessions() as session:
        result = evidence.verify(session=session)
        assert result.valid and result.entries == 30 * 4
        assert _gap_free(session)
        assert sum(len(s) for s in _inboxes(session).values()) == 90
        assert len(outbox_events(session)) == 90


def test_nothing_cached_outlives_a_rollback(
    sessions: sessionmaker[Session], directory: FakeDirectory
) -> None:
    with sessions() as session:
        with session.begin():
            route(session, directory, recipients=[HA_LONG, QUANG_NINH])
        try:
            with session.begin():
                route(session, directory, recipients=[HA_LONG, QUANG_NINH])
                raise RuntimeError("the batch fails")
        except RuntimeError:
            pass
        with session.begin():
            route(session, directory, recipients=[HA_LONG])
            # A savepoint rolled back in the middle of a transaction leaves no trace either.
            nested = session.begin_nested()
            route(session, directory, recipients=[HA_LONG, QUANG_NINH])
            nested.rollback()
            route(session, directory, recipients=[QUANG_NINH])
    with sessions() as session:
        assert _inboxes(session) == {HA_LONG: [1, 2], QUANG_NINH: [1, 2]}
        result = evidence.verify(session=session)
        assert result.valid and result.entries == 3 + 2 + 2


def test_a_webhook_registered_mid_transaction_is_used(session: Session, directory: FakeDirectory) -> None:
    route(session, directory, recipients=[HA_LONG])  # the webhooks are looked up: none
    route(session, directory, recipients=[QUANG_NINH])  # now every enabled one is read
    public = OutboundPolicy(resolver=lambda host, port: ["8.8.8.8"])
    webhooks.set_webhook(
        session=session, agency_code=HA_LONG, url="https://example.gov.vn/h", secret=SECRET, policy=public
    )
    pushed = route(session, directory, recipients=[HA_LONG, QUANG_NINH])
    webhooks.delete_webhook(session=session, agency_code=HA_LONG)
    after = route(session, directory, recipients=[HA_LONG])
    queued = session.execute(select(WebhookDelivery.document_id, WebhookDelivery.agency_code)).all()
    assert [tuple(row) for row in queued] == [(pushed, HA_LONG)]
    assert after != pushed


def test_a_recall_of_a_document_routed_earlier_in_the_transaction(
    session: Session, directory: FakeDirectory
) -> None:
    old_id = f"{SENDER},2026/11/20,100/VPCP-TTĐT"
    old = route(session, directory, recipients=[HA_LONG, QUANG_NINH], edxml_document_id=old_id)
    route(
        session,
        directory,
        recipients=[HA_LONG, QUANG_NINH],
        edxml_document_id=f"{SENDER},2026/11/25,101/VPCP-TTĐT",
        business_doc_type=1,
        referenced_document_id=old_id,
    )
    states = {d.recipient_code: d.state for d in repository.deliveries_of(session=session, document_id=old)}
    assert states == {HA_LONG: "recall_requested", QUANG_NINH: "recall_requested"}
    result = evidence.verify(session=session)
    # old: routed + 2 delivered; recall: routed + 2 delivered; 2 recall_requested statuses.
    assert result.valid and result.entries == 3 + 3 + 2
    kinds = session.scalars(select(EvidenceEntry.kind).order_by(EvidenceEntry.sequence)).all()
    assert kinds[-2:] == ["status", "status"]


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.headers:  # as the owner's relay stamps every record
            self.headers = [(PRODUCER_HEADER, (owner_of(self.topic) or "").encode())]


def test_a_consumer_batch_routes_each_document_once(
    sessions: sessionmaker[Session], directory: FakeDirectory
) -> None:
    install_after_commit_hooks(sessions)
    consumer = EventConsumer(
        service="routing",
        group="routing-test",
        topics=[TOPIC_VERIFIED],
        settings=KafkaSettings(),
        sessions=sessions,
        outbox=OUTBOX,
        handler=VerifiedDocuments(directory=directory).handle,
    )
    events = [verified_event(recipients=AGENCIES[n % 5 : n % 5 + 3]) for n in range(40)]
    records = [
        Record(TOPIC_VERIFIED, 0, n, e.document_id.encode(), e.SerializeToString())
        for n, e in enumerate(events)
    ]
    consumer.handle_records(records[:25])
    consumer.handle_records(records[20:])  # five re-delivered: no-ops
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 40 * 3
        assert _gap_free(session)
        result = evidence.verify(session=session)
        assert result.valid and result.entries == 40 * 4
        assert len(outbox_events(session)) == 40 * 3
