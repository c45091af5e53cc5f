"""The DocumentSubmitted handler: report and DocumentVerified event in one transaction, once."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from sigverify_factories import RECIPIENT, SENDER, FakeBindings, make_package, pdf_attachment
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lienthong.events.v1 import events_pb2
from lienthong_common.kafka import EventConsumer
from lienthong_common.outbox import TOPIC_SUBMITTED, TOPIC_VERIFIED, new_event
from lienthong_common.pades import PdfVerifier
from lienthong_common.settings import KafkaSettings
from lienthong_sigverify import repository
from lienthong_sigverify.events import VERDICT_ATTRIBUTE, on_document_submitted
from lienthong_sigverify.models import OUTBOX

DOCUMENT_ID = "5f0c7a52-3f7e-4f8e-9a51-0f3c2d1b6a11"


class FakeDocstore:
    """Docstore's GetPackage, in memory, counting calls."""

    def __init__(self, packages: dict[str, bytes]) -> None:
        self.packages = packages
        self.fetched: list[str] = []

    def __call__(self, document_id: str) -> bytes:
        self.fetched.append(document_id)
        return self.packages[document_id]


def _submitted(document_id: str = DOCUMENT_ID) -> events_pb2.Event:
    event = new_event(document_id)
    event.submitted.CopyFrom(
        events_pb2.DocumentSubmitted(
            sender_code=SENDER,
            recipient_codes=[RECIPIENT, "000.00.00.G09"],
            edxml_document_id="000.00.00.H49,2025/07/01,12/UBND-VP",
            subject="Báo cáo tình hình trao đổi văn bản điện tử",
            business_doc_type=2,
            referenced_document_id="000.00.00.H49,2025/06/01,10/UBND-VP",
        )
    )
    return event


def _consumer(sessions: sessionmaker[Session], handler: object) -> EventConsumer:
    return EventConsumer(
        service="sigverify",
        group="lienthong-sigverify",
        topics=[TOPIC_SUBMITTED],
        settings=KafkaSettings(),
        sessions=sessions,
        outbox=OUTBOX,
        handler=handler,  # type: ignore[arg-type]
    )


def _outbox(sessions: sessionmaker[Session]) -> list[tuple[int, str, str, bytes, str]]:
    with sessions() as session:
        return OUTBOX.fetch_batch(session, 100)


def _processed(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.execute(select(func.count()).select_from(OUTBOX.processed)).scalar_one())


@pytest.fixture
def docstore(signed_pdf: bytes) -> FakeDocstore:
    return FakeDocstore({DOCUMENT_ID: make_package([pdf_attachment(signed_pdf)])})


def test_handler_stores_report_and_queues_verified_event(
    sessions: sessionmaker[Session],
    docstore: FakeDocstore,
    verifier: PdfVerifier,
    bindings: FakeBindings,
) -> None:
    handler = on_document_submitted(fetch_package=docstore, verifier=verifier, binding_check=bindings)
    submitted = _submitted()

    assert _consumer(sessions, handler).handle(TOPIC_SUBMITTED, submitted.SerializeToString(), None)

    with sessions() as session:
        stored = repository.get_report(session, document_id=DOCUMENT_ID)
    assert stored is not None
    assert stored.report.indication == "TOTAL_PASSED"
    assert stored.verified_at.tzinfo is not None
    [(_, topic, key, payload, _)] = _outbox(sessions)
    assert (topic, key) == (TOPIC_VERIFIED, DOCUMENT_ID)
    event = events_pb2.Event.FromString(payload)
    assert event.document_id == DOCUMENT_ID
    assert event.WhichOneof("payload") == "verified"
    verified = event.verified
    source = submitted.submitted
    assert verified.sender_code == source.sender_code
    assert list(verified.recipient_codes) == list(source.recipient_codes)
    assert verified.edxml_document_id == source.edxml_document_id
    assert verified.subject == source.subject
    assert verified.business_doc_type == 2
    assert verified.referenced_document_id == source.referenced_document_id
    assert verified.indication == "TOTAL_PASSED"
    assert verified.reason == stored.report.reason
    [signature] = verified.signatures
    assert signature.attachment_name == "cong-van.pdf"
    assert signature.signer_agency_code == SENDER
    assert signature.indication == "TOTAL_PASSED"
    assert signature.signing_time.seconds > 0
    assert len(signature.chain) == 3


def test_replayed_event_is_a_no_op(
    sessions: sessionmaker[Session],
    docstore: FakeDocstore,
    verifier: PdfVerifier,
    bindings: FakeBindings,
) -> None:
    consumer = _consumer(
        sessions,
        on_document_submitted(fetch_package=docstore, verifier=verifier, binding_check=bindings),
    )
    value = _submitted().SerializeToString()

    assert consumer.handle(TOPIC_SUBMITTED, value, None) is True
    assert consumer.handle(TOPIC_SUBMITTED, value, None) is False

    assert docstore.fetched == [DOCUMENT_ID]
    assert len(_outbox(sessions)) == 1


def test_second_event_for_a_verified_document_changes_nothing(
    sessions: sessionmaker[Session],
    docstore: FakeDocstore,
    verifier: PdfVerifier,
    bindings: FakeBindings,
) -> None:
    consumer = _consumer(
        sessions,
        on_document_submitted(fetch_package=docstore, verifier=verifier, binding_check=bindings),
    )
    assert consumer.handle(TOPIC_SUBMITTED, _submitted().SerializeToString(), None)
    assert consumer.handle(TOPIC_SUBMITTED, _submitted().SerializeToString(), None)

    assert docstore.fetched == [DOCUMENT_ID]
    assert len(_outbox(sessions)) == 1


def test_failure_leaves_nothing_behind_so_the_event_is_retried(
    sessions: sessionmaker[Session], verifier: PdfVerifier, bindings: FakeBindings
) -> None:
    def unavailable(document_id: str) -> bytes:
        raise ConnectionError(f"docstore unreachable for {document_id}")

    consumer = _consumer(
        sessions,
        on_document_submitted(fetch_package=unavailable, verifier=verifier, binding_check=bindings),
    )
    with pytest.raises(ConnectionError):
        consumer.handle(TOPIC_SUBMITTED, _submitted().SerializeToString(), None)

    with sessions() as session:
        assert repository.get_report(session, document_id=DOCUMENT_ID) is None
    assert _outbox(sessions) == []
    assert _processed(sessions) == 0


def test_other_payloads_are_ignored(
    sessions: sessionmaker[Session],
    docstore: FakeDocstore,
    verifier: PdfVerifier,
    bindings: FakeBindings,
) -> None:
    event = new_event(DOCUMENT_ID)
    event.refused.CopyFrom(events_pb2.DocumentRefused(sender_code=SENDER))
    handler = on_document_submitted(fetch_package=docstore, verifier=verifier, binding_check=bindings)
    with sessions.begin() as session:
        handler(session, event)
    assert docstore.fetched == []
    assert _outbox(sessions) == []


def test_verdict_is_a_span_attribute(
    sessions: sessionmaker[Session], verifier: PdfVerifier, signed_pdf: bytes
) -> None:
    docstore = FakeDocstore({DOCUMENT_ID: make_package([pdf_attachment(signed_pdf)])})
    handler = on_document_submitted(fetch_package=docstore, verifier=verifier, binding_check=FakeBindings())
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("lienthong.documents.submitted process") as span:
        with sessions.begin() as session:
            handler(session, _submitted())
    assert span.attributes is not None
    assert span.attributes[VERDICT_ATTRIBUTE] == "TOTAL_FAILED"
