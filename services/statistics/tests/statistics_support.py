"""Test helpers for statistics: event factories and a fake directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from lienthong.events.v1 import events_pb2
from lienthong_common.db import make_engine, make_session_factory
from lienthong_common.ids import new_id
from lienthong_common.outbox import new_event
from lienthong_statistics.domain import AgencyInfo
from lienthong_statistics.models import Base

SENDER = "000.00.00.H49"  # provincial People's Committee, tier 2
DEPARTMENT = "000.00.01.H49"  # tier 3
COMMUNE = "000.46.01.H49"  # tier 4
OTHER_PROVINCE = "000.00.00.H44"


def fresh_sessions(path: Path) -> sessionmaker[Session]:
    """Sessions on a new SQLite file with statistics' tables."""
    engine = make_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    return make_session_factory(engine)


def at(iso: str) -> events_pb2.Event:
    event = new_event(new_id())
    event.occurred_at.FromJsonString(iso)
    return event


def verified(
    sender: str, recipients: list[str], when: str, indication: str = "TOTAL_PASSED"
) -> events_pb2.Event:
    event = at(when)
    event.verified.CopyFrom(
        events_pb2.DocumentVerified(sender_code=sender, recipient_codes=recipients, indication=indication)
    )
    return event


def delivery(
    sender: str,
    recipient: str,
    when: str,
    *,
    state: str = "delivered",
    previous: str = "",
    code: str = "",
    actor: str = "",
) -> events_pb2.Event:
    event = at(when)
    event.delivery_updated.CopyFrom(
        events_pb2.DeliveryUpdated(
            sender_code=sender,
            recipient_code=recipient,
            state=state,
            previous_state=previous,
            status_code=code,
            actor_code=actor,
        )
    )
    return event


def refused(sender: str, recipients: list[str], when: str) -> events_pb2.Event:
    event = at(when)
    event.refused.CopyFrom(
        events_pb2.DocumentRefused(sender_code=sender, recipient_codes=recipients, indication="TOTAL_FAILED")
    )
    return event


def exchange(sender: str, recipients: list[str], when: str) -> list[events_pb2.Event]:
    """The events of one document sent and delivered to each recipient."""
    return [verified(sender, recipients, when)] + [delivery(sender, r, when) for r in recipients]


@dataclass
class FakeDirectory:
    agencies: list[AgencyInfo] = field(default_factory=list)
    calls: int = 0

    def list_agencies(self) -> list[AgencyInfo]:
        self.calls += 1
        return list(self.agencies)


def demo_directory() -> FakeDirectory:
    return FakeDirectory(
        [
            AgencyInfo(SENDER, 2, "H49"),
            AgencyInfo(DEPARTMENT, 3, "H49"),
            AgencyInfo("000.00.02.H49", 3, "H49"),
            AgencyInfo(COMMUNE, 4, "H49"),
            AgencyInfo("000.00.24.H49", 3, "H49", status="dissolved"),
            AgencyInfo(OTHER_PROVINCE, 2, "H44"),
        ]
    )
