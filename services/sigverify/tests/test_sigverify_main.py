"""build(): the verifier and gRPC clients wired to fake docstore and directory servers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from sigverify_factories import SENDER, make_package, pdf_attachment

from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong.docstore.v1 import docstore_pb2, docstore_pb2_grpc
from lienthong.events.v1 import events_pb2
from lienthong_common.db import upgrade_database
from lienthong_common.grpcutil import channel, make_server
from lienthong_common.kafka_access import access_of
from lienthong_common.outbox import TOPIC_SUBMITTED, new_event
from lienthong_common.pades import accelerators
from lienthong_common.pki import DevPki, IssuedIdentity, certificate_fingerprint
from lienthong_common.service import ServiceRuntime
from lienthong_common.settings import (
    GrpcSettings,
    GrpcTlsSettings,
    ServiceAddresses,
    Settings,
    SigverifySettings,
)
from lienthong_sigverify import repository
from lienthong_sigverify.clients import DirectoryBindings, DocstorePackages, PackageTooLarge
from lienthong_sigverify.main import MIGRATIONS, build
from lienthong_sigverify.models import OUTBOX, Base

DOCUMENT_ID = "7b1e0f3a-9c2d-4e5f-8a6b-1c2d3e4f5a6b"


class FakeDocstore(docstore_pb2_grpc.DocumentStoreServicer):
    def __init__(self, packages: dict[str, bytes]) -> None:
        self.packages = packages

    def GetPackage(self, request, context):  # type: ignore[no-untyped-def]
        if request.id not in self.packages:
            context.abort(grpc.StatusCode.NOT_FOUND, f"document {request.id} not found")
        data = self.packages[request.id]
        for offset in range(0, len(data), 1000):
            yield docstore_pb2.Chunk(data=data[offset : offset + 1000])


class FakeDirectory(directory_pb2_grpc.DirectoryServiceServicer):
    def __init__(self, owners: dict[str, list[str]]) -> None:
        self.owners = owners

    def CheckCertificate(self, request, context):  # type: ignore[no-untyped-def]
        owners = self.owners.get(request.fingerprint, [])
        return directory_pb2.CheckCertificateResponse(bound=request.agency_code in owners, owner_codes=owners)


@dataclass
class Peers:
    address: str
    docstore: FakeDocstore
    directory: FakeDirectory


@pytest.fixture
def peers(signed_pdf: bytes, signer: IssuedIdentity) -> Iterator[Peers]:
    docstore = FakeDocstore({DOCUMENT_ID: make_package([pdf_attachment(signed_pdf)])})
    directory = FakeDirectory({certificate_fingerprint(signer.cert_pem): [SENDER]})
    server = make_server(max_workers=4)
    docstore_pb2_grpc.add_DocumentStoreServicer_to_server(docstore, server)
    directory_pb2_grpc.add_DirectoryServiceServicer_to_server(directory, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield Peers(f"127.0.0.1:{port}", docstore, directory)
    server.stop(grace=None)


def test_docstore_client_reassembles_the_stream(peers: Peers, tmp_path: Path) -> None:
    expected = peers.docstore.packages[DOCUMENT_ID]
    packages = DocstorePackages(
        channel(peers.address, tls=None), deadline_seconds=5, max_bytes=10**7, spool_dir=tmp_path / "spool"
    )
    assert packages(DOCUMENT_ID) == expected  # small: in memory
    spooling = DocstorePackages(
        channel(peers.address, tls=None),
        deadline_seconds=5,
        max_bytes=10**7,
        spool_dir=tmp_path / "spool",
        in_memory_bytes=100,
    )
    fetched = spooling(DOCUMENT_ID)  # large: streamed to a file the caller owns
    assert isinstance(fetched, Path) and fetched.parent == tmp_path / "spool"
    assert fetched.read_bytes() == expected
    with pytest.raises(grpc.RpcError) as raised:
        packages("no-such-document")
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND


def test_docstore_client_refuses_an_oversized_package(peers: Peers, tmp_path: Path) -> None:
    packages = DocstorePackages(
        channel(peers.address, tls=None),
        deadline_seconds=5,
        max_bytes=1500,
        spool_dir=tmp_path / "spool",
        in_memory_bytes=100,
    )
    with pytest.raises(PackageTooLarge):
        packages(DOCUMENT_ID)
    assert not list((tmp_path / "spool").iterdir())  # the partial file is gone


def test_directory_client_reports_owners(peers: Peers, signer: IssuedIdentity) -> None:
    bindings = DirectoryBindings(channel(peers.address, tls=None), deadline_seconds=5)
    fingerprint = certificate_fingerprint(signer.cert_pem)
    assert bindings(agency_code=SENDER, fingerprint=fingerprint).bound
    other = bindings(agency_code="000.00.00.G22", fingerprint=fingerprint)
    assert (other.bound, other.owner_codes) == (False, (SENDER,))


def test_build_wires_the_consumer_to_docstore_and_directory(
    tmp_path: Path, pki: DevPki, peers: Peers
) -> None:
    root = tmp_path / "root.pem"
    root.write_bytes(pki.root_cert_pem)
    settings = Settings(
        data_dir=tmp_path / "data",
        # The peers are an in-process plaintext server: plaintext explicitly (loopback only).
        grpc=GrpcSettings(deadline_seconds=5, tls=GrpcTlsSettings(enabled=False)),
        services=ServiceAddresses(docstore=peers.address, directory=peers.address),
        sigverify=SigverifySettings(trust_roots=[root], revocation="off", workers=0),
    )
    runtime = ServiceRuntime(name="sigverify", settings=settings, metadata=Base.metadata, outbox=OUTBOX)
    upgrade_database(settings.database_url_for("sigverify"), MIGRATIONS)

    accelerators.uninstall()  # start-up installs the PAdES accelerators (inline verification here)
    register = build(runtime)
    assert accelerators.installed()

    [consumer] = runtime.consumers
    assert consumer.topics == [TOPIC_SUBMITTED]
    access = access_of("sigverify")  # what the broker lets its principal do (docs/adr/0070)
    assert consumer.group in access.groups and set(consumer.topics) <= set(access.reads)
    event = new_event(DOCUMENT_ID)
    event.submitted.CopyFrom(events_pb2.DocumentSubmitted(sender_code=SENDER))
    assert consumer.handle(TOPIC_SUBMITTED, event.SerializeToString(), None)
    with runtime.sessions() as session:
        stored = repository.get_report(session, document_id=DOCUMENT_ID)
    assert stored is not None
    assert stored.report.indication == "TOTAL_PASSED", stored.report.reason

    server = make_server(max_workers=2)
    assert register(server) == ["lienthong.sigverify.v1.SignatureVerifier"]
    runtime.engine.dispose()
