"""Through a real in-process gRPC server on a migrated fresh database."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import inspect

from lienthong.directory.v1 import directory_pb2 as pb
from lienthong.directory.v1 import directory_pb2_grpc
from lienthong_common.db import make_engine, make_session_factory, upgrade_database
from lienthong_common.outbox import install_after_commit_hooks
from lienthong_directory.dataset import demo_dataset_path, load_dataset
from lienthong_directory.grpc_api import DirectoryServicer
from lienthong_directory.main import MIGRATIONS

from .test_certificates import make_certificate


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[directory_pb2_grpc.DirectoryServiceStub]:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade_database(url, MIGRATIONS)
    engine = make_engine(url)
    assert {"agencies", "agency_versions", "credentials", "agency_certificates", "outbox"} <= set(
        inspect(engine).get_table_names()
    )
    sessions = make_session_factory(engine)
    install_after_commit_hooks(sessions)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    directory_pb2_grpc.add_DirectoryServiceServicer_to_server(DirectoryServicer(sessions=sessions), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield directory_pb2_grpc.DirectoryServiceStub(channel)
    channel.close()
    server.stop(None)
    engine.dispose()


def _load_demo(stub: directory_pb2_grpc.DirectoryServiceStub) -> None:
    for record in load_dataset(demo_dataset_path()):
        stub.UpsertAgency(
            pb.UpsertAgencyRequest(
                agency=pb.Agency(
                    code=record.code,
                    name=record.name,
                    tier=record.tier,
                    kind=record.kind,
                    status=record.status,
                    successor_code=record.successor_code,
                    website=record.website,
                    illustrative=record.illustrative,
                )
            )
        )


def test_demo_through_grpc(stub: directory_pb2_grpc.DirectoryServiceStub) -> None:
    _load_demo(stub)
    _load_demo(stub)  # idempotent
    agency = stub.GetAgency(pb.GetAgencyRequest(code="000.01.03.H49"))
    assert (agency.parent_code, agency.province_code, agency.tier) == ("000.00.03.H49", "H49", 4)
    listed = stub.ListAgencies(pb.ListAgenciesRequest(province_code="H49", tier=4))
    assert len(listed.agencies) == 4
    before = stub.ListAgencies(pb.ListAgenciesRequest(as_of="2000-01-01"))
    assert len(before.agencies) == 0
    reply = stub.ResolveRecipients(
        pb.ResolveRecipientsRequest(codes=["000.00.12.H49", "000.00.00.H99", "000.46.24.H44"])
    )
    found = [(r.found, r.resolved_code) for r in reply.resolutions]
    assert found == [(True, "000.00.03.H49"), (False, ""), (True, "000.46.24.H44")]
    assert "its successor 000.00.03.H49 receives" in reply.resolutions[0].reason
    assert reply.resolutions[1].reason == "recipient 000.00.00.H99 is not in the directory"


def test_errors_carry_status_and_reason(stub: directory_pb2_grpc.DirectoryServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.UpsertAgency(pb.UpsertAgencyRequest(agency=pb.Agency(code="000.00.XX.H49", name="x", tier=3)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == ("agency code 000.00.XX.H49: segment Y1Y2 'XX' must be two digits")
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetAgency(pb.GetAgencyRequest(code="000.00.00.H99"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetAgency(pb.GetAgencyRequest(code="000.00.00.H99", as_of="tomorrow"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "as_of 'tomorrow' is not an ISO date" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        stub.UpsertAgency(pb.UpsertAgencyRequest())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_credentials_and_certificates(stub: directory_pb2_grpc.DirectoryServiceStub) -> None:
    _load_demo(stub)
    code = "000.00.00.G22"
    secret = "a-long-enough-secret"
    assert stub.SetCredential(pb.SetCredentialRequest(client_id=code, secret=secret)).version == 1
    check = stub.VerifyCredential(pb.VerifyCredentialRequest(client_id=code, secret=secret))
    assert (check.valid, check.agency_code, list(check.roles), check.version) == (True, code, ["agency"], 1)
    assert stub.SetCredential(pb.SetCredentialRequest(client_id=code)).version == 2
    state = stub.GetCredentialVersion(pb.CredentialVersionRequest(client_id=code))
    assert (state.active, state.version) == (False, 2)
    assert not stub.VerifyCredential(pb.VerifyCredentialRequest(client_id=code, secret=secret)).valid

    der = make_certificate().public_bytes(serialization.Encoding.DER)
    fingerprint = stub.RegisterCertificate(
        pb.RegisterCertificateRequest(agency_code=code, certificate_der=der)
    ).fingerprint
    bound = stub.CheckCertificate(pb.CheckCertificateRequest(agency_code=code, fingerprint=fingerprint))
    assert (bound.bound, list(bound.owner_codes)) == (True, [code])
    with pytest.raises(grpc.RpcError) as caught:
        stub.RegisterCertificate(pb.RegisterCertificateRequest(agency_code=code, certificate_der=b"garbage"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as caught:
        stub.RegisterCertificate(
            pb.RegisterCertificateRequest(agency_code="000.00.00.H98", certificate_der=der)
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_migration_matches_models(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from lienthong_directory.models import Base

    url = f"sqlite:///{tmp_path / 'drift.db'}"
    upgrade_database(url, MIGRATIONS)
    engine = make_engine(url)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()


def test_import_reorganize_groups_through_grpc(
    stub: directory_pb2_grpc.DirectoryServiceStub,
) -> None:
    bad = b"code,name,tier\n000.00.00.H31,T,2\n000.00.XX.H31,Bad,3\n"
    reply = stub.ImportAgencies(pb.ImportAgenciesRequest(format="csv", content=bad))
    assert not reply.applied and [(r.row, r.code) for r in reply.rejected] == [(3, "000.00.XX.H31")]
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetAgency(pb.GetAgencyRequest(code="000.00.00.H31"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # nothing was kept
    good = (
        b"code,name,tier,effective_from\n000.00.00.H31,T,2,2020-01-01\n"
        b"000.01.00.H31,X,4,2020-01-01\n000.02.00.H31,Y,4,2020-01-01\n"
    )
    assert stub.ImportAgencies(pb.ImportAgenciesRequest(format="csv", content=good)).applied
    changed = stub.Reorganize(
        pb.ReorganizeRequest(
            changes=[
                pb.Reorganization(
                    effective_from="2025-07-01",
                    merge=pb.Merge(
                        source_codes=["000.01.00.H31", "000.02.00.H31"],
                        into=pb.Agency(code="000.03.00.H31", name="Z", tier=4),
                    ),
                )
            ]
        )
    ).changed
    assert [a.code for a in changed] == ["000.03.00.H31", "000.01.00.H31", "000.02.00.H31"]
    stub.DefineGroup(
        pb.Group(code="000.00.01.X00", name="Xã H31", rule="tier4_under", base_code="000.00.00.H31")
    )
    before = stub.ResolveRecipients(pb.ResolveRecipientsRequest(codes=["000.00.01.X00"], as_of="2025-06-30"))
    assert [(r.requested_code, r.resolved_code, r.group_code) for r in before.resolutions] == [
        ("000.00.01.X00", "000.01.00.H31", "000.00.01.X00"),
        ("000.00.01.X00", "000.02.00.H31", "000.00.01.X00"),
    ]
    after = stub.ResolveRecipients(pb.ResolveRecipientsRequest(codes=["000.00.01.X00"], as_of="2025-07-01"))
    assert [r.resolved_code for r in after.resolutions] == ["000.03.00.H31"]
    history = stub.GetAgencyHistory(pb.GetAgencyRequest(code="000.01.00.H31")).versions
    assert [(v.status, v.valid_from, v.valid_to) for v in history] == [
        ("active", "2020-01-01", "2025-07-01"),
        ("dissolved", "2025-07-01", ""),
    ]
    exported = stub.ExportAgencies(pb.ExportAgenciesRequest(format="csv", as_of="2025-07-01"))
    assert b"000.03.00.H31" in exported.content
    upserted = stub.UpsertAgency(
        pb.UpsertAgencyRequest(
            agency=pb.Agency(code="000.03.00.H31", name="Z mới", tier=4), effective_from="2026-01-01"
        )
    )
    assert upserted.valid_from == "2026-01-01"
