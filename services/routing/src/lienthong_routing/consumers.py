"""What routing consumes: DocumentVerified on TOPIC_VERIFIED, each routed or refused
(routed_documents.py) in the transaction that also records the event id."""

from __future__ import annotations

from sqlalchemy.orm import Session

from lienthong.events.v1 import events_pb2
from lienthong_common.outbox import TOPIC_VERIFIED
from lienthong_routing.clients import RecipientDirectory
from lienthong_routing.deadlines import WorkingCalendar
from lienthong_routing.routed_documents import route_verified_document


class VerifiedDocuments:
    """Consumer of TOPIC_VERIFIED: route or refuse each verified document."""

    topics = [TOPIC_VERIFIED]

    def __init__(self, *, directory: RecipientDirectory, calendar: WorkingCalendar | None = None) -> None:
        self.directory = directory
        self.calendar = calendar

    def handle(self, session: Session, event: events_pb2.Event) -> None:
        if event.WhichOneof("payload") != "verified":
            return
        route_verified_document(
            session=session, event=event, directory=self.directory, calendar=self.calendar
        )
