"""SignatureVerifier.GetReport over a real gRPC server on a free port."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from sqlalchemy.orm import Session, sessionmaker

from lienthong.sigverify.v1 import sigverify_pb2, sigverify_pb2_grpc
from lienthong_common.db import transaction
from lienthong_common.pades import Indication
from lienthong_sigverify import repository
from lienthong_sigverify.domain import Report, SignatureCheck

DOCUMENT_ID = "0d6f1d8e-8a43-4c77-9a55-2c1b1f0f4e21"


def test_report_not_found_before_verification(
    stub: sigverify_pb2_grpc.SignatureVerifierStub,
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetReport(sigverify_pb2.GetReportRequest(document_id=DOCUMENT_ID), timeout=5)
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == f"no verification report for document {DOCUMENT_ID} yet"


def test_missing_document_id_is_invalid(stub: sigverify_pb2_grpc.SignatureVerifierStub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetReport(sigverify_pb2.GetReportRequest(), timeout=5)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_report_after_verification(
    stub: sigverify_pb2_grpc.SignatureVerifierStub, sessions: sessionmaker[Session]
) -> None:
    verified_at = datetime(2025, 7, 1, 1, 2, 3, tzinfo=UTC)
    signed_at = datetime(2025, 7, 1, 1, 0, 0, tzinfo=UTC)
    report = Report(
        indication=Indication.TOTAL_FAILED,
        sub_indication="HASH_FAILURE",
        reason="attachment 'cong-van.pdf', signature 'Signature1': digest mismatch",
        signatures=(
            SignatureCheck(
                attachment_name="cong-van.pdf",
                field_name="Signature1",
                indication=Indication.TOTAL_FAILED,
                sub_indication="HASH_FAILURE",
                message="digest mismatch",
                signer_subject="CN=Nguyễn Văn A,OU=000.00.00.H49",
                signer_agency_code="000.00.00.H49",
                signer_fingerprint="ab" * 32,
                signing_time=signed_at,
                chain=("CN=Nguyễn Văn A", "CN=issuing", "CN=root"),
            ),
        ),
    )
    with transaction(sessions) as session:
        repository.save_report(session, document_id=DOCUMENT_ID, report=report, verified_at=verified_at)

    reply = stub.GetReport(sigverify_pb2.GetReportRequest(document_id=DOCUMENT_ID), timeout=5)

    assert reply.document_id == DOCUMENT_ID
    assert (reply.indication, reply.sub_indication) == ("TOTAL_FAILED", "HASH_FAILURE")
    assert reply.reason == report.reason
    assert reply.verified_at.ToDatetime(tzinfo=UTC) == verified_at
    [signature] = reply.signatures
    assert signature.signer_subject == "CN=Nguyễn Văn A,OU=000.00.00.H49"
    assert signature.signing_time.ToDatetime(tzinfo=UTC) == signed_at
    assert list(signature.chain) == ["CN=Nguyễn Văn A", "CN=issuing", "CN=root"]
