"""Optional mutual TLS: the client certificate, read from the TLS connection, bound to the agency.

uvicorn does not put the peer certificate in the ASGI scope, so when the gateway serves HTTPS
it runs with `TlsH11Protocol`, which adds the ASGI TLS extension
(`scope["extensions"]["tls"]["client_cert_chain"]`, PEM strings, leaf first). The ssl context
verifies the chain against `tls_client_ca_file`; the gateway then requires the certificate to be
registered to the calling agency in the directory (VerifyClientCertificate, falling back to
CheckCertificate on a directory without it).
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import grpc
from fastapi import Request
from uvicorn.protocols.http.h11_impl import H11Protocol

from lienthong.directory.v1 import directory_pb2
from lienthong_gateway.problems import Problem

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class TlsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus the ASGI TLS extension carrying the client certificate."""

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        tls = {
            "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
            "client_cert_name": None,
            "client_cert_error": None,
            "tls_version": None,
            "cipher_suite": None,
        }
        inner: ASGIApp = self.app

        async def with_tls(scope: Scope, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = tls
            await inner(scope, receive, send)

        self.app = with_tls


def client_certificate_fingerprint(request: Request) -> str | None:
    """SHA-256 hex of the DER client certificate presented on this connection, if any."""
    chain = ((request.scope.get("extensions") or {}).get("tls") or {}).get("client_cert_chain") or []
    if not chain:
        return None
    der = ssl.PEM_cert_to_DER_cert(chain[0])
    return hashlib.sha256(der).hexdigest()


def require_bound_certificate(
    *, directory: Any, deadline: float, request: Request, agency_code: str, required: bool
) -> None:
    """Refuse the request unless a presented certificate is bound to `agency_code`."""
    fingerprint = client_certificate_fingerprint(request)
    if fingerprint is None:
        if required:
            raise Problem(
                401,
                "this gateway requires a TLS client certificate registered to your agency",
                kind="client-certificate-required",
            )
        return
    try:
        reply = directory.VerifyClientCertificate(
            directory_pb2.ClientCertificateRequest(fingerprint=fingerprint), timeout=deadline
        )
        bound = reply.valid and reply.agency_code == agency_code
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise
        check = directory.CheckCertificate(
            directory_pb2.CheckCertificateRequest(agency_code=agency_code, fingerprint=fingerprint),
            timeout=deadline,
        )
        bound = check.bound
    if not bound:
        raise Problem(
            403,
            f"the TLS client certificate {fingerprint[:16]}… is not registered to {agency_code}",
            kind="client-certificate-not-bound",
        )


def ssl_options(*, cert: str | None, key: str | None, client_ca: str | None) -> dict[str, Any]:
    """uvicorn keyword arguments for HTTPS, optional client certificates verified by client_ca."""
    if not cert:
        return {}
    options: dict[str, Any] = {"ssl_certfile": cert, "ssl_keyfile": key, "http": TlsH11Protocol}
    if client_ca:
        options.update(ssl_ca_certs=client_ca, ssl_cert_reqs=ssl.CERT_OPTIONAL)
    return options
