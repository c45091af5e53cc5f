"""mTLS on the gRPC hops: identities, refusals, certificate rotation, per-method authorisation.

Real TLS over loopback sockets with certificates issued by lienthong_common.mtls; the servers
are in-process gRPC servers with the platform's interceptors (make_server).
"""

from __future__ import annotations

import os
import socket
import ssl
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from lienthong.directory.v1 import directory_pb2
from lienthong.docstore.v1 import docstore_pb2
from lienthong.routing.v1 import routing_pb2
from lienthong.sigverify.v1 import sigverify_pb2
from lienthong.statistics.v1 import statistics_pb2
from lienthong_common.authz import ALLOWED, refusal
from lienthong_common.grpcutil import channel, health_status, make_server
from lienthong_common.mtls import (
    CA_FILE,
    ClientTls,
    ServiceCa,
    TlsConfigurationError,
    TlsFiles,
    ensure_identities,
    identity_name,
    server_credentials,
    tls_files,
)
from lienthong_common.settings import Settings

DIRECTORY = "lienthong.directory.v1.DirectoryService"


def files(directory: Path, identity: str) -> TlsFiles:
    return TlsFiles(directory / CA_FILE, directory / f"{identity}.pem", directory / f"{identity}-key.pem")


def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
    return b"answered"


@contextmanager
def directory_server(tls: TlsFiles) -> Iterator[str]:
    """An mTLS server under the directory's identity and authorisation, answering SetCredential
    and ListAgencies with raw bytes (the table, not the servicer, is under test)."""
    server = make_server(4, authorise_as="directory")
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(answer) for name in ("SetCredential", "ListAgencies")
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(DIRECTORY, handlers)])
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_secure_port("127.0.0.1:0", server_credentials(tls))
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def call(address: str, tls: ClientTls | None, method: str, *, peer: str = "directory") -> bytes:
    with channel(address, tls=tls, peer=peer, own_connection=True) as ch:
        reply: bytes = ch.unary_unary(f"/{DIRECTORY}/{method}")(b"", timeout=10)
        return reply


def rpc_error(address: str, tls: ClientTls | None, method: str, *, peer: str = "directory") -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(address, tls, method, peer=peer)
    return caught.value


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    directory = tmp_path / "grpc-tls"
    ensure_identities(directory)
    return directory


def client(pki: Path, identity: str) -> ClientTls:
    return ClientTls.from_files(files(pki, identity), identity)


def test_identities_are_issued_once_with_private_keys_readable_by_the_owner_only(tmp_path: Path) -> None:
    directory = tmp_path / "grpc-tls"
    ensure_identities(directory)
    first = {p.name: p.read_bytes() for p in directory.iterdir()}
    ensure_identities(directory)
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == first
    keys = [p for p in directory.iterdir() if p.name.endswith("-key.pem")]
    assert {p.name for p in keys} >= {"ca-key.pem", "gateway-key.pem", "admin-key.pem", "directory-key.pem"}
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    cert = x509.load_pem_x509_certificate((directory / "routing.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert identity_name("routing") in names.get_values_for_type(x509.DNSName)


def test_a_caller_allowed_the_method_is_answered(pki: Path) -> None:
    with directory_server(files(pki, "directory")) as address:
        assert call(address, client(pki, "gateway"), "SetCredential") == b"answered"
        assert call(address, client(pki, "statistics"), "ListAgencies") == b"answered"
        assert health_status(address, tls=client(pki, "statistics"), peer="directory") == "SERVING"


def test_a_service_calling_a_method_it_does_not_need_is_permission_denied(pki: Path) -> None:
    with directory_server(files(pki, "directory")) as address:
        error = rpc_error(address, client(pki, "statistics"), "SetCredential")
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == f"/{DIRECTORY}/SetCredential: identity 'statistics' may not call this method"


def test_an_identity_the_table_does_not_know_is_permission_denied(pki: Path) -> None:
    ca = ServiceCa.load(pki)
    ca.write_identity(pki, "intruder")  # a valid certificate from the platform's own CA
    with directory_server(files(pki, "directory")) as address:
        error = rpc_error(address, client(pki, "intruder"), "ListAgencies")
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "identity 'intruder' is not known" in str(error.details())


def test_a_client_without_a_certificate_cannot_connect(pki: Path) -> None:
    anonymous = ClientTls(grpc.ssl_channel_credentials((pki / CA_FILE).read_bytes()), "anonymous")
    with directory_server(files(pki, "directory")) as address:
        assert rpc_error(address, anonymous, "ListAgencies").code() == grpc.StatusCode.UNAVAILABLE
        assert rpc_error(address, None, "ListAgencies").code() == grpc.StatusCode.UNAVAILABLE  # plaintext


def test_a_client_with_a_certificate_from_another_ca_is_refused(pki: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-ca"
    ensure_identities(other, ("gateway",))
    # It trusts our CA (it could know the public certificate) but its own is not from it.
    forged = TlsFiles(pki / CA_FILE, other / "gateway.pem", other / "gateway-key.pem")
    with directory_server(files(pki, "directory")) as address:
        error = rpc_error(address, ClientTls.from_files(forged, "gateway"), "SetCredential")
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_a_server_without_the_expected_identity_is_refused_by_the_client(pki: Path) -> None:
    # A process holding a valid platform certificate, but not the directory's, on the directory's port.
    with directory_server(files(pki, "statistics")) as address:
        refused = rpc_error(address, client(pki, "gateway"), "SetCredential")
        assert refused.code() == grpc.StatusCode.UNAVAILABLE
        assert call(address, client(pki, "gateway"), "SetCredential", peer="statistics") == b"answered"


def served_certificate(address: str, pki: Path, *, expect: str) -> bytes:
    """The DER certificate a new TLS connection to `address` is served (as the admin)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / CA_FILE))
    context.load_cert_chain(pki / "admin.pem", pki / "admin-key.pem")
    context.set_alpn_protocols(["h2"])
    host, port = address.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=identity_name(expect)) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def replace(path: Path, data: bytes) -> None:
    """Write-then-rename, as a Kubernetes Secret volume or cert-manager updates files."""
    staged = path.with_suffix(".new")
    staged.write_bytes(data)
    os.chmod(staged, 0o600)
    os.replace(staged, path)


def der_of(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def test_a_server_serves_its_rotated_certificate_to_new_connections(pki: Path) -> None:
    tls = files(pki, "directory")
    first = der_of(tls.cert.read_bytes())
    with directory_server(tls) as address:
        assert served_certificate(address, pki, expect="directory") == first
        cert, key = ServiceCa.load(pki).issue("directory")  # certificate B, same CA
        replace(tls.key, key)
        replace(tls.cert, cert)
        assert served_certificate(address, pki, expect="directory") == der_of(cert)
        assert call(address, client(pki, "gateway"), "SetCredential") == b"answered"


def test_during_a_ca_rotation_clients_of_the_old_and_the_new_ca_are_both_accepted(
    pki: Path, tmp_path: Path
) -> None:
    new = tmp_path / "new-ca"
    ensure_identities(new, ("directory", "gateway"))
    tls = files(pki, "directory")
    # The server's bundle holds old + new CA; its own certificate is still from the old one.
    replace(tls.ca, (pki / CA_FILE).read_bytes() + (new / CA_FILE).read_bytes())
    old_client = client(pki, "gateway")
    new_client = ClientTls.from_files(
        TlsFiles(pki / CA_FILE, new / "gateway.pem", new / "gateway-key.pem"), "gateway"
    )
    with directory_server(tls) as address:
        assert call(address, old_client, "SetCredential") == b"answered"
        assert call(address, new_client, "SetCredential") == b"answered"


def test_a_half_written_rotation_keeps_the_current_certificate(pki: Path) -> None:
    tls = files(pki, "directory")
    first = der_of(tls.cert.read_bytes())
    with directory_server(tls) as address:
        replace(tls.cert, b"")  # a rotation caught between two writes
        assert served_certificate(address, pki, expect="directory") == first


def test_missing_tls_files_are_named_with_their_setting(tmp_path: Path) -> None:
    ensure_identities(tmp_path / "grpc-tls", ("gateway",))  # the CA, but no routing identity
    settings = Settings(data_dir=tmp_path)
    found = tls_files(settings, "routing")
    assert found is not None and found.cert == tmp_path / "grpc-tls" / "routing.pem"
    with pytest.raises(TlsConfigurationError, match=r"routing\.pem \(LIENTHONG_GRPC__TLS__CERT_FILE\)"):
        found.read()


def test_plaintext_grpc_is_refused_unless_the_server_binds_to_loopback() -> None:
    assert Settings().grpc.tls.enabled  # secure by default
    assert tls_files(Settings(grpc={"tls": {"enabled": False}}), "routing") is None
    with pytest.raises(ValidationError, match="allowed only when LIENTHONG_GRPC__HOST is a loopback"):
        Settings(grpc={"host": "0.0.0.0", "tls": {"enabled": False}})


def test_the_table_names_only_methods_the_services_have() -> None:
    real = {"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"}
    real |= {f"/grpc.reflection.{v}.ServerReflection/ServerReflectionInfo" for v in ("v1alpha", "v1")}
    for module in (directory_pb2, docstore_pb2, sigverify_pb2, routing_pb2, statistics_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            real |= {f"/{service.full_name}/{m.name}" for m in service.methods}
    for identity, methods in ALLOWED.items():
        assert methods <= real, (identity, sorted(methods - real))


def test_only_the_gateway_and_the_administrators_may_set_credentials() -> None:
    method = f"/{DIRECTORY}/SetCredential"
    assert {identity for identity in ALLOWED if refusal(identity, method) is None} == {"gateway", "admin"}
    assert refusal(None, method) is not None
    docstore_read = "/lienthong.docstore.v1.DocumentStore/GetPackage"
    assert {identity for identity in ALLOWED if refusal(identity, docstore_read) is None} == {
        "gateway",
        "sigverify",
    }


def test_the_plaintext_health_port_answers_health_and_nothing_else() -> None:
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from lienthong_common.grpcutil import make_health_server

    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    server = make_health_server(servicer)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        address = f"127.0.0.1:{port}"
        # kubelet's probe: plaintext, no certificate; the status is the shared servicer's.
        assert health_status(address, tls=None) == "NOT_SERVING"
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        assert health_status(address, tls=None) == "SERVING"
        assert rpc_error(address, None, "SetCredential").code() == grpc.StatusCode.UNIMPLEMENTED
        with channel(address, tls=None) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop(None)
