"""mTLS and per-method authorisation on the running platform's gRPC ports (docs/adr/0065, 0066).

The services started by the e2e fixtures, with the identities `LocalPlatform` issued in the
data dir: nobody without a certificate from the platform's CA gets a call through, and a
service's own certificate opens only the methods its code calls. The rest of the e2e suite is
the other half: every legitimate hop still works over mTLS.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest

from harness import RunningPlatform
from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong.docstore.v1 import docstore_pb2, docstore_pb2_grpc
from lienthong.routing.v1 import routing_pb2, routing_pb2_grpc
from lienthong_common.grpcutil import channel
from lienthong_common.mtls import CA_FILE, TLS_DIR, ClientTls, TlsFiles, ensure_identities

# An agency no other flow signs in as: a SetCredential that got through would be noticed nowhere else.
TARGET = "000.03.04.H49"


def set_credential(ch: grpc.Channel) -> None:
    directory_pb2_grpc.DirectoryServiceStub(ch).SetCredential(
        directory_pb2.SetCredentialRequest(client_id=TARGET, secret=uuid.uuid4().hex, roles=["admin"]),
        timeout=10,
    )


def refused(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_a_client_without_a_certificate_cannot_reach_a_service(platform: RunningPlatform) -> None:
    address = platform.local.grpc_address("directory")
    with grpc.insecure_channel(address) as plaintext:
        assert refused(lambda: set_credential(plaintext)).code() == grpc.StatusCode.UNAVAILABLE
    ca = (platform.local.data_dir / TLS_DIR / CA_FILE).read_bytes()
    anonymous = ClientTls(grpc.ssl_channel_credentials(ca), "anonymous")  # TLS, but no client certificate
    with channel(address, tls=anonymous, peer="directory") as ch:
        assert refused(lambda: set_credential(ch)).code() == grpc.StatusCode.UNAVAILABLE


def test_a_certificate_from_another_ca_is_refused(platform: RunningPlatform, tmp_path: Path) -> None:
    other = tmp_path / "other-ca"
    ensure_identities(other, ("gateway",))  # the right name, the wrong issuer
    ca = platform.local.data_dir / TLS_DIR / CA_FILE
    forged = TlsFiles(ca, other / "gateway.pem", other / "gateway-key.pem")
    address = platform.local.grpc_address("directory")
    with channel(address, tls=ClientTls.from_files(forged, "gateway"), peer="directory") as ch:
        assert refused(lambda: set_credential(ch)).code() == grpc.StatusCode.UNAVAILABLE


def test_statistics_identity_may_not_set_a_credential(platform: RunningPlatform) -> None:
    with platform.local.grpc_channel("directory", identity="statistics") as ch:
        error = refused(lambda: set_credential(ch))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error.details() == (
            "/lienthong.directory.v1.DirectoryService/SetCredential: "
            "identity 'statistics' may not call this method"
        )
        # What statistics does need still works under the same identity.
        directory = directory_pb2_grpc.DirectoryServiceStub(ch)
        directory.ListAgencies(directory_pb2.ListAgenciesRequest(), timeout=10)
    log = platform.local.log_path("directory").read_text(errors="replace")
    assert "identity 'statistics' may not call this method" in log


def test_no_service_reads_attachments_the_platform_never_serves_that_way(platform: RunningPlatform) -> None:
    with platform.local.grpc_channel("docstore", identity="gateway") as ch:
        stub = docstore_pb2_grpc.DocumentStoreStub(ch)
        request = docstore_pb2.GetAttachmentRequest(sha256="0" * 64)
        error = refused(lambda: list(stub.GetAttachment(request, timeout=10)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "identity 'gateway' may not call this method" in str(error.details())


def test_sigverify_identity_may_not_list_an_agencys_inbox(platform: RunningPlatform) -> None:
    with platform.local.grpc_channel("routing", identity="sigverify") as ch:
        stub = routing_pb2_grpc.RoutingStub(ch)
        error = refused(lambda: stub.ListInbox(routing_pb2.InboxRequest(agency_code=TARGET), timeout=10))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_client_refuses_a_server_that_is_not_the_service_it_asked_for(platform: RunningPlatform) -> None:
    # The statistics port answers with the statistics certificate: a client that wants the
    # directory there (a hijacked address) does not send its call.
    address = platform.local.grpc_address("statistics")
    with channel(address, tls=platform.local.admin_tls(), peer="directory") as ch:
        assert refused(lambda: set_credential(ch)).code() == grpc.StatusCode.UNAVAILABLE
