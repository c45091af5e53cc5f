"""The servicer over a real gRPC server on a free port: replies and status codes."""

from __future__ import annotations

import grpc
import pytest
from routing_support import HA_LONG, SENDER, FakeDirectory, route
from sqlalchemy.orm import Session, sessionmaker

from lienthong.routing.v1 import routing_pb2, routing_pb2_grpc
from lienthong_common.db import transaction


def test_status_state_and_inbox_over_grpc(
    sessions: sessionmaker[Session], stub: routing_pb2_grpc.RoutingStub
) -> None:
    with transaction(sessions) as session:
        document_id = route(session, FakeDirectory(), recipients=[HA_LONG])

    reply = stub.PostStatus(
        routing_pb2.PostStatusRequest(document_id=document_id, actor_code=HA_LONG, code="03")
    )
    assert [(d.recipient_code, d.state, d.last_status_code) for d in reply.deliveries] == [
        (HA_LONG, "accepted", "03")
    ]

    state = stub.GetDocumentState(routing_pb2.GetDocumentStateRequest(document_id=document_id))
    assert (state.state, state.sender_code, state.deliveries[0].state) == ("routed", SENDER, "accepted")
    assert [e.code for e in state.timeline] == ["", "03"]
    assert state.timeline[1].at.seconds > 0

    inbox = stub.ListInbox(routing_pb2.InboxRequest(agency_code=HA_LONG))
    assert [i.document_id for i in inbox.items] == [document_id]
    assert inbox.items[0].state == "accepted"
    assert inbox.next_cursor


def test_domain_errors_become_status_codes(
    sessions: sessionmaker[Session], stub: routing_pb2_grpc.RoutingStub
) -> None:
    with transaction(sessions) as session:
        document_id = route(session, FakeDirectory(), recipients=[HA_LONG])
        route(session, FakeDirectory(), recipients=[HA_LONG])

    cases = [
        (
            routing_pb2.PostStatusRequest(document_id="missing", actor_code=HA_LONG, code="01"),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            routing_pb2.PostStatusRequest(document_id=document_id, actor_code=SENDER, code="01"),
            grpc.StatusCode.PERMISSION_DENIED,
        ),
        (
            routing_pb2.PostStatusRequest(document_id=document_id, actor_code=HA_LONG, code="99"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            routing_pb2.PostStatusRequest(document_id=document_id, actor_code=HA_LONG, code="06"),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
    ]
    for request, code in cases:
        with pytest.raises(grpc.RpcError) as raised:
            stub.PostStatus(request)
        assert raised.value.code() == code, request

    # A failed status left nothing behind: the delivery is still only delivered.
    state = stub.GetDocumentState(routing_pb2.GetDocumentStateRequest(document_id=document_id))
    assert state.deliveries[0].state == "delivered"
