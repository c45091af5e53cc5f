"""Test helpers for routing: a fake directory, event factories, outbox readers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date

import grpc
from sqlalchemy import select
from sqlalchemy.orm import Session

from lienthong.events.v1 import events_pb2
from lienthong.routing.v1 import routing_pb2_grpc
from lienthong_common.ids import new_id
from lienthong_common.outbox import new_event
from lienthong_routing.clients import Resolution
from lienthong_routing.models import OUTBOX
from lienthong_routing.routed_documents import route_verified_document

SENDER = "000.00.00.G22"
HA_LONG = "000.00.01.H49"
QUANG_NINH = "000.00.00.H49"


@dataclass
class FakeDirectory:
    """Resolves every code to itself, except dissolved ones (to a successor) and unknown ones."""

    successors: dict[str, str] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    calls: list[tuple[list[str], date]] = field(default_factory=list)

    def resolve_recipients(self, codes: Sequence[str], *, as_of: date) -> list[Resolution]:
        self.calls.append((list(codes), as_of))
        resolutions = []
        for code in codes:
            if code in self.unknown:
                resolutions.append(Resolution(code, "", False, f"recipient {code} is not in the directory"))
            else:
                resolutions.append(
                    Resolution(
                        code,
                        self.successors.get(code, code),
                        True,
                        (
                            f"{code} was dissolved on 2025-07-01; "
                            f"its successor {self.successors[code]} receives"
                            if code in self.successors
                            else ""
                        ),
                    )
                )
        return resolutions


def verified_event(
    *,
    recipients: Sequence[str],
    sender: str = SENDER,
    indication: str = "TOTAL_PASSED",
    document_id: str | None = None,
    reason: str = "",
    sub_indication: str = "",
    business_doc_type: int = 0,
    referenced_document_id: str = "",
    edxml_document_id: str = "",
) -> events_pb2.Event:
    event = new_event(document_id or new_id())
    event.verified.CopyFrom(
        events_pb2.DocumentVerified(
            sender_code=sender,
            recipient_codes=list(recipients),
            edxml_document_id=edxml_document_id or f"{sender},2025/07/15,7816/VPCP-TTĐT",
            subject="Về việc triển khai liên thông văn bản",
            indication=indication,
            sub_indication=sub_indication,
            reason=reason,
            business_doc_type=business_doc_type,
            referenced_document_id=referenced_document_id,
        )
    )
    return event


def route(session: Session, directory: FakeDirectory, *, recipients: Sequence[str], **kwargs: object) -> str:
    """Route a freshly verified document; returns its id."""
    event = verified_event(recipients=recipients, **kwargs)  # type: ignore[arg-type]
    route_verified_document(session=session, event=event, directory=directory)
    return event.document_id


def outbox_events(session: Session) -> list[tuple[str, str, events_pb2.Event]]:
    """(topic, key, event) for every queued event, in order."""
    rows = session.execute(
        select(OUTBOX.table.c.topic, OUTBOX.table.c.key, OUTBOX.table.c.payload).order_by(OUTBOX.table.c.id)
    ).all()
    return [(r[0], r[1], events_pb2.Event.FromString(r[2])) for r in rows]


def clear_outbox(session: Session) -> None:
    session.execute(OUTBOX.table.delete())


@contextmanager
def serving(servicer: routing_pb2_grpc.RoutingServicer) -> Iterator[routing_pb2_grpc.RoutingStub]:
    """The servicer on a real gRPC server on a loopback port, and a stub calling it."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    routing_pb2_grpc.add_RoutingServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield routing_pb2_grpc.RoutingStub(channel)
    finally:
        server.stop(grace=None)
