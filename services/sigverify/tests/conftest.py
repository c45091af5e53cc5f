"""Shared fixtures: a dev PKI, a verifier that trusts it, signed PDFs and a database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sigverify_factories import SENDER, FakeBindings, make_settings
from sqlalchemy.orm import Session, sessionmaker

from lienthong.sigverify.v1 import sigverify_pb2_grpc
from lienthong_common.db import make_engine, make_session_factory
from lienthong_common.grpcutil import make_server
from lienthong_common.outbox import install_after_commit_hooks
from lienthong_common.pades import PdfVerifier, sign_pdf
from lienthong_common.pdfgen import make_pdf
from lienthong_common.pki import DevPki, IssuedIdentity
from lienthong_sigverify import grpc_api
from lienthong_sigverify.models import Base
from lienthong_sigverify.trust import TrustStore


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return DevPki.init(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def untrusted_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return DevPki.init(tmp_path_factory.mktemp("untrusted-pki"), common_name="someone else's root")


@pytest.fixture(scope="session")
def verifier(pki: DevPki) -> PdfVerifier:
    return PdfVerifier([pki.root_cert_pem], revocation="off")


@pytest.fixture(scope="session")
def signer(pki: DevPki) -> IssuedIdentity:
    return pki.issue_signer(agency_code=SENDER, common_name="Nguyễn Văn A")


@pytest.fixture(scope="session")
def seal(pki: DevPki) -> IssuedIdentity:
    return pki.issue_signer(agency_code=SENDER, common_name="UBND tỉnh Quảng Ninh", purpose="seal")


@pytest.fixture
def bindings(signer: IssuedIdentity, seal: IssuedIdentity) -> FakeBindings:
    fake = FakeBindings()
    fake.register(signer, SENDER)
    fake.register(seal, SENDER)
    return fake


@pytest.fixture(scope="session")
def signed_pdf(signer: IssuedIdentity) -> bytes:
    return sign_pdf(make_pdf("Công văn 12/UBND-VP", ["Kính gửi: Văn phòng Chính phủ"]), signer)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'sigverify.db'}")
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    install_after_commit_hooks(factory)
    yield factory
    engine.dispose()


@pytest.fixture
def trust(sessions: sessionmaker[Session], tmp_path: Path) -> TrustStore:
    """An empty trust store (no configured roots, no dev PKI under data_dir)."""
    return TrustStore(sessions=sessions, settings=make_settings(tmp_path), refresh_seconds=0)


@pytest.fixture
def stub(
    sessions: sessionmaker[Session], trust: TrustStore
) -> Iterator[sigverify_pb2_grpc.SignatureVerifierStub]:
    server = make_server(max_workers=2)
    names = grpc_api.register(server, sessions=sessions, trust=trust)
    assert names == ["lienthong.sigverify.v1.SignatureVerifier"]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield sigverify_pb2_grpc.SignatureVerifierStub(channel)
    server.stop(grace=None)
