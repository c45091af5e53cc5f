"""The VDXP system calls through a real in-process gRPC server on a migrated database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from lienthong.directory.v1 import directory_pb2 as pb
from lienthong.directory.v1 import directory_pb2_grpc
from lienthong_common.db import make_engine, make_session_factory, transaction, upgrade_database
from lienthong_common.outbox import install_after_commit_hooks
from lienthong_directory.envelope import MasterKeyRing, new_master_key_text
from lienthong_directory.grpc_api import DirectoryServicer
from lienthong_directory.main import MIGRATIONS

from .conftest import add_agency
from .test_vdxp_systems import COMMUNE, PROVINCE, WORKED_HASH, WORKED_SECRET, WORKED_SIGN_HEADER, sign

Stub = directory_pb2_grpc.DirectoryServiceStub


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[MasterKeyRing | None], Stub]]:
    url = f"sqlite:///{tmp_path / 'directory.db'}"
    upgrade_database(url, MIGRATIONS)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    install_after_commit_hooks(sessions)
    with transaction(sessions) as session:
        add_agency(session, PROVINCE, 2)
        add_agency(session, "000.00.03.H49", 3)
        add_agency(session, COMMUNE, 4)
    servers: list[grpc.Server] = []
    channels: list[grpc.Channel] = []

    def start(keys: MasterKeyRing | None) -> Stub:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        servicer = DirectoryServicer(sessions=sessions, master_keys=keys)
        directory_pb2_grpc.add_DirectoryServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        servers.append(server)
        channels.append(channel)
        return Stub(channel)

    yield start
    for channel in channels:
        channel.close()
    for server in servers:
        server.stop(None)
    engine.dispose()


@pytest.fixture
def stub(serve: Callable[[MasterKeyRing | None], Stub]) -> Stub:
    return serve(MasterKeyRing.parse(new_master_key_text("k1"), source="test"))


def test_add_verify_list_update_and_remove(stub: Stub) -> None:
    added = stub.AddVdxpSystem(
        pb.AddVdxpSystemRequest(
            system_id="vxp.saas.03", agency_codes=[COMMUNE, PROVINCE], secret=WORKED_SECRET
        )
    )
    assert added.secret == WORKED_SECRET
    assert (added.system.system_id, list(added.system.agency_codes)) == ("vxp.saas.03", [PROVINCE, COMMUNE])
    assert added.system.active_secrets == 1 and added.system.previous_valid_until == ""
    assert added.system.created_at.endswith("+00:00")

    check = stub.VerifyVdxpSignature(
        pb.VerifyVdxpSignatureRequest(
            system_id="vxp.saas.03", signed=WORKED_SIGN_HEADER, signature=WORKED_HASH
        )
    )
    assert check.valid and list(check.system.agency_codes) == [PROVINCE, COMMUNE] and check.reason == ""
    for system_id, signature in (("vxp.saas.03", "0" * 64), ("vxp.saas.99", WORKED_HASH)):
        refused = stub.VerifyVdxpSignature(
            pb.VerifyVdxpSignatureRequest(system_id=system_id, signed=WORKED_SIGN_HEADER, signature=signature)
        )
        assert (refused.valid, refused.HasField("system"), refused.reason) == (
            False,
            False,
            "system id or signature not valid",
        )

    generated = stub.AddVdxpSystem(pb.AddVdxpSystemRequest(system_id=PROVINCE, agency_codes=[PROVINCE]))
    assert len(generated.secret) >= 32
    listed = stub.ListVdxpSystems(pb.ListVdxpSystemsRequest())
    assert [s.system_id for s in listed.systems] == [PROVINCE, "vxp.saas.03"]
    listed = stub.ListVdxpSystems(pb.ListVdxpSystemsRequest(agency_code=COMMUNE))
    assert [s.system_id for s in listed.systems] == ["vxp.saas.03"]

    updated = stub.UpdateVdxpSystem(
        pb.UpdateVdxpSystemRequest(system_id="vxp.saas.03", agency_codes=[COMMUNE], admin=True)
    )
    assert (list(updated.agency_codes), updated.admin) == ([COMMUNE], True)

    removed = stub.RemoveVdxpSystem(pb.VdxpSystemRequest(system_id="vxp.saas.03"))
    assert removed.system_id == "vxp.saas.03"
    assert [s.system_id for s in stub.ListVdxpSystems(pb.ListVdxpSystemsRequest()).systems] == [PROVINCE]
    with pytest.raises(grpc.RpcError) as caught:
        stub.RemoveVdxpSystem(pb.VdxpSystemRequest(system_id="vxp.saas.03"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "VDXP system vxp.saas.03 is not in the directory"


def test_errors_carry_the_status_and_the_domain_reason(stub: Stub) -> None:
    stub.AddVdxpSystem(pb.AddVdxpSystemRequest(system_id="vxp.saas.03", agency_codes=[PROVINCE]))
    cases = [
        (
            pb.AddVdxpSystemRequest(system_id="vxp.saas.03", agency_codes=[PROVINCE]),
            grpc.StatusCode.ALREADY_EXISTS,
        ),
        (
            pb.AddVdxpSystemRequest(system_id="vxp.saas.04", agency_codes=["000.00.00.H98"]),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            pb.AddVdxpSystemRequest(system_id="vxp saas", agency_codes=[PROVINCE]),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ]
    for request, code in cases:
        with pytest.raises(grpc.RpcError) as caught:
            stub.AddVdxpSystem(request)
        assert caught.value.code() == code, caught.value.details()
    assert caught.value.details() == "system id 'vxp saas' must be 1-64 letters, digits, '.', '_' or '-'"


def test_rotation_overlap_absent_is_a_day_and_zero_stops_the_old_secret_now(stub: Stub) -> None:
    stub.AddVdxpSystem(
        pb.AddVdxpSystemRequest(system_id="vxp.saas.03", agency_codes=[PROVINCE], secret=WORKED_SECRET)
    )

    def valid(secret: str) -> bool:
        request = pb.VerifyVdxpSignatureRequest(
            system_id="vxp.saas.03", signed=WORKED_SIGN_HEADER, signature=sign(secret)
        )
        return bool(stub.VerifyVdxpSignature(request).valid)

    day = stub.RotateVdxpSecret(pb.RotateVdxpSecretRequest(system_id="vxp.saas.03"))
    assert day.system.active_secrets == 2 and day.system.previous_valid_until
    assert valid(WORKED_SECRET) and valid(day.secret)
    now = stub.RotateVdxpSecret(pb.RotateVdxpSecretRequest(system_id="vxp.saas.03", overlap_seconds=0))
    assert now.system.active_secrets == 1 and now.system.previous_valid_until == ""
    assert not valid(WORKED_SECRET) and not valid(day.secret) and valid(now.secret)


def test_without_a_master_key_the_calls_say_how_to_configure_one(
    serve: Callable[[MasterKeyRing | None], Stub],
) -> None:
    stub = serve(None)
    with pytest.raises(grpc.RpcError) as caught:
        stub.AddVdxpSystem(pb.AddVdxpSystemRequest(system_id="vxp.saas.03", agency_codes=[PROVINCE]))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        "set LIENTHONG_DIRECTORY__MASTER_KEYS or LIENTHONG_DIRECTORY__MASTER_KEYS_FILE"
        in caught.value.details()
    )
    assert list(stub.ListVdxpSystems(pb.ListVdxpSystemsRequest()).systems) == []
