"""The Routing gRPC servicer: translate protobuf to and from the use cases in deliveries."""

from __future__ import annotations

from datetime import datetime

import grpc
from sqlalchemy.orm import Session, sessionmaker

from lienthong.routing.v1 import routing_pb2, routing_pb2_grpc
from lienthong_common.clock import now_utc
from lienthong_common.db import transaction
from lienthong_common.errors import invalid
from lienthong_common.grpcutil import translate_errors
from lienthong_common.outbound import OutboundPolicy
from lienthong_common.outbox import timestamp
from lienthong_routing import (
    deliveries,
    evidence,
    sent_documents,
    status_packages,
    vdxp_pending,
    webhooks,
)
from lienthong_routing.deadlines import is_overdue
from lienthong_routing.models import (
    Delivery,
    EvidenceEntry,
    RoutedDocument,
    StatusEntry,
    StatusPackageRecord,
    WebhookAttempt,
    WebhookDelivery,
)

SERVICE_NAME = routing_pb2.DESCRIPTOR.services_by_name["Routing"].full_name


def delivery_message(
    delivery: Delivery, *, overdue: bool = False, push: WebhookDelivery | None = None
) -> routing_pb2.Delivery:
    message = routing_pb2.Delivery(
        recipient_code=delivery.recipient_code,
        state=delivery.state,
        last_status_code=delivery.last_status_code,
        updated_at=timestamp(delivery.updated_at),
        requested_code=delivery.requested_code,
        overdue=overdue,
        superseded_by=delivery.superseded_by,
        delivered_at=timestamp(delivery.delivered_at),
    )
    if delivery.ack_deadline is not None:
        message.ack_deadline.CopyFrom(timestamp(delivery.ack_deadline))
    if push is not None:
        message.push_state = push.state
        message.push_attempts = push.attempts
        message.push_error = push.last_error
    return message


def status_entry_message(entry: StatusEntry) -> routing_pb2.StatusEntry:
    return routing_pb2.StatusEntry(
        recipient_code=entry.recipient_code,
        code=entry.code,
        state=entry.state,
        description=entry.description,
        actor_code=entry.actor_code,
        at=timestamp(entry.at),
    )


def document_state_message(view: deliveries.DocumentView) -> routing_pb2.DocumentState:
    document = view.document
    return routing_pb2.DocumentState(
        document_id=document.id,
        sender_code=document.sender_code,
        state=document.state,
        refusal_reason=document.refusal_reason,
        deliveries=[
            delivery_message(d, overdue=view.overdue(d), push=view.pushes.get(d.id)) for d in view.deliveries
        ],
        timeline=[status_entry_message(e) for e in view.timeline],
        subject=document.subject,
        edxml_document_id=document.edxml_document_id,
        business_doc_type=document.business_doc_type,
        referenced_document_id=document.referenced_document_id,
        # When routing recorded it: routed, or refused (then with no deliveries).
        routed_at=timestamp(document.created_at),
        addressed_codes=list(document.recipient_codes),
    )


def pending_item_message(item: vdxp_pending.PendingItem) -> routing_pb2.PendingItem:
    return routing_pb2.PendingItem(
        id=item.id,
        kind=item.kind,
        from_code=item.from_code,
        to_code=item.to_code,
        created_at=timestamp(item.created_at),
        updated_at=timestamp(item.updated_at),
        state=item.state,
        document_id=item.document_id,
        status_code=item.status_code,
        description=item.description,
        subject=item.subject,
        edxml_document_id=item.edxml_document_id,
    )


def inbox_item_message(delivery: Delivery, document: RoutedDocument, now: datetime) -> routing_pb2.InboxItem:
    return routing_pb2.InboxItem(
        document_id=document.id,
        sender_code=document.sender_code,
        subject=document.subject,
        edxml_document_id=document.edxml_document_id,
        state=delivery.state,
        delivered_at=timestamp(delivery.delivered_at),
        business_doc_type=document.business_doc_type,
        referenced_document_id=document.referenced_document_id,
        overdue=is_overdue(
            state=delivery.state,
            acknowledged_at=delivery.acknowledged_at,
            ack_deadline=delivery.ack_deadline,
            now=now,
        ),
        superseded_by=delivery.superseded_by,
    )


def evidence_message(entry: EvidenceEntry) -> routing_pb2.EvidenceEntry:
    return routing_pb2.EvidenceEntry(
        sequence=entry.sequence,
        kind=entry.kind,
        document_id=entry.document_id,
        recipient_code=entry.recipient_code,
        body=entry.body,
        previous_hash=entry.previous_hash,
        hash=entry.hash,
        at=timestamp(entry.at),
    )


def status_package_info(entry: StatusPackageRecord) -> routing_pb2.StatusPackageInfo:
    return routing_pb2.StatusPackageInfo(
        number=entry.number,
        from_code=entry.from_code,
        status_code=entry.status_code,
        description=entry.description,
        at=timestamp(entry.at),
        size=len(entry.package),
    )


def webhook_message(view: webhooks.WebhookView) -> routing_pb2.Webhook:
    hook = view.webhook
    return routing_pb2.Webhook(
        agency_code=hook.agency_code,
        url=hook.url,
        secret=view.generated_secret,
        secret_hint=hook.secret[-4:],
        updated_at=timestamp(hook.updated_at),
        pending=view.counts.get(webhooks.PENDING, 0),
        dead_lettered=view.counts.get(webhooks.DEAD, 0),
        pushed=view.counts.get(webhooks.PUSHED, 0),
    )


def webhook_delivery_message(
    item: WebhookDelivery, history: list[WebhookAttempt]
) -> routing_pb2.WebhookDelivery:
    message = routing_pb2.WebhookDelivery(
        id=item.id,
        agency_code=item.agency_code,
        document_id=item.document_id,
        kind=item.kind,
        state=item.state,
        attempts=item.attempts,
        last_error=item.last_error,
        next_attempt_at=timestamp(item.next_attempt_at),
        created_at=timestamp(item.created_at),
        history=[
            routing_pb2.WebhookAttempt(
                number=a.number,
                at=timestamp(a.at),
                http_status=a.http_status,
                error=a.error,
                duration_ms=a.duration_ms,
            )
            for a in history
        ],
    )
    if item.pushed_at is not None:
        message.pushed_at.CopyFrom(timestamp(item.pushed_at))
    return message


class RoutingServicer(routing_pb2_grpc.RoutingServicer):
    def __init__(self, sessions: sessionmaker[Session], *, outbound: OutboundPolicy | None = None) -> None:
        self._sessions = sessions
        # What a registered webhook URL may reach (public addresses unless allow-listed).
        self._outbound = outbound or OutboundPolicy()

    @translate_errors
    def GetDocumentState(
        self, request: routing_pb2.GetDocumentStateRequest, context: grpc.ServicerContext
    ) -> routing_pb2.DocumentState:
        with transaction(self._sessions) as session:
            view = deliveries.document_state(session=session, document_id=request.document_id)
            return document_state_message(view)

    @translate_errors
    def ListInbox(
        self, request: routing_pb2.InboxRequest, context: grpc.ServicerContext
    ) -> routing_pb2.InboxResponse:
        now = now_utc()
        with transaction(self._sessions) as session:
            page = deliveries.inbox(
                session=session,
                agency_code=request.agency_code,
                cursor=request.cursor,
                limit=request.limit,
            )
            return routing_pb2.InboxResponse(
                items=[inbox_item_message(d, doc, now) for d, doc in page.items],
                next_cursor=page.next_cursor,
            )

    @translate_errors
    def PostStatus(
        self, request: routing_pb2.PostStatusRequest, context: grpc.ServicerContext
    ) -> routing_pb2.PostStatusResponse:
        with transaction(self._sessions) as session:
            posted = deliveries.post_status(
                session=session,
                document_id=request.document_id,
                actor_code=request.actor_code,
                code=request.code,
                description=request.description,
            )
            return routing_pb2.PostStatusResponse(
                deliveries=[delivery_message(d) for d in posted.deliveries],
                status_message_ids=posted.status_message_ids,
            )

    # -- evidence --------------------------------------------------------------------------
    @translate_errors
    def ListEvidence(
        self, request: routing_pb2.ListEvidenceRequest, context: grpc.ServicerContext
    ) -> routing_pb2.ListEvidenceResponse:
        if not request.document_id:
            raise invalid("document_id is required")
        with transaction(self._sessions) as session:
            entries = evidence.entries_of(session=session, document_id=request.document_id)
            return routing_pb2.ListEvidenceResponse(entries=[evidence_message(e) for e in entries])

    @translate_errors
    def VerifyEvidence(
        self, request: routing_pb2.VerifyEvidenceRequest, context: grpc.ServicerContext
    ) -> routing_pb2.VerifyEvidenceResponse:
        with transaction(self._sessions) as session:
            result = evidence.verify(session=session)
        return routing_pb2.VerifyEvidenceResponse(
            valid=result.valid,
            entries=result.entries,
            head_hash=result.head_hash,
            first_bad_sequence=result.first_bad_sequence,
            problem=result.problem,
        )

    # -- status packages ---------------------------------------------------------------------
    @translate_errors
    def ListStatusPackages(
        self, request: routing_pb2.ListStatusPackagesRequest, context: grpc.ServicerContext
    ) -> routing_pb2.ListStatusPackagesResponse:
        with transaction(self._sessions) as session:
            deliveries.document_state(session=session, document_id=request.document_id)
            found = status_packages.list_for(session=session, document_id=request.document_id)
            return routing_pb2.ListStatusPackagesResponse(packages=[status_package_info(e) for e in found])

    @translate_errors
    def GetStatusPackage(
        self, request: routing_pb2.GetStatusPackageRequest, context: grpc.ServicerContext
    ) -> routing_pb2.StatusPackage:
        with transaction(self._sessions) as session:
            entry = status_packages.get(
                session=session, document_id=request.document_id, number=request.number
            )
            return routing_pb2.StatusPackage(info=status_package_info(entry), package=entry.package)

    # -- webhooks ------------------------------------------------------------------------------
    @translate_errors
    def SetWebhook(
        self, request: routing_pb2.SetWebhookRequest, context: grpc.ServicerContext
    ) -> routing_pb2.Webhook:
        with transaction(self._sessions) as session:
            view = webhooks.set_webhook(
                session=session,
                agency_code=request.agency_code,
                url=request.url,
                secret=request.secret,
                policy=self._outbound,
            )
            return webhook_message(view)

    @translate_errors
    def GetWebhook(
        self, request: routing_pb2.WebhookRequest, context: grpc.ServicerContext
    ) -> routing_pb2.Webhook:
        with transaction(self._sessions) as session:
            return webhook_message(webhooks.get_webhook(session=session, agency_code=request.agency_code))

    @translate_errors
    def DeleteWebhook(
        self, request: routing_pb2.WebhookRequest, context: grpc.ServicerContext
    ) -> routing_pb2.Webhook:
        with transaction(self._sessions) as session:
            return webhook_message(webhooks.delete_webhook(session=session, agency_code=request.agency_code))

    @translate_errors
    def ListWebhookDeliveries(
        self, request: routing_pb2.ListWebhookDeliveriesRequest, context: grpc.ServicerContext
    ) -> routing_pb2.ListWebhookDeliveriesResponse:
        with transaction(self._sessions) as session:
            items = webhooks.list_deliveries(
                session=session,
                agency_code=request.agency_code,
                state=request.state,
                document_id=request.document_id,
                limit=request.limit or 100,
            )
            history = webhooks.attempts_of(session=session, ids=[i.id for i in items])
            return routing_pb2.ListWebhookDeliveriesResponse(
                deliveries=[webhook_delivery_message(i, history[i.id]) for i in items]
            )

    @translate_errors
    def RedriveWebhookDeliveries(
        self, request: routing_pb2.RedriveRequest, context: grpc.ServicerContext
    ) -> routing_pb2.RedriveResponse:
        with transaction(self._sessions) as session:
            ids = webhooks.redrive(session=session, agency_code=request.agency_code, ids=list(request.ids))
        return routing_pb2.RedriveResponse(ids=ids)

    # -- deadlines -----------------------------------------------------------------------------
    @translate_errors
    def CountOverdue(
        self, request: routing_pb2.CountOverdueRequest, context: grpc.ServicerContext
    ) -> routing_pb2.CountOverdueResponse:
        with transaction(self._sessions) as session:
            counts = deliveries.count_overdue(session=session)
        return routing_pb2.CountOverdueResponse(
            total=sum(counts.values()),
            by_recipient=[routing_pb2.OverdueCount(recipient_code=c, count=n) for c, n in counts.items()],
        )

    @translate_errors
    def ListOverdue(
        self, request: routing_pb2.ListOverdueRequest, context: grpc.ServicerContext
    ) -> routing_pb2.ListOverdueResponse:
        with transaction(self._sessions) as session:
            rows = deliveries.overdue_deliveries(
                session=session,
                recipient_code=request.recipient_code,
                sender_code=request.sender_code,
                limit=request.limit or 500,
            )
            return routing_pb2.ListOverdueResponse(
                deliveries=[
                    routing_pb2.OverdueDelivery(
                        document_id=doc.id,
                        edxml_document_id=doc.edxml_document_id,
                        sender_code=doc.sender_code,
                        recipient_code=d.recipient_code,
                        state=d.state,
                        delivered_at=timestamp(d.delivered_at),
                        ack_deadline=timestamp(d.ack_deadline) if d.ack_deadline else None,
                        subject=doc.subject,
                    )
                    for d, doc in rows
                ]
            )

    # -- VDXP pull: pending items, status messages, sent documents -----------------------------
    @translate_errors
    def ListPending(
        self, request: routing_pb2.PendingRequest, context: grpc.ServicerContext
    ) -> routing_pb2.PendingResponse:
        with transaction(self._sessions) as session:
            pending = vdxp_pending.list_pending(
                session=session,
                agency_codes=list(request.agency_codes),
                kind=request.kind,
                limit=request.limit,
            )
        return routing_pb2.PendingResponse(
            items=[pending_item_message(i) for i in pending.items], total=pending.total
        )

    @translate_errors
    def GetStatusMessage(
        self, request: routing_pb2.StatusMessageRequest, context: grpc.ServicerContext
    ) -> routing_pb2.StatusMessage:
        with transaction(self._sessions) as session:
            item, package = vdxp_pending.status_message(
                session=session, message_id=request.id, agency_codes=list(request.agency_codes)
            )
        return routing_pb2.StatusMessage(item=pending_item_message(item), package=package)

    @translate_errors
    def AckStatusMessage(
        self, request: routing_pb2.AckStatusMessageRequest, context: grpc.ServicerContext
    ) -> routing_pb2.PendingItem:
        with transaction(self._sessions) as session:
            item = vdxp_pending.acknowledge_status_message(
                session=session,
                message_id=request.id,
                agency_codes=list(request.agency_codes),
                outcome=request.outcome,
            )
        return pending_item_message(item)

    @translate_errors
    def FindDocuments(
        self, request: routing_pb2.FindDocumentsRequest, context: grpc.ServicerContext
    ) -> routing_pb2.FindDocumentsResponse:
        with transaction(self._sessions) as session:
            views = sent_documents.find_documents(
                session=session,
                edxml_document_id=request.edxml_document_id,
                party_codes=list(request.party_codes),
            )
            return routing_pb2.FindDocumentsResponse(documents=[document_state_message(v) for v in views])

    @translate_errors
    def ListSent(
        self, request: routing_pb2.ListSentRequest, context: grpc.ServicerContext
    ) -> routing_pb2.ListSentResponse:
        with transaction(self._sessions) as session:
            page = sent_documents.list_sent(
                session=session,
                sender_codes=list(request.sender_codes),
                document_id=request.document_id,
                cursor=request.cursor,
                limit=request.limit,
            )
            return routing_pb2.ListSentResponse(
                documents=[document_state_message(v) for v in page.documents], next_cursor=page.next_cursor
            )
