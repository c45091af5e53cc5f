"""lienthong.sigverify.v1.SignatureVerifier: thin translation to and from the domain."""

from __future__ import annotations

import grpc
from sqlalchemy.orm import Session, sessionmaker

from lienthong.sigverify.v1 import sigverify_pb2, sigverify_pb2_grpc
from lienthong_common.db import transaction
from lienthong_common.grpcutil import invalid, not_found, translate_errors
from lienthong_common.outbox import timestamp
from lienthong_sigverify import held, repository
from lienthong_sigverify.events import signature_result
from lienthong_sigverify.repository import TrustAnchor, UnknownAnchor
from lienthong_sigverify.trust import InvalidAnchor, TrustStore

SERVICE_NAME = sigverify_pb2.DESCRIPTOR.services_by_name["SignatureVerifier"].full_name


class SignatureVerifierServicer(sigverify_pb2_grpc.SignatureVerifierServicer):
    """Serves the verification reports sigverify has stored, and the trust store."""

    def __init__(
        self, *, sessions: sessionmaker[Session], trust: TrustStore, hold_policy: held.HoldPolicy
    ) -> None:
        self._sessions = sessions
        self._trust = trust
        self._hold_policy = hold_policy

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
            evidence=[
                sigverify_pb2.SignatureEvidence(
                    attachment_name=check.attachment_name,
                    field_name=check.field_name,
                    signer_fingerprint=check.signer_fingerprint,
                    revocation=list(check.revocation),
                )
                for check in report.signatures
            ],
            policy=report.policy,
            trust_store_version=report.trust_store_version,
        )
        reply.verified_at.CopyFrom(timestamp(stored.verified_at))
        return reply

    @translate_errors
    def GetHold(
        self, request: sigverify_pb2.GetReportRequest, context: grpc.ServicerContext
    ) -> sigverify_pb2.VerificationHold:
        if not request.document_id:
            raise invalid("document_id is required")
        with transaction(self._sessions) as session:
            found = held.get_hold(session, document_id=request.document_id, policy=self._hold_policy)
        if found is None:
            raise not_found(f"document {request.document_id} is not held")
        reply = sigverify_pb2.VerificationHold(
            document_id=found.document_id, reason=found.reason, attempts=found.attempts
        )
        reply.held_since.CopyFrom(timestamp(found.first_seen))
        reply.next_attempt_at.CopyFrom(timestamp(found.next_attempt_at))
        reply.deadline.CopyFrom(timestamp(found.deadline))
        return reply

    @translate_errors
    def AddTrustAnchor(
        self, request: sigverify_pb2.AddTrustAnchorRequest, context: grpc.ServicerContext
    ) -> sigverify_pb2.AddTrustAnchorResponse:
        if not request.certificate_pem.strip():
            raise invalid("certificate_pem is required")
        try:
            anchor, created, version = self._trust.add(
                request.certificate_pem, added_by=request.added_by or "unknown", note=request.note
            )
        except InvalidAnchor as error:
            raise invalid(f"cannot trust this certificate: {error}") from error
        return sigverify_pb2.AddTrustAnchorResponse(anchor=_anchor(anchor), created=created, version=version)

    @translate_errors
    def ListTrustAnchors(
        self, request: sigverify_pb2.ListTrustAnchorsRequest, context: grpc.ServicerContext
    ) -> sigverify_pb2.ListTrustAnchorsResponse:
        self._trust.seed_from_settings()
        anchors, version = self._trust.anchors(include_removed=request.include_removed)
        return sigverify_pb2.ListTrustAnchorsResponse(anchors=[_anchor(a) for a in anchors], version=version)

    @translate_errors
    def RemoveTrustAnchor(
        self, request: sigverify_pb2.RemoveTrustAnchorRequest, context: grpc.ServicerContext
    ) -> sigverify_pb2.RemoveTrustAnchorResponse:
        fingerprint = request.fingerprint.strip().lower().replace(":", "")
        if len(fingerprint) < 8 or any(c not in "0123456789abcdef" for c in fingerprint):
            raise invalid("fingerprint must be SHA-256 hex (at least its first 8 digits)")
        try:
            anchor, version = self._trust.remove(fingerprint, removed_by=request.removed_by or "unknown")
        except UnknownAnchor as error:
            raise not_found(str(error)) from error
        return sigverify_pb2.RemoveTrustAnchorResponse(anchor=_anchor(anchor), version=version)


def _anchor(anchor: TrustAnchor) -> sigverify_pb2.TrustAnchor:
    message = sigverify_pb2.TrustAnchor(
        fingerprint=anchor.fingerprint,
        subject=anchor.subject,
        certificate_pem=anchor.certificate_pem,
        self_signed=anchor.self_signed,
        added_by=anchor.added_by,
        note=anchor.note,
        removed_by=anchor.removed_by,
        version_added=anchor.version_added,
    )
    message.not_before.CopyFrom(timestamp(anchor.not_before))
    message.not_after.CopyFrom(timestamp(anchor.not_after))
    message.added_at.CopyFrom(timestamp(anchor.added_at))
    if anchor.removed_at is not None:
        message.removed_at.CopyFrom(timestamp(anchor.removed_at))
    return message


def register(
    server: grpc.Server,
    *,
    sessions: sessionmaker[Session],
    trust: TrustStore,
    hold_policy: held.HoldPolicy | None = None,
) -> list[str]:
    """Add the servicer to `server`; returns the full service names it serves."""
    sigverify_pb2_grpc.add_SignatureVerifierServicer_to_server(
        SignatureVerifierServicer(
            sessions=sessions, trust=trust, hold_policy=hold_policy or held.HoldPolicy()
        ),
        server,
    )
    return [SERVICE_NAME]
