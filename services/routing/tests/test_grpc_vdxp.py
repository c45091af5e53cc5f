"""The VDXP pull rpcs and the new DocumentState fields over a real gRPC server."""

from __future__ import annotations

import grpc
import pytest
from routing_support import HA_LONG, QUANG_NINH, SENDER, FakeDirectory, route
from sqlalchemy.orm import Session, sessionmaker

from lienthong.routing.v1 import routing_pb2, routing_pb2_grpc
from lienthong_common import edxml
from lienthong_common.db import transaction


def test_the_receive_loop_over_grpc(
    sessions: sessionmaker[Session], stub: routing_pb2_grpc.RoutingStub
) -> None:
    with transaction(sessions) as session:
        document_id = route(session, FakeDirectory(), recipients=[HA_LONG])

    [edoc] = stub.ListPending(routing_pb2.PendingRequest(agency_codes=[HA_LONG, QUANG_NINH])).items
    assert (edoc.id, edoc.kind, edoc.to_code, edoc.from_code, edoc.state) == (
        document_id,
        "edoc",
        HA_LONG,
        SENDER,
        "pending",
    )
    request = routing_pb2.PostStatusRequest(document_id=document_id, actor_code=HA_LONG, code="01")
    posted = stub.PostStatus(request)
    assert len(posted.status_message_ids) == 1
    assert stub.PostStatus(request).status_message_ids == posted.status_message_ids  # a retry

    reply = stub.ListPending(routing_pb2.PendingRequest(agency_codes=[SENDER], kind="status"))
    assert [i.id for i in reply.items] == list(posted.status_message_ids) and reply.total == 1
    message = stub.GetStatusMessage(
        routing_pb2.StatusMessageRequest(id=reply.items[0].id, agency_codes=[SENDER])
    )
    assert (message.item.status_code, message.item.document_id) == ("01", document_id)
    assert edxml.parse_status_package(message.package).response_for_organ_id == SENDER

    acked = stub.AckStatusMessage(
        routing_pb2.AckStatusMessageRequest(id=message.item.id, agency_codes=[SENDER], outcome="done")
    )
    assert acked.state == "done"
    assert stub.ListPending(routing_pb2.PendingRequest(agency_codes=[SENDER, HA_LONG])).total == 0

    with pytest.raises(grpc.RpcError) as raised:
        stub.GetStatusMessage(routing_pb2.StatusMessageRequest(id=message.item.id, agency_codes=[HA_LONG]))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as raised:
        stub.AckStatusMessage(
            routing_pb2.AckStatusMessageRequest(id=message.item.id, agency_codes=[SENDER], outcome="ok")
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_document_state_says_when_and_to_whom(
    sessions: sessionmaker[Session], stub: routing_pb2_grpc.RoutingStub
) -> None:
    directory = FakeDirectory(unknown={"000.00.99.H49"})
    with transaction(sessions) as session:
        routed = route(session, directory, recipients=[HA_LONG, "000.00.99.H49"])
        refused = route(session, directory, recipients=[HA_LONG], indication="TOTAL_FAILED")

    state = stub.GetDocumentState(routing_pb2.GetDocumentStateRequest(document_id=routed))
    assert list(state.addressed_codes) == [HA_LONG, "000.00.99.H49"]
    assert state.routed_at.seconds > 0
    [delivery] = state.deliveries
    assert delivery.delivered_at == state.routed_at

    sent = stub.ListSent(routing_pb2.ListSentRequest(sender_codes=[SENDER]))
    assert {d.document_id for d in sent.documents} == {routed, refused} and sent.next_cursor == ""
    [refused_state] = [d for d in sent.documents if d.document_id == refused]
    assert (refused_state.state, list(refused_state.addressed_codes), len(refused_state.deliveries)) == (
        "refused",
        [HA_LONG],
        0,
    )
    found = stub.FindDocuments(
        routing_pb2.FindDocumentsRequest(edxml_document_id=state.edxml_document_id, party_codes=[HA_LONG])
    )
    assert [d.document_id for d in found.documents] == [routed]
    with pytest.raises(grpc.RpcError) as raised:
        stub.ListSent(routing_pb2.ListSentRequest(sender_codes=[HA_LONG], document_id=routed))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
