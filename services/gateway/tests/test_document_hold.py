"""A document sigverify holds (revocation not confirmed) is shown as still verifying, with why."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import grpc
from fastapi.testclient import TestClient
from gateway_fakes import FakeRpcError, FakeSigverify, fake_clients, gateway_settings
from test_authorization_matrix import headers_for, submit

from lienthong.sigverify.v1 import sigverify_pb2
from lienthong_common.outbox import timestamp
from lienthong_gateway.app import create_app

REASON = "CRL http://crl.example.vn/issuing.crl for CN=Nguyễn Văn A: unreachable: timed out"


class HoldingSigverify(FakeSigverify):
    """Sigverify holding every document it is asked about (none when `held` is False)."""

    held = True

    def GetHold(self, request: Any, timeout: float = 0) -> Any:
        if not self.held:
            raise FakeRpcError(grpc.StatusCode.NOT_FOUND, f"document {request.document_id} is not held")
        hold = sigverify_pb2.VerificationHold(document_id=request.document_id, reason=REASON, attempts=3)
        hold.held_since.CopyFrom(timestamp(datetime(2026, 12, 7, 8, 0, tzinfo=UTC)))
        hold.next_attempt_at.CopyFrom(timestamp(datetime(2026, 12, 7, 8, 7, tzinfo=UTC)))
        hold.deadline.CopyFrom(timestamp(datetime(2026, 12, 8, 8, 0, tzinfo=UTC)))
        return hold


def _view_before_routing(sigverify: HoldingSigverify) -> dict[str, Any]:
    """GET /v1/documents/{id} of a document submitted but not yet routed (no verdict yet)."""
    clients = replace(fake_clients(), sigverify=sigverify)
    with TestClient(create_app(gateway_settings(), clients=clients)) as client:
        document_id = submit(client)
        clients.routing.states.clear()  # type: ignore[attr-defined]
        reply = client.get(f"/v1/documents/{document_id}", headers=headers_for(client, "sender"))
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def test_held_document_is_verifying_with_the_hold_it_waits_on() -> None:
    view = _view_before_routing(HoldingSigverify())

    assert view["state"] == "verifying"
    assert view["validation"] is None
    assert view["hold"] == {
        "waiting_for": "revocation data",
        "reason": REASON,
        "held_since": "2026-12-07T08:00:00+00:00",
        "next_attempt_at": "2026-12-07T08:07:00+00:00",
        "attempts": 3,
        "deadline": "2026-12-08T08:00:00+00:00",
    }


def test_document_not_held_has_no_hold() -> None:
    sigverify = HoldingSigverify()
    sigverify.held = False
    view = _view_before_routing(sigverify)

    assert view["state"] == "verifying"
    assert "hold" not in view
