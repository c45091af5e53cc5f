"""The evidence, status-package, webhook and deadline RPCs over a real gRPC server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from routing_support import HA_LONG, SENDER, FakeDirectory, route, serving
from sqlalchemy.orm import Session, sessionmaker

from lienthong.routing.v1 import routing_pb2, routing_pb2_grpc
from lienthong_common.clock import now_utc
from lienthong_common.db import transaction
from lienthong_common.outbound import OutboundPolicy
from lienthong_routing import repository
from lienthong_routing.grpc_api import RoutingServicer


@pytest.fixture
def stub(sessions: sessionmaker[Session]) -> Iterator[routing_pb2_grpc.RoutingStub]:
    public = OutboundPolicy(resolver=lambda host, port: ["8.8.8.8"] if host.endswith(".example") else [])
    with serving(RoutingServicer(sessions, outbound=public)) as stub:
        yield stub


def test_evidence_and_status_packages(
    sessions: sessionmaker[Session], stub: routing_pb2_grpc.RoutingStub
) -> None:
    with transaction(sessions) as session:
        document_id = route(session, FakeDirectory(), recipients=[HA_LONG])
    stub.PostStatus(routing_pb2.PostStatusRequest(document_id=document_id, actor_code=HA_LONG, code="03"))
    verdict = stub.VerifyEvidence(routing_pb2.VerifyEvidenceRequest())
    assert (verdict.valid, verdict.entries, len(verdict.head_hash)) == (True, 3, 64)
    entries = stub.ListEvidence(routing_pb2.ListEvidenceRequest(document_id=document_id)).entries
    assert [e.kind for e in entries] == ["routed", "delivered", "status"]
    assert entries[-1].hash == verdict.head_hash
    listed = stub.ListStatusPackages(routing_pb2.ListStatusPackagesRequest(document_id=document_id)).packages
    assert [(p.number, p.from_code, p.status_code) for p in listed] == [(1, HA_LONG, "03")]
    package = stub.GetStatusPackage(routing_pb2.GetStatusPackageRequest(document_id=document_id, number=1))
    assert (
        package.package.startswith(b"<?xml") and b"<edXML:StatusCode>03</edXML:StatusCode>" in package.package
    )
    with pytest.raises(grpc.RpcError) as missing:
        stub.GetStatusPackage(routing_pb2.GetStatusPackageRequest(document_id=document_id, number=9))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_webhook_rpcs(sessions: sessionmaker[Session], stub: routing_pb2_grpc.RoutingStub) -> None:
    hook = stub.SetWebhook(
        routing_pb2.SetWebhookRequest(agency_code=HA_LONG, url="https://vanthu.example/hook")
    )
    assert hook.secret and hook.secret_hint == hook.secret[-4:]
    shown = stub.GetWebhook(routing_pb2.WebhookRequest(agency_code=HA_LONG))
    assert shown.secret == "" and shown.url == "https://vanthu.example/hook"
    with transaction(sessions) as session:
        route(session, FakeDirectory(), recipients=[HA_LONG])
    listed = stub.ListWebhookDeliveries(routing_pb2.ListWebhookDeliveriesRequest(agency_code=HA_LONG))
    assert [(d.kind, d.state) for d in listed.deliveries] == [("delivery", "pending")]
    with pytest.raises(grpc.RpcError) as not_dead:
        stub.RedriveWebhookDeliveries(routing_pb2.RedriveRequest(ids=[listed.deliveries[0].id]))
    assert not_dead.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as bad:
        stub.SetWebhook(routing_pb2.SetWebhookRequest(agency_code=HA_LONG, url="not a url"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as internal:
        stub.SetWebhook(routing_pb2.SetWebhookRequest(agency_code=HA_LONG, url="http://169.254.169.254/"))
    assert internal.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "webhook url refused" in (internal.value.details() or "")
    assert (
        stub.GetWebhook(routing_pb2.WebhookRequest(agency_code=HA_LONG)).url == "https://vanthu.example/hook"
    )


def test_overdue_rpcs(sessions: sessionmaker[Session], stub: routing_pb2_grpc.RoutingStub) -> None:
    with transaction(sessions) as session:
        document_id = route(session, FakeDirectory(), recipients=[HA_LONG])
        [delivery] = repository.deliveries_of(session=session, document_id=document_id)
        delivery.ack_deadline = now_utc() - timedelta(minutes=1)
    count = stub.CountOverdue(routing_pb2.CountOverdueRequest())
    assert count.total == 1 and [(c.recipient_code, c.count) for c in count.by_recipient] == [(HA_LONG, 1)]
    listed = stub.ListOverdue(routing_pb2.ListOverdueRequest(sender_code=SENDER)).deliveries
    assert [(d.document_id, d.recipient_code) for d in listed] == [(document_id, HA_LONG)]
    state = stub.GetDocumentState(routing_pb2.GetDocumentStateRequest(document_id=document_id))
    assert state.deliveries[0].overdue and "overdue" in [e.state for e in state.timeline]
    inbox = stub.ListInbox(routing_pb2.InboxRequest(agency_code=HA_LONG))
    assert inbox.items[0].overdue
