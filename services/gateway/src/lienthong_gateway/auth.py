"""OAuth2 client credentials: agencies exchange their id and secret for a short-lived JWT.

Tokens carry the credential version; requests check it against the directory, so a revoked or
rotated credential stops working, including tokens already issued. A version the directory
confirmed as current is remembered for `gateway.credential_cache_seconds` (5 s by default), so a
revocation made elsewhere takes effect within that time; a refusal is always asked of the
directory afresh, and a rotation through this gateway forgets the remembered version at once.
Signing keys rotate without downtime: the newest key signs, every configured key verifies.
A token's `kid` names the key that signed it (configured, or random per gateway process: never
derived from the secret); it only says which key to try first.

The development placeholder secret is public (it is in this repository): a gateway holding it
refuses to start unless it listens only on loopback (`refuse_placeholder_secret`).
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import time
from dataclasses import dataclass

import grpc
import jwt
from fastapi import Request

from lienthong.directory.v1 import directory_pb2
from lienthong_common.ids import new_id
from lienthong_common.settings import PLACEHOLDER_SECRET, GatewaySettings
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


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    secret: str


def random_key_id() -> str:
    """A key id that says nothing about the key."""
    return secrets.token_hex(6)


def signing_keys(gateway: GatewaySettings) -> list[SigningKey]:
    """The gateway's keys, the signing one first: its id configured or random, earlier ones random."""
    current = SigningKey(gateway.jwt_key_id or random_key_id(), gateway.jwt_secret.get_secret_value())
    earlier = [SigningKey(random_key_id(), s.get_secret_value()) for s in gateway.previous_jwt_secrets]
    return [current, *earlier]


def listens_only_on_loopback(host: str) -> bool:
    """Whether an HTTP listen address is reachable from this machine only."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class PlaceholderSecretError(RuntimeError):
    pass


def refuse_placeholder_secret(gateway: GatewaySettings, host: str) -> None:
    """Refuse the public development secret (signing or still verifying) on a gateway others can reach."""
    keys = [gateway.jwt_secret, *gateway.previous_jwt_secrets]
    if listens_only_on_loopback(host) or all(k.get_secret_value() != PLACEHOLDER_SECRET for k in keys):
        return
    raise PlaceholderSecretError(
        "LIENTHONG_GATEWAY__JWT_SECRET (or one of …__PREVIOUS_JWT_SECRETS) is the development "
        f"placeholder, which anyone can sign tokens with, and the gateway would listen on {host!r}: "
        "set a random secret (e.g. `openssl rand -hex 32`), or listen on 127.0.0.1 only. "
        "`lienthong run` generates one per data directory."
    )


@dataclass
class TokenIssuer:
    keys: list[SigningKey]  # the signing key first
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
        signing = self.keys[0]
        token = jwt.encode(claims, signing.secret, algorithm="HS256", headers={"kid": signing.key_id})
        return token, self.ttl_seconds

    def decode(self, token: str) -> dict[str, object]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as error:
            raise Problem(401, f"bearer token is malformed: {error}", kind="invalid-token") from error
        # The key the kid names first; then the others (another replica, or this one before a
        # restart, named the same key by another random id).
        keys = sorted(self.keys, key=lambda k: k.key_id != kid)
        for key in keys:
            try:
                return dict(
                    jwt.decode(
                        token,
                        key.secret,
                        algorithms=["HS256"],
                        issuer=ISSUER,
                        options={"require": ["exp", "sub", "ver"]},
                    )
                )
            except jwt.ExpiredSignatureError as error:  # only after the signature checked out
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


class CredentialVersions:
    """The directory's current version of each credential, remembered for `ttl` seconds after
    the directory confirmed it (0 = ask on every request). Only confirmations are remembered: a
    token whose version does not match is checked live, so a rotation is seen at once by new
    tokens, and a revocation within `ttl` by old ones."""

    def __init__(self, ttl: float, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._confirmed: dict[str, tuple[float, int]] = {}  # client id -> (valid until, version)

    def is_current(self, subject: str, version: object) -> bool:
        hit = self._confirmed.get(subject)
        return hit is not None and hit[1] == version and hit[0] > time.monotonic()

    def remember(self, subject: str, version: int) -> None:
        if self.ttl <= 0:
            return
        if len(self._confirmed) >= self.max_entries:
            self._confirmed.clear()  # a crude bound: agencies number in the thousands
        self._confirmed[subject] = (time.monotonic() + self.ttl, version)

    def forget(self, subject: str) -> None:
        self._confirmed.pop(subject, None)


def check_credential_version(
    clients: PlatformClients,
    issuer: TokenIssuer,
    subject: str,
    version: object,
    versions: CredentialVersions | None = None,
) -> None:
    """401 unless `version` is the directory's current, active version of `subject`."""
    if versions is not None and versions.is_current(subject, version):
        return
    try:
        current = clients.directory.GetCredentialVersion(
            directory_pb2.CredentialVersionRequest(client_id=subject), timeout=issuer.deadline
        )
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            if versions is not None:
                versions.forget(subject)
            raise Problem(401, f"credential of {subject} no longer exists", kind="invalid-token") from error
        raise
    if not current.active or current.version != version:
        if versions is not None:
            versions.forget(subject)
        raise Problem(
            401, f"credential of {subject} was revoked or rotated; request a new token", kind="invalid-token"
        )
    if versions is not None:
        versions.remember(subject, current.version)


def authenticate(
    clients: PlatformClients,
    issuer: TokenIssuer,
    request: Request,
    versions: CredentialVersions | None = None,
) -> Caller:
    """The agency behind the request's bearer token, its version checked against the directory
    (or its confirmation of the last `versions.ttl` seconds)."""
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        raise Problem(
            401,
            "missing bearer token: obtain one with POST /v1/oauth/token (client credentials)",
            kind="missing-credentials",
        )
    claims = issuer.decode(header[7:].strip())
    subject = str(claims["sub"])
    check_credential_version(clients, issuer, subject, claims["ver"], versions)
    roles = claims.get("roles") or []
    return Caller(code=subject, roles=tuple(str(r) for r in roles) if isinstance(roles, list) else ())
