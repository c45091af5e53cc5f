"""The trust store over gRPC: administrators add, list and remove anchors; each change is a version."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from sigverify_factories import make_settings
from sqlalchemy.orm import Session, sessionmaker

from lienthong.sigverify.v1 import sigverify_pb2, sigverify_pb2_grpc
from lienthong_common.pki import DevPki, IssuedIdentity, certificate_fingerprint
from lienthong_sigverify.trust import TrustStore


def _add(
    stub: sigverify_pb2_grpc.SignatureVerifierStub, pem: bytes, **kw: str
) -> sigverify_pb2.AddTrustAnchorResponse:
    return stub.AddTrustAnchor(sigverify_pb2.AddTrustAnchorRequest(certificate_pem=pem.decode(), **kw))


def test_add_list_remove_with_versions(stub: sigverify_pb2_grpc.SignatureVerifierStub, pki: DevPki) -> None:
    assert stub.ListTrustAnchors(sigverify_pb2.ListTrustAnchorsRequest()).version == 0

    added = _add(stub, pki.root_cert_pem, added_by="admin", note="dev root")
    assert added.created and added.version == 1
    assert added.anchor.fingerprint == certificate_fingerprint(pki.root_cert_pem)
    assert added.anchor.self_signed and added.anchor.added_by == "admin"

    again = _add(stub, pki.root_cert_pem, added_by="admin")
    assert not again.created and again.version == 1  # nothing changed, no new version

    issuing = _add(stub, pki.issuing_cert_pem, added_by="admin")
    assert issuing.version == 2 and not issuing.anchor.self_signed

    listed = stub.ListTrustAnchors(sigverify_pb2.ListTrustAnchorsRequest())
    assert listed.version == 2
    assert [a.fingerprint for a in listed.anchors] == [added.anchor.fingerprint, issuing.anchor.fingerprint]

    removed = stub.RemoveTrustAnchor(
        sigverify_pb2.RemoveTrustAnchorRequest(
            fingerprint=issuing.anchor.fingerprint[:12], removed_by="admin"
        )
    )
    assert removed.version == 3 and removed.anchor.HasField("removed_at")
    listed = stub.ListTrustAnchors(sigverify_pb2.ListTrustAnchorsRequest())
    assert [a.fingerprint for a in listed.anchors] == [added.anchor.fingerprint]
    everything = stub.ListTrustAnchors(sigverify_pb2.ListTrustAnchorsRequest(include_removed=True))
    assert len(everything.anchors) == 2

    readded = _add(stub, pki.issuing_cert_pem, added_by="admin")
    assert readded.created and readded.version == 4


def test_end_entity_certificates_are_refused(
    stub: sigverify_pb2_grpc.SignatureVerifierStub, signer: IssuedIdentity
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        _add(stub, signer.cert_pem, added_by="admin")
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not a CA certificate" in (raised.value.details() or "")


@pytest.mark.parametrize("pem", [b"garbage", b""])
def test_garbage_is_invalid(stub: sigverify_pb2_grpc.SignatureVerifierStub, pem: bytes) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        _add(stub, pem, added_by="admin")
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_bundles_must_be_added_one_by_one(
    stub: sigverify_pb2_grpc.SignatureVerifierStub, pki: DevPki
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        _add(stub, pki.root_cert_pem + pki.issuing_cert_pem, added_by="admin")
    assert "exactly one certificate" in (raised.value.details() or "")


def test_removing_an_unknown_anchor_is_not_found(stub: sigverify_pb2_grpc.SignatureVerifierStub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.RemoveTrustAnchor(sigverify_pb2.RemoveTrustAnchorRequest(fingerprint="ab" * 32))
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as raised:
        stub.RemoveTrustAnchor(sigverify_pb2.RemoveTrustAnchorRequest(fingerprint="xyz"))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_configured_roots_are_seeded_once(
    sessions: sessionmaker[Session], tmp_path: Path, pki: DevPki
) -> None:
    root_file = tmp_path / "root.pem"
    root_file.write_bytes(pki.root_cert_pem)
    store = TrustStore(
        sessions=sessions, settings=make_settings(tmp_path, roots=[root_file]), refresh_seconds=0
    )
    snapshot = store.snapshot()
    assert snapshot.anchors == (pki.root_cert_pem,) and snapshot.version == 1
    [anchor], _ = store.anchors()
    assert anchor.added_by == "config"

    # An administrator's removal is not undone by the next start or refresh.
    store.remove(anchor.fingerprint, removed_by="admin")
    restarted = TrustStore(
        sessions=sessions, settings=make_settings(tmp_path, roots=[root_file]), refresh_seconds=0
    )
    assert restarted.snapshot().anchors == ()
    assert restarted.snapshot().version == 2


def test_dev_root_appearing_later_is_picked_up(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    store = TrustStore(sessions=sessions, settings=make_settings(tmp_path), refresh_seconds=0)
    assert store.snapshot().anchors == ()
    demo = DevPki.init(tmp_path / "data" / "pki")  # what `lienthong demo` does after the start
    assert store.snapshot().anchors == (demo.root_cert_pem,)


def test_production_refuses_to_start_with_an_empty_store(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    from pydantic import SecretStr

    from lienthong_common.settings import GatewaySettings, Settings
    from lienthong_sigverify.trust import TrustStoreError

    settings = Settings(
        environment="production",
        data_dir=tmp_path / "data",
        gateway=GatewaySettings(jwt_secret=SecretStr("a-real-secret")),
    )
    DevPki.init(tmp_path / "data" / "pki")  # the dev root never counts in production
    store = TrustStore(sessions=sessions, settings=settings, refresh_seconds=0)
    with pytest.raises(TrustStoreError, match="lienthong trust add"):
        store.check_usable()
