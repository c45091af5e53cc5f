"""Held documents: a TRY_LATER verdict is held once, re-verified with back-off, and emitted
exactly once when definite or when the revocation deadline has passed (fake clock, SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sigverify_factories import RECIPIENT, SENDER, make_package, pdf_attachment
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lienthong.events.v1 import events_pb2
from lienthong.sigverify.v1 import sigverify_pb2, sigverify_pb2_grpc
from lienthong_common.kafka import EventConsumer
from lienthong_common.outbox import TOPIC_SUBMITTED, TOPIC_VERIFIED, new_event
from lienthong_common.pades import Indication, PdfVerdict
from lienthong_common.settings import KafkaSettings
from lienthong_sigverify import repository
from lienthong_sigverify.domain import Report, SignatureCheck
from lienthong_sigverify.events import SubmittedDocuments, record_verification
from lienthong_sigverify.held import (
    HeldDocuments,
    HoldPolicy,
    deadline_refusal,
    get_hold,
)
from lienthong_sigverify.models import OUTBOX, HeldDocumentRow

DOCUMENT_ID = "0b6f3d1e-8c0a-4b7e-9f0e-6d5c4b3a2f10"
START = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
CRL = "CRL http://127.0.0.1:9/crl/issuing.crl for CN=Nguyễn Văn A: unreachable: connection refused"
POLICY = HoldPolicy(base_seconds=60, max_seconds=3600, deadline_seconds=86400)


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class RevocationUnreachable:
    """A PdfCheck whose every PDF is INDETERMINATE/TRY_LATER (the CRL server is down)."""

    def verify(self, pdf: bytes | object) -> PdfVerdict:
        return PdfVerdict(
            Indication.INDETERMINATE, "TRY_LATER", [], f"revocation information is not fresh ({CRL})"
        )


def _submitted(document_id: str = DOCUMENT_ID) -> events_pb2.Event:
    event = new_event(document_id)
    event.submitted.CopyFrom(
        events_pb2.DocumentSubmitted(
            sender_code=SENDER,
            recipient_codes=[RECIPIENT],
            edxml_document_id="000.00.00.H49,2026/12/07,75/UBND-VP",
            subject="Giấy mời họp",
        )
    )
    return event


def _try_later() -> Report:
    check = SignatureCheck(
        "giay-moi.pdf",
        "Signature1",
        Indication.INDETERMINATE,
        "TRY_LATER",
        f"revocation information is not fresh ({CRL})",
        revocation=(CRL,),
    )
    return Report(
        Indication.INDETERMINATE, "TRY_LATER", f"attachment 'giay-moi.pdf': {check.message}", (check,)
    )


PASSED = Report(Indication.TOTAL_PASSED, "", "1 signature(s) valid in 1 PDF(s)")
REVOKED = Report(Indication.TOTAL_FAILED, "REVOKED", "the signer's certificate was revoked")


class Verdicts:
    """The re-verification the loop is given: scripted verdicts, counting calls."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.calls: list[str] = []

    def __call__(self, submitted: events_pb2.Event) -> Report:
        self.calls.append(submitted.document_id)
        return self.report


def _consumer(sessions: sessionmaker[Session], documents: SubmittedDocuments) -> EventConsumer:
    return EventConsumer(
        service="sigverify",
        group="lienthong-sigverify",
        topics=[TOPIC_SUBMITTED],
        settings=KafkaSettings(),
        sessions=sessions,
        outbox=OUTBOX,
        handler=documents.handle,
    )


def _verified(sessions: sessionmaker[Session]) -> list[events_pb2.Event]:
    with sessions() as session:
        rows = OUTBOX.fetch_batch(session, 100)
    assert all(topic == TOPIC_VERIFIED for _, topic, _, _, _ in rows)
    return [events_pb2.Event.FromString(payload) for _, _, _, payload, _ in rows]


def _holds(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(HeldDocumentRow)) or 0)


def _hold(
    sessions: sessionmaker[Session], clock: FakeClock, submitted: events_pb2.Event | None = None
) -> None:
    """A document held by the consumer at clock.now (TRY_LATER from a real package)."""
    fetched: list[str] = []

    def fetch(document_id: str) -> bytes:
        fetched.append(document_id)
        return make_package([pdf_attachment(b"%PDF-1.7 not really signed", name="giay-moi.pdf")])

    documents = SubmittedDocuments(
        fetch_package=fetch,
        verifier=RevocationUnreachable(),
        binding_check=None,
        hold_policy=POLICY,
        clock=clock,
    )
    assert _consumer(sessions, documents).handle(
        TOPIC_SUBMITTED, (submitted or _submitted()).SerializeToString(), None
    )


def _loop(
    sessions: sessionmaker[Session], clock: FakeClock, verdicts: Verdicts, **kwargs: object
) -> HeldDocuments:
    return HeldDocuments(
        sessions=sessions,
        reverify=verdicts,
        emit=record_verification,
        policy=kwargs.pop("policy", POLICY),  # type: ignore[arg-type]
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


def test_back_off_doubles_from_the_base_and_is_capped_at_an_hour() -> None:
    delays = [POLICY.delay(n).total_seconds() for n in range(1, 10)]
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert HoldPolicy(base_seconds=0.5, max_seconds=2).delay(3) == timedelta(seconds=2)


def test_try_later_verdict_is_held_and_nothing_is_emitted(sessions: sessionmaker[Session]) -> None:
    clock = FakeClock()
    _hold(sessions, clock)

    assert _verified(sessions) == []
    with sessions() as session:
        assert repository.get_report(session, document_id=DOCUMENT_ID) is None
        hold = get_hold(session, document_id=DOCUMENT_ID, policy=POLICY)
    assert hold is not None
    assert hold.first_seen == START
    assert hold.next_attempt_at == START + timedelta(minutes=1)
    assert hold.attempts == 1
    assert hold.deadline == START + timedelta(hours=24)
    assert "TRY_LATER" not in hold.reason and "not fresh" in hold.reason


def test_redelivered_or_repeated_event_does_not_hold_a_document_twice(
    sessions: sessionmaker[Session],
) -> None:
    clock = FakeClock()
    event = _submitted()
    _hold(sessions, clock, event)
    documents = SubmittedDocuments(
        fetch_package=lambda _id: pytest.fail("a held document is not fetched again"),  # type: ignore[arg-type,return-value]
        verifier=RevocationUnreachable(),
        binding_check=None,
        hold_policy=POLICY,
        clock=clock,
    )
    consumer = _consumer(sessions, documents)

    assert consumer.handle(TOPIC_SUBMITTED, event.SerializeToString(), None) is False  # redelivery
    assert consumer.handle(TOPIC_SUBMITTED, _submitted().SerializeToString(), None) is True  # new event id

    assert _holds(sessions) == 1
    assert _verified(sessions) == []


def test_without_a_hold_policy_try_later_is_emitted_as_a_verdict(sessions: sessionmaker[Session]) -> None:
    documents = SubmittedDocuments(
        fetch_package=lambda _id: make_package([pdf_attachment(b"%PDF-1.7")]),
        verifier=RevocationUnreachable(),
        binding_check=None,
    )
    assert _consumer(sessions, documents).handle(TOPIC_SUBMITTED, _submitted().SerializeToString(), None)
    [event] = _verified(sessions)
    assert (event.verified.indication, event.verified.sub_indication) == ("INDETERMINATE", "TRY_LATER")
    assert _holds(sessions) == 0


def test_held_document_is_not_retried_before_it_is_due(sessions: sessionmaker[Session]) -> None:
    clock = FakeClock()
    _hold(sessions, clock)
    verdicts = Verdicts(PASSED)
    clock.advance(seconds=59)

    assert _loop(sessions, clock, verdicts).run_once() == 0
    assert verdicts.calls == []


def test_still_unconfirmed_backs_off_then_definite_verdict_is_emitted_once(
    sessions: sessionmaker[Session],
) -> None:
    clock = FakeClock()
    submitted = _submitted()
    _hold(sessions, clock, submitted)
    verdicts = Verdicts(_try_later())
    loop = _loop(sessions, clock, verdicts)

    clock.advance(minutes=1)
    assert loop.run_once() == 1
    with sessions() as session:
        hold = get_hold(session, document_id=DOCUMENT_ID, policy=POLICY)
    assert hold is not None and hold.attempts == 2
    assert hold.next_attempt_at == clock.now + timedelta(minutes=2)
    assert _verified(sessions) == []

    clock.advance(minutes=1)
    assert loop.run_once() == 0  # due only two minutes after the second attempt
    clock.advance(minutes=1)
    verdicts.report = PASSED
    assert loop.run_once() == 1
    assert loop.run_once() == 0

    [event] = _verified(sessions)
    assert event.document_id == DOCUMENT_ID
    assert event.verified.indication == "TOTAL_PASSED"
    assert event.verified.sender_code == SENDER
    assert list(event.verified.recipient_codes) == [RECIPIENT]
    assert event.verified.subject == submitted.submitted.subject
    assert event.verified.edxml_document_id == submitted.submitted.edxml_document_id
    assert _holds(sessions) == 0
    with sessions() as session:
        stored = repository.get_report(session, document_id=DOCUMENT_ID)
    assert stored is not None and stored.report.indication is Indication.TOTAL_PASSED
    assert stored.verified_at == clock.now
    assert verdicts.calls == [DOCUMENT_ID, DOCUMENT_ID]


def test_revoked_signer_found_on_a_later_attempt_is_refused_as_revoked(
    sessions: sessionmaker[Session],
) -> None:
    clock = FakeClock()
    _hold(sessions, clock)
    clock.advance(minutes=1)

    assert _loop(sessions, clock, Verdicts(REVOKED)).run_once() == 1

    [event] = _verified(sessions)
    assert (event.verified.indication, event.verified.sub_indication) == ("TOTAL_FAILED", "REVOKED")
    assert _holds(sessions) == 0


def test_unconfirmed_past_the_deadline_is_refused_with_the_reason(sessions: sessionmaker[Session]) -> None:
    clock = FakeClock()
    _hold(sessions, clock)
    loop = _loop(sessions, clock, Verdicts(_try_later()))

    clock.advance(hours=23, minutes=59)
    assert loop.run_once() == 1
    assert _verified(sessions) == []  # a minute before the deadline: still held

    clock.advance(hours=1)
    assert loop.run_once() == 1
    [event] = _verified(sessions)
    assert (event.verified.indication, event.verified.sub_indication) == ("INDETERMINATE", "TRY_LATER")
    assert event.verified.reason == f"revocation status could not be confirmed for 24 h: {CRL}"
    assert _holds(sessions) == 0


def test_deadline_reason_names_each_silent_source_once_in_the_deadline_unit() -> None:
    report = _try_later()
    twice = Report(report.indication, report.sub_indication, report.reason, report.signatures * 2)
    refusal = deadline_refusal(twice, HoldPolicy(deadline_seconds=600))
    assert refusal.reason == f"revocation status could not be confirmed for 10 min: {CRL}"
    assert deadline_refusal(report, HoldPolicy(deadline_seconds=90)).reason.startswith(
        "revocation status could not be confirmed for 90 s: "
    )


def test_a_claimed_hold_is_not_taken_by_another_worker_until_its_lease_ends(
    sessions: sessionmaker[Session],
) -> None:
    clock = FakeClock()
    _hold(sessions, clock)
    clock.advance(minutes=1)
    first = _loop(sessions, clock, Verdicts(PASSED), lease=timedelta(minutes=5))
    second_verdicts = Verdicts(PASSED)
    second = _loop(sessions, clock, second_verdicts, lease=timedelta(minutes=5))

    [(document_id, lease_until)] = first._claim()  # first is verifying it (slowly)
    assert second.run_once() == 0

    clock.advance(minutes=5)  # the first worker is presumed dead: the lease has ended
    assert second.run_once() == 1
    first._attempt(document_id, lease_until)  # it finishes after all: its claim is gone

    assert len(_verified(sessions)) == 1
    assert second_verdicts.calls == [DOCUMENT_ID]


def test_failed_re_verification_keeps_the_hold_until_the_lease_ends(sessions: sessionmaker[Session]) -> None:
    clock = FakeClock()
    _hold(sessions, clock)
    clock.advance(minutes=1)

    def unreachable_docstore(_submitted: events_pb2.Event) -> Report:
        raise ConnectionError("docstore unreachable")

    loop = HeldDocuments(
        sessions=sessions,
        reverify=unreachable_docstore,
        emit=record_verification,
        policy=POLICY,
        clock=clock,
        lease=timedelta(minutes=5),
    )
    assert loop.run_once() == 1
    assert _holds(sessions) == 1 and _verified(sessions) == []
    assert loop.run_once() == 0

    clock.advance(minutes=5)
    assert _loop(sessions, clock, Verdicts(PASSED)).run_once() == 1
    assert len(_verified(sessions)) == 1


def test_get_hold_tells_why_a_document_is_still_verifying(
    sessions: sessionmaker[Session], stub: sigverify_pb2_grpc.SignatureVerifierStub
) -> None:
    with pytest.raises(grpc.RpcError) as absent:
        stub.GetHold(sigverify_pb2.GetReportRequest(document_id=DOCUMENT_ID))
    assert absent.value.code() is grpc.StatusCode.NOT_FOUND

    _hold(sessions, FakeClock())
    hold = stub.GetHold(sigverify_pb2.GetReportRequest(document_id=DOCUMENT_ID))

    assert hold.document_id == DOCUMENT_ID
    assert hold.attempts == 1
    assert "not fresh" in hold.reason
    assert hold.held_since.ToDatetime(tzinfo=UTC) == START
    assert hold.next_attempt_at.ToDatetime(tzinfo=UTC) == START + timedelta(minutes=1)
    assert hold.deadline.ToDatetime(tzinfo=UTC) == START + timedelta(hours=24)
    with pytest.raises(grpc.RpcError) as report:
        stub.GetReport(sigverify_pb2.GetReportRequest(document_id=DOCUMENT_ID))
    assert report.value.code() is grpc.StatusCode.NOT_FOUND
