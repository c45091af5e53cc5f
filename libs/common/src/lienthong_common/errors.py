"""Errors the domain raises, in the domain's words and free of any transport.

A service's rules raise `DomainError(kind, message)`; the message is meant for the caller
(`recipient 000.00.00.H99 is not in the directory`). The transport maps the kind to its own
status in one place: gRPC in `lienthong_common.grpcutil.GRPC_STATUS` (applied by
`translate_errors` on every servicer method).
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """Why a request could not be done, as the caller should understand it."""

    INVALID = "invalid"  # the request itself is wrong (a malformed code, a bad value)
    NOT_FOUND = "not_found"  # what it names does not exist
    ALREADY_EXISTS = "already_exists"  # it would create something that already exists
    CONFLICT = "conflict"  # not allowed in the current state (a transition, a rebuild running)
    FORBIDDEN = "forbidden"  # the caller may not do this
    TOO_LARGE = "too_large"  # over a size limit
    DAMAGED = "damaged"  # stored data no longer matches its digest
    UNAVAILABLE = "unavailable"  # a dependency cannot answer now; retrying later may work
    TIMED_OUT = "timed_out"  # the work did not finish in its time
    UNSUPPORTED = "unsupported"  # this server does not offer it
    INTERNAL = "internal"  # our fault, with a reason worth telling


class DomainError(Exception):
    """A rule said no: the kind of refusal and a message meant for the caller."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def not_found(message: str) -> DomainError:
    return DomainError(ErrorKind.NOT_FOUND, message)


def invalid(message: str) -> DomainError:
    return DomainError(ErrorKind.INVALID, message)


def conflict(message: str) -> DomainError:
    return DomainError(ErrorKind.CONFLICT, message)


def forbidden(message: str) -> DomainError:
    return DomainError(ErrorKind.FORBIDDEN, message)
