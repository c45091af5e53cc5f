"""The DirectoryService servicer: protobuf in and out, one transaction per call, rules in domain."""

from __future__ import annotations

from datetime import date, timedelta

import grpc
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong_common.db import transaction
from lienthong_common.errors import invalid, not_found
from lienthong_common.grpcutil import translate_errors
from lienthong_directory import (
    connections,
    domain,
    groups,
    reorganize,
    repository,
    transfer,
    vdxp_systems,
)
from lienthong_directory.envelope import MasterKeyRing
from lienthong_directory.models import AgencyGroup, AgencyVersion
from lienthong_directory.resolution import ResolutionCache

SERVICE_NAME = "lienthong.directory.v1.DirectoryService"
RESOLUTION_CACHE_BYTES = 16 * 2**20


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
        valid_from=version.valid_from.isoformat(),
        valid_to=version.valid_to.isoformat() if version.valid_to else "",
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
    """Agencies, recipients' resolution, credentials, signing-certificate bindings, VDXP systems."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        connection_window_days: int = 30,
        master_keys: MasterKeyRing | None = None,
    ) -> None:
        self.sessions = sessions
        self.connection_window_days = connection_window_days
        # Encrypt VDXP systems' secrets (envelope.py); None: those calls answer FAILED_PRECONDITION.
        self.master_keys = master_keys
        # Read-only hot calls (a credential's version, a certificate binding, cached recipients)
        # are one statement each, run on a plain connection: no ORM session. On PostgreSQL in
        # autocommit (no BEGIN/ROLLBACK round trips around one indexed lookup); SQLite's driver
        # begins no transaction for a SELECT anyway, and switching its isolation level per
        # checkout costs more than it saves.
        engine = sessions.kw.get("bind")
        if not isinstance(engine, Engine):
            raise TypeError("the session factory must be bound to an Engine")
        self.reader = (
            engine
            if engine.dialect.name == "sqlite"
            else engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        # Serialized answers, up to 16 MiB (the 223-commune group is ~25 KB).
        self.resolutions: ResolutionCache[bytes] = ResolutionCache(
            _resolutions_wire, weigh=len, max_weight=RESOLUTION_CACHE_BYTES
        )

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
        day = domain.parse_day(request.effective_from, field="effective_from")
        with transaction(self.sessions) as session:
            outcome = domain.upsert_agency(
                session=session, record=agency_record(request.agency), effective_from=day
            )
            return agency_message(outcome.version)

    @translate_errors
    def ResolveRecipients(
        self, request: directory_pb2.ResolveRecipientsRequest, context: grpc.ServicerContext
    ) -> directory_pb2.ResolveRecipientsResponse:
        day = domain.parse_day(request.as_of)
        codes = list(request.codes)
        with self.reader.connect() as connection:
            parts = self.resolutions.lookup(reader=connection, codes=codes, day=day)
        if parts is None:
            with transaction(self.sessions) as session:
                parts = self.resolutions.resolve(session=session, codes=codes, day=day)
        # Each part is a serialized response holding one address's resolutions; a repeated
        # field's entries concatenate, so the parts joined are the whole response.
        return directory_pb2.ResolveRecipientsResponse.FromString(b"".join(parts))

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
                session=session,
                client_id=request.client_id,
                secret=request.secret,
                client_cert_fingerprint=request.client_cert_fingerprint,
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
        with self.reader.connect() as connection:
            active, version = domain.credential_version(
                session=connection, client_id=request.client_id
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
                valid_from=_optional_day(request.valid_from, "valid_from"),
                valid_to=_optional_day(request.valid_to, "valid_to"),
            )
        return directory_pb2.RegisterCertificateResponse(fingerprint=fingerprint)

    @translate_errors
    def CheckCertificate(
        self, request: directory_pb2.CheckCertificateRequest, context: grpc.ServicerContext
    ) -> directory_pb2.CheckCertificateResponse:
        at = domain.parse_moment(request.as_of)
        with self.reader.connect() as connection:
            check = domain.check_certificate(
                session=connection,
                agency_code=request.agency_code,
                fingerprint=request.fingerprint,
                at=at,
            )
        return directory_pb2.CheckCertificateResponse(
            bound=check.bound, owner_codes=check.owners, reason=check.reason
        )

    @translate_errors
    def ListCertificates(
        self, request: directory_pb2.ListCertificatesRequest, context: grpc.ServicerContext
    ) -> directory_pb2.ListCertificatesResponse:
        code = domain.normalize_code(request.agency_code)
        with transaction(self.sessions) as session:
            bindings = []
            for b in repository.certificates_of(session=session, agency_code=code):
                start, end = domain.binding_period(b)
                bindings.append(
                    directory_pb2.CertificateBinding(
                        agency_code=b.agency_code,
                        fingerprint=b.fingerprint,
                        subject=b.subject,
                        valid_from=start.isoformat(),
                        valid_to=end.isoformat(),
                    )
                )
        return directory_pb2.ListCertificatesResponse(certificates=bindings)

    @translate_errors
    def GetAgencyHistory(
        self, request: directory_pb2.GetAgencyRequest, context: grpc.ServicerContext
    ) -> directory_pb2.AgencyHistoryResponse:
        code = domain.normalize_code(request.code)
        with transaction(self.sessions) as session:
            versions = repository.history(session=session, code=code)
            if not versions:
                raise not_found(f"agency {code} is not in the directory")
            return directory_pb2.AgencyHistoryResponse(
                versions=[agency_message(v) for v in versions]
            )

    @translate_errors
    def Reorganize(
        self, request: directory_pb2.ReorganizeRequest, context: grpc.ServicerContext
    ) -> directory_pb2.ReorganizeResponse:
        if not request.changes:
            raise invalid("at least one change is required")
        changes = [
            (change_of(c), domain.parse_day(c.effective_from, field="effective_from"))
            for c in request.changes
        ]
        with transaction(self.sessions) as session:
            versions = reorganize.reorganize(session=session, changes=changes)
            return directory_pb2.ReorganizeResponse(changed=[agency_message(v) for v in versions])

    @translate_errors
    def DefineGroup(
        self, request: directory_pb2.Group, context: grpc.ServicerContext
    ) -> directory_pb2.Group:
        definition = groups.GroupDefinition(
            code=request.code,
            name=request.name,
            rule=request.rule or groups.MEMBERS,
            base_code=request.base_code,
            members=tuple(request.members),
        )
        with transaction(self.sessions) as session:
            return group_message(groups.define_group(session=session, definition=definition))

    @translate_errors
    def DeleteGroup(
        self, request: directory_pb2.DeleteGroupRequest, context: grpc.ServicerContext
    ) -> directory_pb2.Group:
        with transaction(self.sessions) as session:
            return group_message(groups.delete_group(session=session, code=request.code))

    @translate_errors
    def ListGroups(
        self, request: directory_pb2.ListGroupsRequest, context: grpc.ServicerContext
    ) -> directory_pb2.ListGroupsResponse:
        with transaction(self.sessions) as session:
            return directory_pb2.ListGroupsResponse(
                groups=[group_message(g) for g in repository.list_groups(session=session)]
            )

    @translate_errors
    def ExpandGroup(
        self, request: directory_pb2.ExpandGroupRequest, context: grpc.ServicerContext
    ) -> directory_pb2.ListAgenciesResponse:
        day = domain.parse_day(request.as_of)
        with transaction(self.sessions) as session:
            members = groups.expand(session=session, address=request.address, day=day)
            return directory_pb2.ListAgenciesResponse(agencies=[agency_message(v) for v in members])

    @translate_errors
    def RotateCredential(
        self, request: directory_pb2.RotateCredentialRequest, context: grpc.ServicerContext
    ) -> directory_pb2.RotateCredentialResponse:
        # Absent: the default overlap (a day); 0: the old secret and its tokens stop now.
        overlap = (
            timedelta(seconds=request.overlap_seconds) if request.HasField("overlap_seconds") else None
        )
        with transaction(self.sessions) as session:
            rotation = domain.rotate_credential(
                session=session,
                client_id=request.client_id,
                new_secret=request.new_secret,
                overlap=overlap,
            )
        until = rotation.previous_valid_until
        return directory_pb2.RotateCredentialResponse(
            version=rotation.version, previous_valid_until=until.isoformat() if until else ""
        )

    @translate_errors
    def BindClientCertificate(
        self, request: directory_pb2.BindClientCertificateRequest, context: grpc.ServicerContext
    ) -> directory_pb2.BindClientCertificateResponse:
        with transaction(self.sessions) as session:
            fingerprint, required = domain.bind_client_certificate(
                session=session,
                client_id=request.client_id,
                fingerprint=request.fingerprint,
                required=request.required,
            )
        return directory_pb2.BindClientCertificateResponse(
            fingerprint=fingerprint, required=required
        )

    @translate_errors
    def VerifyClientCertificate(
        self, request: directory_pb2.ClientCertificateRequest, context: grpc.ServicerContext
    ) -> directory_pb2.VerifyCredentialResponse:
        with transaction(self.sessions) as session:
            check = domain.verify_client_certificate(
                session=session, fingerprint=request.fingerprint
            )
        return directory_pb2.VerifyCredentialResponse(
            valid=check.valid,
            agency_code=check.agency_code,
            roles=list(check.roles),
            version=check.version,
        )

    @translate_errors
    def GetConnectionStatus(
        self, request: directory_pb2.ConnectionStatusRequest, context: grpc.ServicerContext
    ) -> directory_pb2.ConnectionStatusResponse:
        day = domain.parse_day(request.as_of)
        window = request.window_days or self.connection_window_days
        with transaction(self.sessions) as session:
            result = connections.status(
                session=session,
                codes=list(request.codes),
                province_code=request.province_code,
                tier=request.tier,
                day=day,
                window_days=window,
            )
        return directory_pb2.ConnectionStatusResponse(
            agencies=[
                directory_pb2.AgencyConnection(
                    code=c.code,
                    connected=c.connected,
                    active_credential=c.active_credential,
                    last_exchange_at=c.last_exchange_at.isoformat() if c.last_exchange_at else "",
                )
                for c in result
            ],
            window_days=window,
        )

    @translate_errors
    def ImportAgencies(
        self, request: directory_pb2.ImportAgenciesRequest, context: grpc.ServicerContext
    ) -> directory_pb2.ImportAgenciesResponse:
        default_day = domain.parse_day(request.effective_from, field="effective_from")
        try:
            with transaction(self.sessions) as session:
                report = transfer.import_content(
                    session=session,
                    fmt=request.format,
                    content=request.content,
                    default_day=default_day,
                )
                if request.dry_run or not report.applied:
                    raise _Discard(report)
        except _Discard as discarded:
            report = discarded.report
            report.applied = False
        return directory_pb2.ImportAgenciesResponse(
            applied=report.applied,
            created_or_changed=report.created_or_changed,
            unchanged=report.unchanged,
            reorganizations=report.reorganizations,
            groups=report.groups,
            rejected=[
                directory_pb2.RejectedRow(row=r.row, code=r.code, reason=r.reason)
                for r in report.rejected
            ],
        )

    @translate_errors
    def ExportAgencies(
        self, request: directory_pb2.ExportAgenciesRequest, context: grpc.ServicerContext
    ) -> directory_pb2.ExportAgenciesResponse:
        day = domain.parse_day(request.as_of)
        with transaction(self.sessions) as session:
            content, content_type = transfer.export_content(
                session=session,
                fmt=request.format,
                day=day,
                province_code=request.province_code,
                history=request.history,
            )
        return directory_pb2.ExportAgenciesResponse(content=content, content_type=content_type)

    @translate_errors
    def AddVdxpSystem(
        self, request: directory_pb2.AddVdxpSystemRequest, context: grpc.ServicerContext
    ) -> directory_pb2.VdxpSystemSecret:
        with transaction(self.sessions) as session:
            issued = vdxp_systems.add_system(
                session=session,
                keys=self.master_keys,
                system_id=request.system_id,
                agency_codes=list(request.agency_codes),
                admin=request.admin,
                secret=request.secret,
            )
        return vdxp_secret_message(issued)

    @translate_errors
    def ListVdxpSystems(
        self, request: directory_pb2.ListVdxpSystemsRequest, context: grpc.ServicerContext
    ) -> directory_pb2.ListVdxpSystemsResponse:
        with transaction(self.sessions) as session:
            systems = vdxp_systems.list_systems(session=session, agency_code=request.agency_code)
        return directory_pb2.ListVdxpSystemsResponse(systems=[vdxp_system_message(s) for s in systems])

    @translate_errors
    def UpdateVdxpSystem(
        self, request: directory_pb2.UpdateVdxpSystemRequest, context: grpc.ServicerContext
    ) -> directory_pb2.VdxpSystem:
        with transaction(self.sessions) as session:
            system = vdxp_systems.update_system(
                session=session,
                system_id=request.system_id,
                agency_codes=list(request.agency_codes),
                admin=request.admin,
            )
        return vdxp_system_message(system)

    @translate_errors
    def RotateVdxpSecret(
        self, request: directory_pb2.RotateVdxpSecretRequest, context: grpc.ServicerContext
    ) -> directory_pb2.VdxpSystemSecret:
        overlap = request.overlap_seconds if request.HasField("overlap_seconds") else None
        with transaction(self.sessions) as session:
            issued = vdxp_systems.rotate_secret(
                session=session,
                keys=self.master_keys,
                system_id=request.system_id,
                new_secret=request.new_secret,
                overlap_seconds=overlap,
            )
        return vdxp_secret_message(issued)

    @translate_errors
    def RemoveVdxpSystem(
        self, request: directory_pb2.VdxpSystemRequest, context: grpc.ServicerContext
    ) -> directory_pb2.VdxpSystem:
        with transaction(self.sessions) as session:
            system = vdxp_systems.remove_system(session=session, system_id=request.system_id)
        return vdxp_system_message(system)

    @translate_errors
    def VerifyVdxpSignature(
        self, request: directory_pb2.VerifyVdxpSignatureRequest, context: grpc.ServicerContext
    ) -> directory_pb2.VerifyVdxpSignatureResponse:
        with transaction(self.sessions) as session:
            check = vdxp_systems.verify_signature(
                session=session,
                keys=self.master_keys,
                system_id=request.system_id,
                signed=request.signed,
                signature=request.signature,
            )
        if not check.valid or check.system is None:
            return directory_pb2.VerifyVdxpSignatureResponse(valid=False, reason=check.reason)
        return directory_pb2.VerifyVdxpSignatureResponse(
            valid=True, system=vdxp_system_message(check.system)
        )


class _Discard(Exception):
    """Rolls an import's transaction back (a dry run, or rows were rejected)."""

    def __init__(self, report: transfer.ImportReport) -> None:
        super().__init__("import discarded")
        self.report = report


def _optional_day(text: str, field: str) -> date | None:
    return domain.parse_day(text, field=field) if text.strip() else None


def _resolutions_wire(resolutions: tuple[domain.Resolution, ...]) -> bytes:
    """One address's resolutions as a serialized ResolveRecipientsResponse."""
    return directory_pb2.ResolveRecipientsResponse(
        resolutions=[
            directory_pb2.Resolution(
                requested_code=r.requested_code,
                resolved_code=r.resolved_code,
                found=r.found,
                reason=r.reason,
                group_code=r.group_code,
            )
            for r in resolutions
        ]
    ).SerializeToString()


def group_message(group: AgencyGroup) -> directory_pb2.Group:
    return directory_pb2.Group(
        code=group.code,
        name=group.name,
        rule=group.rule,
        base_code=group.base_code,
        members=group.members.split(),
    )


def change_of(message: directory_pb2.Reorganization) -> reorganize.Change:
    """The domain change a Reorganization message describes."""
    kind = message.WhichOneof("change")
    if kind == "rename":
        return reorganize.Rename(message.rename.code, message.rename.name)
    if kind == "recode":
        return reorganize.Recode(message.recode.code, message.recode.new_code)
    if kind == "merge":
        into = agency_record(message.merge.into)
        return reorganize.Merge(list(message.merge.source_codes), into)
    if kind == "split":
        return reorganize.Split(
            message.split.source_code,
            [agency_record(a) for a in message.split.into],
            message.split.successor_code,
        )
    if kind == "dissolve":
        return reorganize.Dissolve(message.dissolve.code, message.dissolve.successor_code)
    raise invalid("a reorganization needs one of rename, recode, merge, split, dissolve")


def vdxp_system_message(view: vdxp_systems.SystemView) -> directory_pb2.VdxpSystem:
    until = view.previous_valid_until
    return directory_pb2.VdxpSystem(
        system_id=view.system_id,
        agency_codes=list(view.agency_codes),
        admin=view.admin,
        created_at=view.created_at.isoformat(),
        active_secrets=view.active_secrets,
        previous_valid_until=until.isoformat() if until else "",
    )


def vdxp_secret_message(issued: vdxp_systems.IssuedSecret) -> directory_pb2.VdxpSystemSecret:
    return directory_pb2.VdxpSystemSecret(
        system=vdxp_system_message(issued.system), secret=issued.secret
    )
