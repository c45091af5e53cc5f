"""Envelope encryption of secrets the directory must be able to read back (VDXP systems' HMAC
keys), under master keys from the settings. docs/adr/0002-vdxp-system-secrets.md has the why.

Each secret gets its own random 256-bit data key. The secret is encrypted with it (AES-256-GCM,
a random 96-bit nonce, the caller's context, e.g. the system id, as associated data, so a
ciphertext moved to another row does not decrypt); the data key is wrapped with the current
master key (AES key wrap, RFC 3394) and stored beside the ciphertext with that key's id. Only
the wrapped key depends on the master key, so rotating master keys re-wraps 40 bytes per
secret and never touches the ciphertext.

Nothing here puts key material or plaintext in a repr, a log line or an exception message.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from lienthong_common.settings import Settings

log = logging.getLogger(__name__)

ALGORITHM = "A256GCM+A256KW"  # the secret under AES-256-GCM, its data key under AES key wrap
KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
MASTER_KEYS_ENV = "LIENTHONG_DIRECTORY__MASTER_KEYS"
MASTER_KEYS_FILE_ENV = "LIENTHONG_DIRECTORY__MASTER_KEYS_FILE"
DEV_KEY_FILE = "directory-master-keys"


class MasterKeyError(Exception):
    """A master key is missing, malformed or not the one a secret was wrapped with."""


@dataclass(frozen=True)
class MasterKey:
    key_id: str
    material: bytes = field(repr=False)


class MasterKeyRing:
    """The configured master keys: the first wraps new data keys, every one unwraps."""

    def __init__(self, keys: Sequence[MasterKey]) -> None:
        if not keys:
            raise MasterKeyError("no master key given")
        seen: set[str] = set()
        for key in keys:
            if key.key_id in seen:
                raise MasterKeyError(f"master key id '{key.key_id}' is given twice")
            seen.add(key.key_id)
        self._keys = tuple(keys)

    @classmethod
    def parse(cls, text: str, *, source: str) -> MasterKeyRing:
        """`id:base64key` entries separated by commas or whitespace (# starts a comment line)."""
        lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
        entries = [e for e in re.split(r"[,\s]+", "\n".join(lines)) if e]
        if not entries:
            raise MasterKeyError(f"{source} holds no master key")
        keys = []
        for position, entry in enumerate(entries, start=1):
            key_id, colon, encoded = entry.partition(":")
            where = f"{source}, entry {position}"
            if not colon or not _KEY_ID.fullmatch(key_id):
                raise MasterKeyError(
                    f"{where}: expected id:base64key with an id of 1-64 letters, digits, . _ -"
                )
            try:
                material = base64.b64decode(
                    encoded.replace("-", "+").replace("_", "/") + "=" * (-len(encoded) % 4),
                    validate=True,
                )
            except (binascii.Error, ValueError):
                raise MasterKeyError(f"{where} (id '{key_id}'): the key is not base64") from None
            if len(material) != KEY_BYTES:
                raise MasterKeyError(
                    f"{where} (id '{key_id}'): the key is {len(material)} bytes, AES-256 needs {KEY_BYTES}"
                )
            keys.append(MasterKey(key_id, material))
        return cls(keys)

    @property
    def current(self) -> MasterKey:
        return self._keys[0]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(k.key_id for k in self._keys)

    def get(self, key_id: str) -> MasterKey:
        for key in self._keys:
            if key.key_id == key_id:
                return key
        raise MasterKeyError(
            f"master key '{key_id}' is not configured (configured: {', '.join(self.ids)}); keep "
            "it in the master keys until `lienthong-directory vdxp-rewrap` has moved every secret "
            "to the current key"
        )

    def __repr__(self) -> str:
        return f"MasterKeyRing(current={self.current.key_id!r}, ids={self.ids!r})"


def new_master_key_text(key_id: str) -> str:
    """A fresh `id:base64key` entry (what an operator puts in the settings)."""
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode('ascii')}"


@dataclass(frozen=True)
class Sealed:
    """A secret at rest: what the database holds, none of it usable without a master key."""

    algorithm: str
    master_key_id: str
    wrapped_key: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)  # nonce || AES-GCM ciphertext || tag


def seal(ring: MasterKeyRing, plaintext: str, *, context: str) -> Sealed:
    """Encrypt under a fresh data key, wrapped with the current master key."""
    data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = nonce + AESGCM(data_key).encrypt(nonce, plaintext.encode("utf-8"), context.encode())
    master = ring.current
    return Sealed(ALGORITHM, master.key_id, aes_key_wrap(master.material, data_key), ciphertext)


def _data_key(ring: MasterKeyRing, sealed: Sealed, context: str) -> bytes:
    if sealed.algorithm != ALGORITHM:
        raise MasterKeyError(f"the secret of {context} uses unknown algorithm '{sealed.algorithm}'")
    master = ring.get(sealed.master_key_id)
    try:
        return aes_key_unwrap(master.material, sealed.wrapped_key)
    except (InvalidUnwrap, ValueError):
        raise MasterKeyError(
            f"master key '{master.key_id}' does not unwrap the data key of {context}'s secret: "
            "the key configured under that id is not the one that wrapped it"
        ) from None


def unseal(ring: MasterKeyRing, sealed: Sealed, *, context: str) -> str:
    """The plaintext; MasterKeyError (never naming the secret) when it cannot be had."""
    data_key = _data_key(ring, sealed, context)
    nonce, body = sealed.ciphertext[:NONCE_BYTES], sealed.ciphertext[NONCE_BYTES:]
    try:
        return AESGCM(data_key).decrypt(nonce, body, context.encode()).decode("utf-8")
    except (InvalidTag, ValueError):
        raise MasterKeyError(
            f"the encrypted secret of {context} does not decrypt: altered, or copied from another row"
        ) from None


def rewrap(ring: MasterKeyRing, sealed: Sealed, *, context: str) -> Sealed:
    """The same ciphertext with its data key wrapped under the current master key."""
    data_key = _data_key(ring, sealed, context)
    master = ring.current
    return Sealed(sealed.algorithm, master.key_id, aes_key_wrap(master.material, data_key), sealed.ciphertext)


def load_master_keys(settings: Settings) -> MasterKeyRing | None:
    """The master keys the settings give; in development without any, the data directory's own
    (generated once, mode 0600); elsewhere without any, None: VDXP systems stay off.
    MasterKeyError when they are given but unusable."""
    config = settings.directory
    if config.master_keys is not None and config.master_keys_file is not None:
        raise MasterKeyError(f"set {MASTER_KEYS_ENV} or {MASTER_KEYS_FILE_ENV}, not both")
    if config.master_keys is not None:
        return MasterKeyRing.parse(config.master_keys.get_secret_value(), source=MASTER_KEYS_ENV)
    if config.master_keys_file is not None:
        path = config.master_keys_file
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise MasterKeyError(f"{MASTER_KEYS_FILE_ENV}: cannot read {path}: {error.strerror}") from None
        return MasterKeyRing.parse(text, source=f"{MASTER_KEYS_FILE_ENV} ({path})")
    if settings.environment == "development":
        return development_master_keys(settings.data_dir)
    return None


def development_master_keys(data_dir: Path) -> MasterKeyRing:
    """data_dir/directory-master-keys, created (0600, atomically) on first use."""
    path = data_dir / DEV_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        text = (
            "# The directory's development master key (VDXP system secrets), generated once.\n"
            f"# Outside development set {MASTER_KEYS_ENV} or {MASTER_KEYS_FILE_ENV} instead.\n"
            f"{new_master_key_text('dev-' + secrets.token_hex(4))}\n"
        )
        staging = path.with_name(f".{DEV_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                out.write(text)
            try:
                os.link(staging, path)  # whole or absent: a concurrent starter reads the winner's
                log.warning("generated the development master key in %s", path)
            except FileExistsError:
                pass
        finally:
            staging.unlink(missing_ok=True)
    return MasterKeyRing.parse(path.read_text(encoding="utf-8"), source=str(path))
