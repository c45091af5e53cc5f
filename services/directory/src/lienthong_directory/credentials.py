"""Client secrets: salted scrypt hashes, compared in constant time; the secret is never stored."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32
MIN_SECRET_LENGTH = 12


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_KEY_BYTES)


def hash_secret(secret: str) -> str:
    """`scrypt$n$r$p$salt$hash` with a fresh random salt."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _derive(secret, salt, _N, _R, _P)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


def secret_matches(secret: str, stored: str) -> bool:
    """Whether `secret` hashes to `stored`; constant-time in the comparison."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        actual = _derive(secret, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


@functools.cache
def dummy_hash() -> str:
    """Verified against when the client is unknown, so that costs as much as a wrong secret."""
    return hash_secret(secrets.token_urlsafe(16))
