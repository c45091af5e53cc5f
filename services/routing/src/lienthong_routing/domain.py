"""The delivery state machine driven by QCVN 102 status codes: pure, table-driven.

A recipient moves its own delivery forward (01..06, never backwards, forward skips allowed
once accepted); the sender asks for a recall (13), which puts every delivery still in play
into `recall_requested`; the recipient then answers 15 (recalled) or 16 (recall refused).
`refused`, `done`, `recalled` and `recall_refused` are terminal. A later document that updates
or replaces this one (BussinessDocType 2/3) moves the delivery to `superseded` or `replaced`
(see business.py): a platform action, not a status code, and terminal too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from lienthong_common.errors import DomainError, conflict, invalid

# A routed document's own state: delivered to its recipients, or refused as a whole.
ROUTED = "routed"
REFUSED = "refused"


class DeliveryState(StrEnum):
    DELIVERED = "delivered"
    ARRIVED = "arrived"
    REFUSED = "refused"
    ACCEPTED = "accepted"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    RECALL_REQUESTED = "recall_requested"
    RECALLED = "recalled"
    RECALL_REFUSED = "recall_refused"
    # Set by the platform when a later document updates (BussinessDocType 2) or replaces (3) it.
    SUPERSEDED = "superseded"
    REPLACED = "replaced"


class StatusCode(StrEnum):
    ARRIVED = "01"
    REFUSED = "02"
    ACCEPTED = "03"
    ASSIGNED = "04"
    IN_PROGRESS = "05"
    DONE = "06"
    RECALL_REQUESTED = "13"
    RECALL_ACCEPTED = "15"
    RECALL_REFUSED = "16"


class Party(StrEnum):
    """Who may post a status code."""

    RECIPIENT = "recipient"
    SENDER = "sender"


S = DeliveryState
C = StatusCode

# (current state, code) -> next state. Anything absent is an illegal transition.
TRANSITIONS: dict[tuple[DeliveryState, StatusCode], DeliveryState] = {
    (S.DELIVERED, C.ARRIVED): S.ARRIVED,
    (S.DELIVERED, C.REFUSED): S.REFUSED,
    (S.DELIVERED, C.ACCEPTED): S.ACCEPTED,
    (S.ARRIVED, C.REFUSED): S.REFUSED,
    (S.ARRIVED, C.ACCEPTED): S.ACCEPTED,
    (S.ACCEPTED, C.ASSIGNED): S.ASSIGNED,
    (S.ACCEPTED, C.IN_PROGRESS): S.IN_PROGRESS,
    (S.ACCEPTED, C.DONE): S.DONE,
    (S.ASSIGNED, C.IN_PROGRESS): S.IN_PROGRESS,
    (S.ASSIGNED, C.DONE): S.DONE,
    (S.IN_PROGRESS, C.DONE): S.DONE,
    (S.DELIVERED, C.RECALL_REQUESTED): S.RECALL_REQUESTED,
    (S.ARRIVED, C.RECALL_REQUESTED): S.RECALL_REQUESTED,
    (S.ACCEPTED, C.RECALL_REQUESTED): S.RECALL_REQUESTED,
    (S.ASSIGNED, C.RECALL_REQUESTED): S.RECALL_REQUESTED,
    (S.IN_PROGRESS, C.RECALL_REQUESTED): S.RECALL_REQUESTED,
    (S.RECALL_REQUESTED, C.RECALL_ACCEPTED): S.RECALLED,
    (S.RECALL_REQUESTED, C.RECALL_REFUSED): S.RECALL_REFUSED,
}

POSTED_BY: dict[StatusCode, Party] = {
    code: (Party.SENDER if code is C.RECALL_REQUESTED else Party.RECIPIENT) for code in StatusCode
}

TERMINAL_STATES = frozenset({S.REFUSED, S.DONE, S.RECALLED, S.RECALL_REFUSED, S.SUPERSEDED, S.REPLACED})

# States an update or replacement can no longer touch: the document is already out of play.
NOT_SUPERSEDABLE = frozenset({S.REFUSED, S.RECALLED, S.SUPERSEDED, S.REPLACED})

DESCRIPTIONS: dict[StatusCode, str] = {
    C.ARRIVED: "arrived",
    C.REFUSED: "refused",
    C.ACCEPTED: "accepted",
    C.ASSIGNED: "assigned",
    C.IN_PROGRESS: "in progress",
    C.DONE: "done",
    C.RECALL_REQUESTED: "sender asks to recall",
    C.RECALL_ACCEPTED: "recall accepted",
    C.RECALL_REFUSED: "recall refused",
}


def parse_status_code(raw: str) -> StatusCode:
    """The StatusCode for `raw`, or INVALID_ARGUMENT listing the valid codes."""
    try:
        return StatusCode(raw.strip())
    except ValueError:
        valid = ", ".join(code.value for code in StatusCode)
        raise invalid(f"unknown status code {raw!r}; valid codes are {valid}") from None


def can_follow(current: DeliveryState, code: StatusCode) -> bool:
    return (current, code) in TRANSITIONS


def next_state(*, recipient_code: str, current: DeliveryState, code: StatusCode) -> DeliveryState:
    """The state `code` moves a delivery to, or FAILED_PRECONDITION naming the current state."""
    try:
        return TRANSITIONS[(current, code)]
    except KeyError:
        raise illegal_transition(recipient_code=recipient_code, current=current, code=code) from None


def illegal_transition(*, recipient_code: str, current: DeliveryState, code: StatusCode) -> DomainError:
    return conflict(
        f"delivery to {recipient_code} is '{current.value}'; status {code.value} cannot follow it"
    )


@dataclass(frozen=True)
class NewDelivery:
    """A delivery just written by routing (what the event, webhook and business step read)."""

    id: str
    recipient_code: str
    requested_code: str
    inbox_sequence: int
    delivered_at: datetime
    ack_deadline: datetime | None
    state: str = DeliveryState.DELIVERED.value
