"""In-process fakes of the five platform services, answering the gateway's calls at once.

They implement the stubs' methods the gateway calls, with just enough behaviour for the
authorisation matrix, the VDXP facade and the overhead benchmark; anything else raises
UNIMPLEMENTED like a real server would.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from lienthong.directory.v1 import directory_pb2
from lienthong.docstore.v1 import docstore_pb2
from lienthong.routing.v1 import routing_pb2
from lienthong.statistics.v1 import statistics_pb2
from lienthong_common import edxml
from lienthong_common.settings import ServiceAddresses, Settings
from lienthong_gateway.clients import PlatformClients

PROVINCE = "000.00.00.H49"
DEPARTMENT = "000.00.02.H49"
COMMUNE = "000.01.03.H49"
OUTSIDER = "000.00.00.G22"
ADMIN = "admin"
AGENCIES = (PROVINCE, DEPARTMENT, COMMUNE, OUTSIDER)


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def secret_of(client_id: str) -> str:
    return f"secret-of-{client_id}"


class Unimplemented:
    def __getattr__(self, name: str) -> Any:
        def call(*_a: Any, **_k: Any) -> Any:
            raise FakeRpcError(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not implemented")

        return call


class FakeDirectory(Unimplemented):
    def __init__(self) -> None:
        self.versions = {c: 1 for c in (*AGENCIES, ADMIN)}
        self.agencies = {c: directory_pb2.Agency(code=c, name=f"Cơ quan {c}", tier=2) for c in AGENCIES}
        self.client_certs: dict[str, str] = {}
        # VDXP systems: one per agency (system id = code, secret = secret_of(code)); admin's admin.
        self.vdxp_systems = {
            c: directory_pb2.VdxpSystem(
                system_id=c, agency_codes=[c] if c in AGENCIES else [], admin=c == ADMIN, active_secrets=1
            )
            for c in (*AGENCIES, ADMIN)
        }
        self.vdxp_secrets = {c: [secret_of(c)] for c in self.vdxp_systems}

    def VerifyCredential(self, request: Any, timeout: float = 0) -> Any:
        valid = request.client_id in self.versions and request.secret == secret_of(request.client_id)
        roles = ["admin"] if request.client_id == ADMIN else ["agency"]
        return directory_pb2.VerifyCredentialResponse(
            valid=valid,
            agency_code=request.client_id,
            roles=roles,
            version=self.versions.get(request.client_id, 0),
        )

    def GetCredentialVersion(self, request: Any, timeout: float = 0) -> Any:
        if request.client_id not in self.versions:
            raise FakeRpcError(grpc.StatusCode.NOT_FOUND, "no credential")
        return directory_pb2.CredentialVersionResponse(active=True, version=self.versions[request.client_id])

    def VerifyClientCertificate(self, request: Any, timeout: float = 0) -> Any:
        owner = self.client_certs.get(request.fingerprint)
        return directory_pb2.VerifyCredentialResponse(valid=owner is not None, agency_code=owner or "")

    def ResolveRecipients(self, request: Any, timeout: float = 0) -> Any:
        return directory_pb2.ResolveRecipientsResponse(
            resolutions=[
                directory_pb2.Resolution(requested_code=c, resolved_code=c, found=c in self.agencies)
                for c in request.codes
            ]
        )

    def ListAgencies(self, request: Any, timeout: float = 0) -> Any:
        return directory_pb2.ListAgenciesResponse(agencies=list(self.agencies.values()))

    def GetAgency(self, request: Any, timeout: float = 0) -> Any:
        if request.code not in self.agencies:
            raise FakeRpcError(grpc.StatusCode.NOT_FOUND, f"agency {request.code} is not in the directory")
        return self.agencies[request.code]

    def UpsertAgency(self, request: Any, timeout: float = 0) -> Any:
        self.agencies[request.agency.code] = request.agency
        return request.agency

    # -- VDXP systems: in memory, the real directory's rules where the gateway relies on them.
    def _vdxp_system(self, system_id: str) -> Any:
        if system_id not in self.vdxp_systems:
            raise FakeRpcError(grpc.StatusCode.NOT_FOUND, f"VDXP system {system_id} is not in the directory")
        return self.vdxp_systems[system_id]

    def _vdxp_agencies(self, codes: Any) -> list[str]:
        for code in codes:
            if code not in self.agencies:
                raise FakeRpcError(grpc.StatusCode.NOT_FOUND, f"agency {code} is not in the directory")
        if not codes:
            raise FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "name at least one agency")
        return sorted(set(codes))

    def AddVdxpSystem(self, request: Any, timeout: float = 0) -> Any:
        if request.system_id in self.vdxp_systems:
            raise FakeRpcError(
                grpc.StatusCode.ALREADY_EXISTS, f"VDXP system {request.system_id} already exists"
            )
        system = directory_pb2.VdxpSystem(
            system_id=request.system_id,
            agency_codes=self._vdxp_agencies(request.agency_codes),
            admin=request.admin,
            created_at=dt.datetime.now(dt.UTC).isoformat(),
            active_secrets=1,
        )
        secret = request.secret or f"generated-{request.system_id}-" + "x" * 32
        self.vdxp_systems[request.system_id] = system
        self.vdxp_secrets[request.system_id] = [secret]
        return directory_pb2.VdxpSystemSecret(system=system, secret=secret)

    def ListVdxpSystems(self, request: Any, timeout: float = 0) -> Any:
        systems = [
            s
            for _, s in sorted(self.vdxp_systems.items())
            if not request.agency_code or request.agency_code in s.agency_codes
        ]
        return directory_pb2.ListVdxpSystemsResponse(systems=systems)

    def UpdateVdxpSystem(self, request: Any, timeout: float = 0) -> Any:
        system = self._vdxp_system(request.system_id)
        del system.agency_codes[:]
        system.agency_codes.extend(self._vdxp_agencies(request.agency_codes))
        system.admin = request.admin
        return system

    def RotateVdxpSecret(self, request: Any, timeout: float = 0) -> Any:
        system = self._vdxp_system(request.system_id)
        overlap = request.overlap_seconds if request.HasField("overlap_seconds") else 86400
        secret = request.new_secret or f"rotated-{request.system_id}-" + "y" * 32
        previous = self.vdxp_secrets[request.system_id][-1:] if overlap else []
        self.vdxp_secrets[request.system_id] = [*previous, secret]
        system.active_secrets = len(self.vdxp_secrets[request.system_id])
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=overlap)
        system.previous_valid_until = until.isoformat() if overlap else ""
        return directory_pb2.VdxpSystemSecret(system=system, secret=secret)

    def RemoveVdxpSystem(self, request: Any, timeout: float = 0) -> Any:
        system = self._vdxp_system(request.system_id)
        del self.vdxp_systems[request.system_id], self.vdxp_secrets[request.system_id]
        return system

    def VerifyVdxpSignature(self, request: Any, timeout: float = 0) -> Any:
        given = request.signature.strip().lower()
        for secret in self.vdxp_secrets.get(request.system_id, []):
            expected = hmac.new(secret.encode(), request.signed, hashlib.sha256).hexdigest()
            if hmac.compare_digest(expected, given):
                return directory_pb2.VerifyVdxpSignatureResponse(
                    valid=True, system=self.vdxp_systems[request.system_id]
                )
        return directory_pb2.VerifyVdxpSignatureResponse(
            valid=False, reason="system id or signature not valid"
        )


@dataclass
class Stored:
    meta: docstore_pb2.DocumentMetadata
    package: bytes


@dataclass
class FakeDocstore(Unimplemented):
    documents: dict[str, Stored] = field(default_factory=dict)
    keys: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    routing: FakeRouting | None = None

    def PutPackage(self, requests: Iterator[Any], timeout: float = 0) -> Any:
        first = next(requests)
        header = first.header
        body = b"".join(r.chunk for r in requests)
        digest = hashlib.sha256(body).hexdigest()
        if header.idempotency_key:
            seen = self.keys.get((header.sender_code, header.idempotency_key))
            if seen is not None:
                if seen[1] != digest:
                    raise FakeRpcError(grpc.StatusCode.ALREADY_EXISTS, "key used for another package")
                return docstore_pb2.PutPackageResponse(document=self.documents[seen[0]].meta, replayed=True)
            self.keys[(header.sender_code, header.idempotency_key)] = (header.id, digest)
        package = edxml.parse_package(body)
        meta = docstore_pb2.DocumentMetadata(
            id=header.id,
            sender_code=header.sender_code,
            recipient_codes=list(header.recipient_codes),
            edxml_document_id=package.header.document_id,
            subject=package.header.subject,
            package_sha256=digest,
            package_size=len(body),
        )
        meta.submitted_at.FromDatetime(dt.datetime.now(dt.UTC))
        self.documents[header.id] = Stored(meta=meta, package=body)
        if self.routing is not None:
            self.routing.deliver(meta)
        return docstore_pb2.PutPackageResponse(document=meta)

    def _get(self, id: str) -> Stored:
        if id not in self.documents:
            raise FakeRpcError(grpc.StatusCode.NOT_FOUND, f"document {id} is not stored")
        return self.documents[id]

    def GetMetadata(self, request: Any, timeout: float = 0) -> Any:
        return self._get(request.id).meta

    def GetPackage(self, request: Any, timeout: float = 0) -> Any:
        package = self._get(request.id).package
        return iter([docstore_pb2.Chunk(data=package)])

    def ListSentDocuments(self, request: Any, timeout: float = 0) -> Any:
        mine = [s.meta for s in self.documents.values() if s.meta.sender_code == request.sender_code]
        return docstore_pb2.ListSentResponse(documents=mine)


FORWARD = {
    "01": "arrived",
    "02": "refused",
    "03": "accepted",
    "04": "assigned",
    "05": "in_progress",
    "06": "done",
}


@dataclass
class FakeRouting(Unimplemented):
    states: dict[str, routing_pb2.DocumentState] = field(default_factory=dict)

    def deliver(self, meta: docstore_pb2.DocumentMetadata) -> None:
        self.states[meta.id] = routing_pb2.DocumentState(
            document_id=meta.id,
            sender_code=meta.sender_code,
            state="routed",
            subject=meta.subject,
            edxml_document_id=meta.edxml_document_id,
            deliveries=[
                routing_pb2.Delivery(recipient_code=c, state="delivered") for c in meta.recipient_codes
            ],
        )

    def GetDocumentState(self, request: Any, timeout: float = 0) -> Any:
        if request.document_id not in self.states:
            raise FakeRpcError(grpc.StatusCode.NOT_FOUND, "not routed")
        return self.states[request.document_id]

    def ListInbox(self, request: Any, timeout: float = 0) -> Any:
        items = [
            routing_pb2.InboxItem(
                document_id=s.document_id,
                sender_code=s.sender_code,
                subject=s.subject,
                edxml_document_id=s.edxml_document_id,
                state=d.state,
            )
            for s in self.states.values()
            for d in s.deliveries
            if d.recipient_code == request.agency_code
        ]
        return routing_pb2.InboxResponse(items=items)

    def PostStatus(self, request: Any, timeout: float = 0) -> Any:
        state = self.GetDocumentState(request)
        targets = (
            list(state.deliveries)
            if request.code == "13"
            else [d for d in state.deliveries if d.recipient_code == request.actor_code]
        )
        for d in targets:
            if d.last_status_code == request.code:
                raise FakeRpcError(
                    grpc.StatusCode.FAILED_PRECONDITION, f"{request.code} cannot follow itself"
                )
            d.state = "recall_requested" if request.code == "13" else FORWARD.get(request.code, d.state)
            d.last_status_code = request.code
            state.timeline.add(
                recipient_code=d.recipient_code,
                code=request.code,
                state=d.state,
                actor_code=request.actor_code,
            )
        return routing_pb2.PostStatusResponse(deliveries=state.deliveries)

    # VDXP: documents delivered and not yet taken; this fake keeps no status messages.
    def ListPending(self, request: Any, timeout: float = 0) -> Any:
        items = [
            routing_pb2.PendingItem(
                id=s.document_id,
                kind="edoc",
                from_code=s.sender_code,
                to_code=d.recipient_code,
                state="pending",
                document_id=s.document_id,
                subject=s.subject,
            )
            for s in self.states.values()
            for d in s.deliveries
            if d.recipient_code in request.agency_codes
            and d.state == "delivered"
            and request.kind != "status"
        ]
        return routing_pb2.PendingResponse(items=items[: request.limit or 100], total=len(items))

    def GetStatusMessage(self, request: Any, timeout: float = 0) -> Any:
        raise FakeRpcError(grpc.StatusCode.NOT_FOUND, f"no status message {request.id}")

    def AckStatusMessage(self, request: Any, timeout: float = 0) -> Any:
        raise FakeRpcError(grpc.StatusCode.NOT_FOUND, f"no status message {request.id}")

    def ListSent(self, request: Any, timeout: float = 0) -> Any:
        documents = [
            s
            for s in self.states.values()
            if s.sender_code in request.sender_codes and request.document_id in ("", s.document_id)
        ]
        if request.document_id and not documents:
            raise FakeRpcError(
                grpc.StatusCode.NOT_FOUND, f"document {request.document_id} was not sent by them"
            )
        return routing_pb2.ListSentResponse(documents=documents)

    def FindDocuments(self, request: Any, timeout: float = 0) -> Any:
        parties = set(request.party_codes)
        return routing_pb2.FindDocumentsResponse(
            documents=[
                s
                for s in self.states.values()
                if s.edxml_document_id == request.edxml_document_id
                and parties & {s.sender_code, *(d.recipient_code for d in s.deliveries)}
            ]
        )


class FakeSigverify(Unimplemented):
    def GetReport(self, request: Any, timeout: float = 0) -> Any:
        raise FakeRpcError(grpc.StatusCode.NOT_FOUND, "not verified yet")


class FakeStatistics(Unimplemented):
    def GetReport(self, request: Any, timeout: float = 0) -> Any:
        return statistics_pb2.ReportResponse()


def fake_clients() -> PlatformClients:
    routing = FakeRouting()
    return PlatformClients(
        directory=FakeDirectory(),  # type: ignore[arg-type]
        docstore=FakeDocstore(routing=routing),  # type: ignore[arg-type]
        sigverify=FakeSigverify(),  # type: ignore[arg-type]
        routing=routing,  # type: ignore[arg-type]
        statistics=FakeStatistics(),  # type: ignore[arg-type]
        addresses=ServiceAddresses(),
        channels=[],
    )


def gateway_settings(**gateway: Any) -> Settings:
    return Settings(gateway={"jwt_secret": "test-secret-" + "x" * 32, **gateway})  # type: ignore[arg-type]


def package_from(
    sender: str, recipients: list[str], *, subject: str = "Thử nghiệm", number: str = "1"
) -> bytes:
    header = edxml.MessageHeader(
        sender=edxml.Organization(organ_id=sender, organ_name="Cơ quan gửi"),
        recipients=[edxml.Organization(organ_id=c) for c in recipients],
        code_number=number,
        code_notation="UBND-VP",
        promulgation_place="Hạ Long",
        promulgation_date=dt.date(2026, 1, 5),
        document_type=1,
        document_type_name="Công văn",
        subject=subject,
    )
    attachment = edxml.Attachment(
        content_id="cid:1", name="cv.pdf", content_type="application/pdf", data=b"%PDF-1.7\n" + b"x" * 64
    )
    return edxml.build_package(edxml.EdxmlPackage(header=header, attachments=[attachment]))
