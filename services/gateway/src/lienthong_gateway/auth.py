"""OAuth2 client credentials: agencies exchange their id and secret for a short-lived JWT.

Tokens carry the credential version; every request checks it against the directory, so a
revoked or rotated credential stops working at once, including tokens already issued.
Signing keys rotate without downtime: the newest key signs, every configured key verifies.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass

import grpc
import jwt
from fastapi import Request

from lienthong.directory.v1 import directory_pb2
from lienthong_common.ids import new_id
from lienthong_gateway.clients import PlatformClients
from lienthong_gateway.problems import Problem

ISSUER = "lienthong-gateway"


@dataclass(frozen=True)
class Caller:
    code: str
    roles: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


def key_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


@dataclass
class TokenIssuer:
    secrets: list[str]  # newest first
    ttl_seconds: int
    deadline: float

    def issue(self, *, subject: str, roles: list[str], version: int) -> tuple[str, int]:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "roles": roles,
            "ver": version,
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": new_id(),
        }
        token = jwt.encode(
            claims, self.secrets[0], algorithm="HS256", headers={"kid": key_id(self.secrets[0])}
        )
        return token, self.ttl_seconds

    def decode(self, token: str) -> dict[str, object]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as error:
            raise Problem(401, f"bearer token is malformed: {error}", kind="invalid-token") from error
        for secret in self.secrets:
            if kid is None or kid == key_id(secret):
                try:
                    return dict(
                        jwt.decode(
                            token,
                            secret,
                            algorithms=["HS256"],
                            issuer=ISSUER,
                            options={"require": ["exp", "sub", "ver"]},
                        )
                    )
                except jwt.ExpiredSignatureError as error:
                    raise Problem(
                        401, "bearer token has expired; request a new one", kind="invalid-token"
                    ) from error
                except jwt.PyJWTError:
                    continue
        raise Problem(401, "bearer token is not valid", kind="invalid-token")


def checked_credentials(client_id: str, secret: str) -> tuple[str, str]:
    """Refuse ids and secrets no credential can have (control characters, absurd lengths)."""
    for name, value in (("client id", client_id), ("client secret", secret)):
        if len(value) > 256 or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise Problem(401, f"the {name} is not a valid credential", kind="invalid-client")
    return client_id, secret


def client_credentials_from(request: Request, form: dict[str, str]) -> tuple[str, str]:
    """client_id/secret from the form body, or from HTTP Basic auth."""
    client_id, secret = _client_credentials_from(request, form)
    return checked_credentials(client_id, secret)


def _client_credentials_from(request: Request, form: dict[str, str]) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
            return client_id, secret
        except (ValueError, UnicodeDecodeError) as error:
            raise Problem(401, "Basic authorization header is malformed", kind="invalid-client") from error
    client_id = form.get("client_id", "")
    secret = form.get("client_secret", "")
    if not client_id or not secret:
        raise Problem(
            401,
            "client credentials are missing: send client_id and client_secret (form fields or HTTP Basic)",
            kind="invalid-client",
        )
    return client_id, secret


def authenticate(clients: PlatformClients, issuer: TokenIssuer, request: Request) -> Caller:
    """The agency behind the request's bearer token, checked against the directory now."""
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        raise Problem(
            401,
            "missing bearer token: obtain one with POST /v1/oauth/token (client credentials)",
            kind="missing-credentials",
        )
    claims = issuer.decode(header[7:].strip())
    subject = str(claims["sub"])
    try:
        current = clients.directory.GetCredentialVersion(
            directory_pb2.CredentialVersionRequest(client_id=subject), timeout=issuer.deadline
        )
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            raise Problem(401, f"credential of {subject} no longer exists", kind="invalid-token") from error
        raise
    if not current.active or current.version != claims["ver"]:
        raise Problem(
            401, f"credential of {subject} was revoked or rotated; request a new token", kind="invalid-token"
        )
    roles = claims.get("roles") or []
    return Caller(code=subject, roles=tuple(str(r) for r in roles) if isinstance(roles, list) else ())
