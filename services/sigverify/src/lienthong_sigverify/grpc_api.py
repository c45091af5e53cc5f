"""lienthong.sigverify.v1.SignatureVerifier: thin translation to and from the repository."""

from __future__ import annotations

import grpc
from sqlalchemy.orm import Session, sessionmaker

from lienthong.sigverify.v1 import sigverify_pb2, sigverify_pb2_grpc
from lienthong_common.db import transaction
from lienthong_common.grpcutil import invalid, not_found, translate_errors
from lienthong_common.outbox import timestamp
from lienthong_sigverify import repository
from lienthong_sigverify.events import signature_result

SERVICE_NAME = sigverify_pb2.DESCRIPTOR.services_by_name["SignatureVerifier"].full_name


class SignatureVerifierServicer(sigverify_pb2_grpc.SignatureVerifierServicer):
    """Serves the verification reports sigverify has stored."""

    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    @translate_errors
    def GetReport(
        self, request: sigverify_pb2.GetReportRequest, context: grpc.ServicerContext
    ) -> sigverify_pb2.VerificationReport:
        if not request.document_id:
            raise invalid("document_id is required")
        with transaction(self._sessions) as session:
            stored = repository.get_report(session, document_id=request.document_id)
        if stored is None:
            raise not_found(f"no verification report for document {request.document_id} yet")
        report = stored.report
        reply = sigverify_pb2.VerificationReport(
            document_id=stored.document_id,
            indication=report.indication.value,
            sub_indication=report.sub_indication,
            reason=report.reason,
            signatures=[signature_result(check) for check in report.signatures],
        )
        reply.verified_at.CopyFrom(timestamp(stored.verified_at))
        return reply


def register(server: grpc.Server, *, sessions: sessionmaker[Session]) -> list[str]:
    """Add the servicer to `server`; returns the full service names it serves."""
    sigverify_pb2_grpc.add_SignatureVerifierServicer_to_server(
        SignatureVerifierServicer(sessions=sessions), server
    )
    return [SERVICE_NAME]
