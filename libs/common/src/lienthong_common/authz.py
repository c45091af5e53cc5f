"""Who may call which gRPC method: the one table, and the server interceptor that applies it.

The caller is the identity in its verified client certificate (lienthong_common.mtls). Each
identity may call only what its code calls (found by reading the callers: the gateway's
handlers, routing's, statistics' and sigverify's clients.py, the demo seeder); a new call means
a new line here, reviewed as such. Anything else, and any identity not listed, is
PERMISSION_DENIED. docs/adr/0066-grpc-per-method-authorisation.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import grpc

from lienthong_common.mtls import peer_identity

log = logging.getLogger(__name__)

DIRECTORY = "lienthong.directory.v1.DirectoryService"
DOCSTORE = "lienthong.docstore.v1.DocumentStore"
SIGVERIFY = "lienthong.sigverify.v1.SignatureVerifier"
ROUTING = "lienthong.routing.v1.Routing"
STATISTICS = "lienthong.statistics.v1.Statistics"
HEALTH = "grpc.health.v1.Health"
REFLECTION = ("grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")


def _methods(service: str, names: Iterable[str]) -> set[str]:
    """Full method names (`/package.Service/Method`) of `names` in `service`."""
    return {f"/{service}/{name}" for name in names}


_HEALTH = _methods(HEALTH, ["Check", "Watch"])
_REFLECTION = {m for service in REFLECTION for m in _methods(service, ["ServerReflectionInfo"])}

# identity -> the full method names it may call.
ALLOWED: dict[str, frozenset[str]] = {
    "gateway": frozenset(
        _HEALTH
        | _methods(
            DIRECTORY,
            (
                "GetAgency ListAgencies UpsertAgency ResolveRecipients SetCredential "
                "VerifyCredential GetCredentialVersion CheckCertificate GetAgencyHistory "
                "Reorganize DefineGroup DeleteGroup ListGroups ExpandGroup RotateCredential "
                "BindClientCertificate VerifyClientCertificate GetConnectionStatus ImportAgencies "
                "ExportAgencies AddVdxpSystem ListVdxpSystems UpdateVdxpSystem RotateVdxpSecret "
                "RemoveVdxpSystem VerifyVdxpSignature"
            ).split(),
        )
        | _methods(DOCSTORE, ["PutPackage", "GetMetadata", "GetPackage"])
        | _methods(
            SIGVERIFY, ["GetReport", "GetHold", "AddTrustAnchor", "ListTrustAnchors", "RemoveTrustAnchor"]
        )
        | _methods(
            ROUTING,
            (
                "GetDocumentState ListInbox PostStatus ListEvidence VerifyEvidence "
                "ListStatusPackages GetStatusPackage SetWebhook GetWebhook DeleteWebhook "
                "ListWebhookDeliveries RedriveWebhookDeliveries CountOverdue ListOverdue "
                "ListPending GetStatusMessage AckStatusMessage FindDocuments ListSent"
            ).split(),
        )
        | _methods(STATISTICS, ["GetReport", "ReportPaper", "GetPaperHistory", "GetLiveMetrics", "Rebuild"])
    ),
    # sigverify fetches the package it verifies and checks the signer's binding to the sender.
    "sigverify": frozenset(
        _HEALTH | _methods(DOCSTORE, ["GetPackage"]) | _methods(DIRECTORY, ["CheckCertificate"])
    ),
    # routing resolves recipients (successors, groups); statistics lists agencies for the report.
    "routing": frozenset(_HEALTH | _methods(DIRECTORY, ["ResolveRecipients"])),
    "statistics": frozenset(_HEALTH | _methods(DIRECTORY, ["ListAgencies"])),
    # The directory and the docstore call no one; they may still ask a peer's health.
    "directory": frozenset(_HEALTH),
    "docstore": frozenset(_HEALTH),
    # Administrators' tooling: the demo seeder (`lienthong demo`), `lienthong run`'s and the e2e
    # fixtures' health checks, grpcurl through reflection.
    "admin": frozenset(
        _HEALTH
        | _REFLECTION
        | _methods(
            DIRECTORY,
            (
                "UpsertAgency ImportAgencies SetCredential VerifyCredential RegisterCertificate "
                "AddVdxpSystem ListVdxpSystems RotateVdxpSecret VerifyVdxpSignature"
            ).split(),
        )
    ),
}


def refusal(identity: str | None, method: str) -> str | None:
    """Why `identity` may not call `method` (a message for the caller), or None when it may."""
    if identity is None:
        return f"{method}: the client certificate names no lienthong identity (<name>.lienthong.internal)"
    allowed = ALLOWED.get(identity)
    if allowed is None:
        return f"{method}: identity {identity!r} is not known to this platform"
    if method not in allowed:
        return f"{method}: identity {identity!r} may not call this method"
    return None


class AuthorisationInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses, PERMISSION_DENIED, a call whose caller's identity may not call its method."""

    def __init__(self, service: str) -> None:
        self.service = service

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        service = self.service

        def guard(behaviour: Callable[..., Any] | None) -> Callable[..., Any] | None:
            if behaviour is None:
                return None

            def checked(request: Any, context: grpc.ServicerContext) -> Any:
                identity = peer_identity(context)
                reason = refusal(identity, method)
                if reason is not None:
                    # The identity and method only: no metadata, no certificate, no request.
                    log.warning("%s refused a call: %s (peer %s)", service, reason, context.peer())
                    context.abort(grpc.StatusCode.PERMISSION_DENIED, reason)
                return behaviour(request, context)

            return checked

        return handler._replace(
            unary_unary=guard(handler.unary_unary),
            unary_stream=guard(handler.unary_stream),
            stream_unary=guard(handler.stream_unary),
            stream_stream=guard(handler.stream_stream),
        )
