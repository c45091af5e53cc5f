"""The Routing gRPC servicer: translate protobuf to and from the use cases in deliveries."""

from __future__ import annotations

import grpc
from sqlalchemy.orm import Session, sessionmaker

from lienthong.routing.v1 import routing_pb2, routing_pb2_grpc
from lienthong_common.db import transaction
from lienthong_common.grpcutil import translate_errors
from lienthong_common.outbox import timestamp
from lienthong_routing import deliveries
from lienthong_routing.models import Delivery, RoutedDocument, StatusEntry

SERVICE_NAME = routing_pb2.DESCRIPTOR.services_by_name["Routing"].full_name


def delivery_message(delivery: Delivery) -> routing_pb2.Delivery:
    return routing_pb2.Delivery(
        recipient_code=delivery.recipient_code,
        state=delivery.state,
        last_status_code=delivery.last_status_code,
        updated_at=timestamp(delivery.updated_at),
        requested_code=delivery.requested_code,
    )


def status_entry_message(entry: StatusEntry) -> routing_pb2.StatusEntry:
    return routing_pb2.StatusEntry(
        recipient_code=entry.recipient_code,
        code=entry.code,
        state=entry.state,
        description=entry.description,
        actor_code=entry.actor_code,
        at=timestamp(entry.at),
    )


def inbox_item_message(delivery: Delivery, document: RoutedDocument) -> routing_pb2.InboxItem:
    return routing_pb2.InboxItem(
        document_id=document.id,
        sender_code=document.sender_code,
        subject=document.subject,
        edxml_document_id=document.edxml_document_id,
        state=delivery.state,
        delivered_at=timestamp(delivery.delivered_at),
    )


class RoutingServicer(routing_pb2_grpc.RoutingServicer):
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    @translate_errors
    def GetDocumentState(
        self, request: routing_pb2.GetDocumentStateRequest, context: grpc.ServicerContext
    ) -> routing_pb2.DocumentState:
        with transaction(self._sessions) as session:
            view = deliveries.document_state(session=session, document_id=request.document_id)
            return routing_pb2.DocumentState(
                document_id=view.document.id,
                sender_code=view.document.sender_code,
                state=view.document.state,
                refusal_reason=view.document.refusal_reason,
                deliveries=[delivery_message(d) for d in view.deliveries],
                timeline=[status_entry_message(e) for e in view.timeline],
                subject=view.document.subject,
                edxml_document_id=view.document.edxml_document_id,
            )

    @translate_errors
    def ListInbox(
        self, request: routing_pb2.InboxRequest, context: grpc.ServicerContext
    ) -> routing_pb2.InboxResponse:
        with transaction(self._sessions) as session:
            page = deliveries.inbox(
                session=session,
                agency_code=request.agency_code,
                cursor=request.cursor,
                limit=request.limit,
            )
            return routing_pb2.InboxResponse(
                items=[inbox_item_message(d, doc) for d, doc in page.items],
                next_cursor=page.next_cursor,
            )

    @translate_errors
    def PostStatus(
        self, request: routing_pb2.PostStatusRequest, context: grpc.ServicerContext
    ) -> routing_pb2.PostStatusResponse:
        with transaction(self._sessions) as session:
            changed = deliveries.post_status(
                session=session,
                document_id=request.document_id,
                actor_code=request.actor_code,
                code=request.code,
                description=request.description,
            )
            return routing_pb2.PostStatusResponse(deliveries=[delivery_message(d) for d in changed])
