"""What the directory emits: AgencyChanged on TOPIC_DIRECTORY, keyed by agency code.
What it consumes is in consumers.py."""

from __future__ import annotations

from sqlalchemy.orm import Session

from lienthong_common.outbox import TOPIC_DIRECTORY, new_event
from lienthong_directory.models import OUTBOX, AgencyVersion


def agency_changed(*, session: Session, version: AgencyVersion) -> None:
    """Queue AgencyChanged for a new version, in the transaction that records it."""
    event = new_event()
    changed = event.agency_changed
    changed.code = version.code
    changed.name = version.name
    changed.tier = version.tier
    changed.province_code = version.province_code
    changed.status = version.status
    OUTBOX.add(session, topic=TOPIC_DIRECTORY, key=version.code, event=event)
