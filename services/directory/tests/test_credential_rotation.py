"""Rotation with an overlap of 0, and revocation: the old secret and every token stop now (issue 20, 3)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from lienthong.directory.v1 import directory_pb2 as pb
from lienthong.directory.v1 import directory_pb2_grpc
from lienthong_common.db import make_engine, make_session_factory, upgrade_database
from lienthong_common.outbox import install_after_commit_hooks
from lienthong_directory.grpc_api import DirectoryServicer
from lienthong_directory.main import MIGRATIONS

CLIENT = "ops01"  # an administrator's client: no agency needed
OLD, NEW, NEWER = "old-secret-0123", "new-secret-4567", "newer-secret-89ab"


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[directory_pb2_grpc.DirectoryServiceStub]:
    url = f"sqlite:///{tmp_path / 'directory.db'}"
    upgrade_database(url, MIGRATIONS)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    install_after_commit_hooks(sessions)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    directory_pb2_grpc.add_DirectoryServiceServicer_to_server(DirectoryServicer(sessions=sessions), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield directory_pb2_grpc.DirectoryServiceStub(channel)
    channel.close()
    server.stop(None)
    engine.dispose()


def verify(stub: directory_pb2_grpc.DirectoryServiceStub, secret: str) -> bool:
    return stub.VerifyCredential(pb.VerifyCredentialRequest(client_id=CLIENT, secret=secret)).valid


def version(stub: directory_pb2_grpc.DirectoryServiceStub) -> tuple[bool, int]:
    reply = stub.GetCredentialVersion(pb.CredentialVersionRequest(client_id=CLIENT))
    return reply.active, reply.version


def test_an_absent_overlap_keeps_a_day_and_the_version(stub: directory_pb2_grpc.DirectoryServiceStub) -> None:
    first = stub.SetCredential(pb.SetCredentialRequest(client_id=CLIENT, secret=OLD, roles=["admin"])).version
    rotated = stub.RotateCredential(pb.RotateCredentialRequest(client_id=CLIENT, new_secret=NEW))
    assert rotated.version == first and rotated.previous_valid_until  # tokens live on to their expiry
    assert verify(stub, OLD) and verify(stub, NEW)
    longer = stub.RotateCredential(
        pb.RotateCredentialRequest(client_id=CLIENT, new_secret=NEWER, overlap_seconds=3600)
    )
    assert longer.version == first and verify(stub, NEW) and verify(stub, NEWER)


def test_an_overlap_of_zero_stops_the_old_secret_and_its_tokens_now(
    stub: directory_pb2_grpc.DirectoryServiceStub,
) -> None:
    first = stub.SetCredential(pb.SetCredentialRequest(client_id=CLIENT, secret=OLD, roles=["admin"])).version
    # Even in the middle of a rotation's overlap, the emergency rotation ends every old secret.
    stub.RotateCredential(pb.RotateCredentialRequest(client_id=CLIENT, new_secret=NEW, overlap_seconds=3600))
    emergency = stub.RotateCredential(
        pb.RotateCredentialRequest(client_id=CLIENT, new_secret=NEWER, overlap_seconds=0)
    )
    assert emergency.version == first + 1 and emergency.previous_valid_until == ""
    assert (verify(stub, OLD), verify(stub, NEW), verify(stub, NEWER)) == (False, False, True)
    # A token carries the version it was issued under: the old one is no longer current.
    assert version(stub) == (True, first + 1)
    check = stub.VerifyCredential(pb.VerifyCredentialRequest(client_id=CLIENT, secret=NEWER))
    assert check.version == first + 1


def test_revocation_kills_the_secret_and_every_token(stub: directory_pb2_grpc.DirectoryServiceStub) -> None:
    first = stub.SetCredential(pb.SetCredentialRequest(client_id=CLIENT, secret=OLD, roles=["admin"])).version
    stub.RotateCredential(pb.RotateCredentialRequest(client_id=CLIENT, new_secret=NEW))  # old one in overlap
    revoked = stub.SetCredential(pb.SetCredentialRequest(client_id=CLIENT, secret="")).version
    assert revoked == first + 1 and version(stub) == (False, first + 1)
    assert not verify(stub, OLD) and not verify(stub, NEW)
    with pytest.raises(grpc.RpcError) as again:
        stub.RotateCredential(
            pb.RotateCredentialRequest(client_id=CLIENT, new_secret=NEWER, overlap_seconds=0)
        )
    assert again.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_negative_overlap_is_refused(stub: directory_pb2_grpc.DirectoryServiceStub) -> None:
    stub.SetCredential(pb.SetCredentialRequest(client_id=CLIENT, secret=OLD, roles=["admin"]))
    with pytest.raises(grpc.RpcError) as refused:
        stub.RotateCredential(
            pb.RotateCredentialRequest(client_id=CLIENT, new_secret=NEW, overlap_seconds=-1)
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert verify(stub, OLD) and not verify(stub, NEW)
