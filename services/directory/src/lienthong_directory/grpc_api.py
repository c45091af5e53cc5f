"""The DirectoryService servicer: protobuf in and out, one transaction per call, rules in domain."""

from __future__ import annotations

import grpc
from sqlalchemy.orm import Session, sessionmaker

from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong_common.db import transaction
from lienthong_common.grpcutil import invalid, translate_errors
from lienthong_directory import domain
from lienthong_directory.models import AgencyVersion

SERVICE_NAME = "lienthong.directory.v1.DirectoryService"


def agency_message(version: AgencyVersion) -> directory_pb2.Agency:
    return directory_pb2.Agency(
        code=version.code,
        name=version.name,
        tier=version.tier,
        parent_code=version.parent_code,
        province_code=version.province_code,
        kind=version.kind,
        status=version.status,
        email=version.email,
        telephone=version.telephone,
        address=version.address,
        website=version.website,
        illustrative=version.illustrative,
        successor_code=version.successor_code,
    )


def agency_record(message: directory_pb2.Agency) -> domain.AgencyRecord:
    return domain.AgencyRecord(
        code=message.code,
        name=message.name,
        tier=message.tier,
        kind=message.kind,
        status=message.status,
        successor_code=message.successor_code,
        email=message.email,
        telephone=message.telephone,
        address=message.address,
        website=message.website,
        illustrative=message.illustrative,
        parent_code=message.parent_code,
        province_code=message.province_code,
    )


class DirectoryServicer(directory_pb2_grpc.DirectoryServiceServicer):
    """Agencies, recipients' resolution, credentials and signing-certificate bindings."""

    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    @translate_errors
    def GetAgency(
        self, request: directory_pb2.GetAgencyRequest, context: grpc.ServicerContext
    ) -> directory_pb2.Agency:
        day = domain.parse_day(request.as_of)
        with transaction(self.sessions) as session:
            return agency_message(domain.get_agency(session=session, code=request.code, day=day))

    @translate_errors
    def ListAgencies(
        self, request: directory_pb2.ListAgenciesRequest, context: grpc.ServicerContext
    ) -> directory_pb2.ListAgenciesResponse:
        day = domain.parse_day(request.as_of)
        with transaction(self.sessions) as session:
            versions = domain.list_agencies(
                session=session, day=day, province_code=request.province_code, tier=request.tier
            )
            agencies = [agency_message(v) for v in versions]
        return directory_pb2.ListAgenciesResponse(agencies=agencies)

    @translate_errors
    def UpsertAgency(
        self, request: directory_pb2.UpsertAgencyRequest, context: grpc.ServicerContext
    ) -> directory_pb2.Agency:
        if not request.HasField("agency"):
            raise invalid("agency is required")
        # The request has no effective date: a change takes effect today (see domain).
        with transaction(self.sessions) as session:
            outcome = domain.upsert_agency(session=session, record=agency_record(request.agency))
            return agency_message(outcome.version)

    @translate_errors
    def ResolveRecipients(
        self, request: directory_pb2.ResolveRecipientsRequest, context: grpc.ServicerContext
    ) -> directory_pb2.ResolveRecipientsResponse:
        day = domain.parse_day(request.as_of)
        with transaction(self.sessions) as session:
            resolutions = domain.resolve_recipients(
                session=session, codes=list(request.codes), day=day
            )
        return directory_pb2.ResolveRecipientsResponse(
            resolutions=[
                directory_pb2.Resolution(
                    requested_code=r.requested_code,
                    resolved_code=r.resolved_code,
                    found=r.found,
                    reason=r.reason,
                )
                for r in resolutions
            ]
        )

    @translate_errors
    def SetCredential(
        self, request: directory_pb2.SetCredentialRequest, context: grpc.ServicerContext
    ) -> directory_pb2.SetCredentialResponse:
        with transaction(self.sessions) as session:
            version = domain.set_credential(
                session=session,
                client_id=request.client_id,
                secret=request.secret,
                roles=list(request.roles),
            )
        return directory_pb2.SetCredentialResponse(version=version)

    @translate_errors
    def VerifyCredential(
        self, request: directory_pb2.VerifyCredentialRequest, context: grpc.ServicerContext
    ) -> directory_pb2.VerifyCredentialResponse:
        with transaction(self.sessions) as session:
            check = domain.verify_credential(
                session=session, client_id=request.client_id, secret=request.secret
            )
        return directory_pb2.VerifyCredentialResponse(
            valid=check.valid,
            agency_code=check.agency_code,
            roles=list(check.roles),
            version=check.version,
        )

    @translate_errors
    def GetCredentialVersion(
        self, request: directory_pb2.CredentialVersionRequest, context: grpc.ServicerContext
    ) -> directory_pb2.CredentialVersionResponse:
        with transaction(self.sessions) as session:
            active, version = domain.credential_version(
                session=session, client_id=request.client_id
            )
        return directory_pb2.CredentialVersionResponse(active=active, version=version)

    @translate_errors
    def RegisterCertificate(
        self, request: directory_pb2.RegisterCertificateRequest, context: grpc.ServicerContext
    ) -> directory_pb2.RegisterCertificateResponse:
        with transaction(self.sessions) as session:
            fingerprint = domain.register_certificate(
                session=session,
                agency_code=request.agency_code,
                certificate=request.certificate_der,
            )
        return directory_pb2.RegisterCertificateResponse(fingerprint=fingerprint)

    @translate_errors
    def CheckCertificate(
        self, request: directory_pb2.CheckCertificateRequest, context: grpc.ServicerContext
    ) -> directory_pb2.CheckCertificateResponse:
        with transaction(self.sessions) as session:
            bound, owners = domain.check_certificate(
                session=session, agency_code=request.agency_code, fingerprint=request.fingerprint
            )
        return directory_pb2.CheckCertificateResponse(bound=bound, owner_codes=owners)
