"""Speed-ups for pyHanko and asn1crypto: opt-in, version-guarded, installed by sigverify only.

Profiling verify() on a 100 KB PDF showed ~85% of the time in two pure-Python hot spots:
pyHanko's hex-string tokenizer (one generator step per character of the signature's
/Contents) and asn1crypto's RFC 4518 string preparation, recomputed for every distinguished
name comparison; path validation and re-parsing the same certificates took most of the rest
(docs/adr/0034). The replacements below give identical results (the originals remain the
fallback for anything unusual) and the path cache of :mod:`lienthong_common.pades.paths` hangs
off one of them.

They replace private functions of third-party packages process-wide, so they are never a side
effect (docs/adr/0081): :func:`install` is called explicitly, by sigverify's start-up (its
service process and each verification worker) and by the benchmarks that measure it; the CLI
and the SDK never call it. It refuses, with a warning, unless the installed pyHanko,
pyhanko-certvalidator and asn1crypto are exactly the versions the replacements were checked
against (:data:`PINNED`, the versions of constraints.txt); a test keeps the two in step, and
the comparison tests (patched against original, on random input and on a corpus of real signed
PDFs) must pass again before :data:`PINNED` moves.
"""

from __future__ import annotations

import binascii
import contextlib
import dataclasses
import functools
import importlib.metadata
import io
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from pyhanko.pdf_utils import generic as pdf_generic
from pyhanko.pdf_utils import misc as pdf_misc
from pyhanko.sign import general as pdf_sign_general
from pyhanko.sign.validation import generic_cms
from pyhanko.sign.validation import pdf_embedded as pdf_embedded_module
from pyhanko_certvalidator import ValidationContext

from lienthong_common.pades.paths import PathScope

log = logging.getLogger(__name__)

# The exact versions the replacements were compared with (constraints.txt pins the same).
PINNED: dict[str, str] = {
    "pyHanko": "0.38.0",
    "pyhanko-certvalidator": "0.33.0",
    "asn1crypto": "1.5.1",
}

_lock = threading.Lock()
# (owner, attribute, what owner.__dict__ held before, or _ABSENT): undone by uninstall().
_ABSENT: Any = object()
_patches: list[tuple[Any, str, Any]] = []
# What each replacement replaced, by attribute name (the tests compare both on the same inputs).
ORIGINALS: dict[str, Any] = {}
_HEX_STRING = re.compile(rb"[0-9A-Fa-f]*")
_PDF_WHITESPACE = b" \n\r\t\f\x00"
# A PDF name without escapes: printable ASCII, no delimiter, whitespace or "#".
_PLAIN_NAME = re.compile(rb"[!-~]*")
_NAME_EXCLUDED = re.compile(rb"[()<>\[\]{}/%#]")
_TOKEN_CHUNK = 256


def installed() -> bool:
    """Whether this process runs with the replacements."""
    return bool(_patches)


def installed_versions() -> dict[str, str | None]:
    """The installed version of each pinned distribution (None when it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in PINNED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def version_mismatches(versions: Mapping[str, str | None] | None = None) -> list[str]:
    """One line per pinned distribution whose installed version differs (empty: all match)."""
    found = installed_versions() if versions is None else versions
    return [
        f"{name} {found.get(name) or 'not installed'} (the accelerators are checked against {pinned})"
        for name, pinned in PINNED.items()
        if found.get(name) != pinned
    ]


def install(*, versions: Mapping[str, str | None] | None = None) -> bool:
    """Replace the hot pyHanko/asn1crypto functions in this process (once); True when they are in.

    Refuses, logging a warning and leaving the originals, when the installed versions (or
    ``versions``, for tests) are not exactly :data:`PINNED`: verification then runs unaccelerated
    but correct."""
    mismatches = version_mismatches(versions)
    if mismatches:
        log.warning(
            "PAdES accelerators not installed, verification runs unaccelerated: %s",
            "; ".join(mismatches),
        )
        return False
    with _lock:
        if not _patches:
            _install()
    return True


def uninstall() -> None:
    """Put every original back (for tests comparing the two in one process)."""
    with _lock:
        while _patches:
            owner, attribute, previous = _patches.pop()
            if previous is _ABSENT:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, previous)
        ORIGINALS.clear()


def _patch(owner: Any, attribute: str, replacement: Any) -> None:
    previous = vars(owner).get(attribute, _ABSENT)
    ORIGINALS[attribute.strip("_")] = getattr(owner, attribute)
    _patches.append((owner, attribute, previous))
    setattr(owner, attribute, replacement)


def _install() -> None:
        # pyHanko's internals, patched below (typed loosely: they are not its public API).
        cms_module: Any = generic_cms
        embedded_module: Any = pdf_embedded_module
        general_module: Any = pdf_sign_general
        original_read_hex = pdf_generic.read_hex_string_from_stream

        def read_hex_string_from_stream(stream: Any) -> Any:
            start = stream.tell()
            stream.read(1)  # the opening "<"
            buffered = b""
            size = 256  # most hex strings are short (/ID); a signature's /Contents takes a few reads
            while (end := buffered.find(b">")) < 0:
                chunk = stream.read(size)
                if not chunk:
                    break
                buffered += chunk
                size = min(size * 4, 1 << 20)
            if end < 0 or b"%" in buffered[:end]:
                # truncated, or a comment inside the string: let the original report or parse it
                stream.seek(start)
                return original_read_hex(stream)
            stream.seek(start + 1 + end + 1)
            digits = buffered[:end].translate(None, _PDF_WHITESPACE)
            if not _HEX_STRING.fullmatch(digits):
                stream.seek(start)
                return original_read_hex(stream)  # raises the usual PdfStreamError
            if len(digits) % 2:
                digits += b"0"
            return pdf_generic.pdf_string(binascii.unhexlify(digits))

        _patch(pdf_generic, "read_hex_string_from_stream", read_hex_string_from_stream)

        # pyHanko reads every name, number and keyword one byte per generator step; find the
        # end of the token with one regex search over a chunk instead. Same bytes returned,
        # same stream position (just past the stop byte, or at EOF), same EOF flag.
        original_read_until_class = pdf_misc._read_until_class

        @functools.lru_cache(maxsize=16)
        def stop_pattern(class_chars: bytes) -> re.Pattern[bytes]:
            return re.compile(b"[" + b"".join(re.escape(bytes((c,))) for c in class_chars) + b"]")

        def read_until_class(class_chars: bytes, stream: Any, maxchars: int | None = None) -> Any:
            if maxchars:
                return original_read_until_class(class_chars, stream, maxchars=maxchars)
            start = stream.tell()
            chunk = stream.read(_TOKEN_CHUNK)
            found = stop_pattern(class_chars).search(chunk)
            if found is not None:
                stream.seek(start + found.start() + 1)
                return chunk[: found.start()], False
            if len(chunk) < _TOKEN_CHUNK:
                return chunk, True  # ran into EOF; the stream is there, as after the original
            stream.seek(start)
            return original_read_until_class(class_chars, stream, maxchars=maxchars)

        _patch(pdf_misc, "_read_until_class", read_until_class)

        # Names without "#" escapes (nearly all of them) decode to themselves.
        original_decode_name = pdf_generic._decode_name

        def decode_name(name_bytes: bytes) -> Any:
            if _PLAIN_NAME.fullmatch(name_bytes) and not _NAME_EXCLUDED.search(name_bytes):
                return pdf_generic.NameObject("/" + name_bytes.decode("ascii"))
            return original_decode_name(name_bytes)

        _patch(pdf_generic, "_decode_name", decode_name)

        original_prep = asn1_x509.NameTypeAndValue._ldap_string_prep

        @functools.lru_cache(maxsize=4096)
        def cached_prep(string: str) -> str:
            return original_prep(None, string)  # type: ignore[no-any-return]

        def ldap_string_prep(self: Any, string: Any) -> Any:
            if isinstance(string, str):
                return cached_prep(string)
            return original_prep(self, string)

        _patch(asn1_x509.NameTypeAndValue, "_ldap_string_prep", ldap_string_prep)

        # RFC 5280 name equality is a function of the two encodings: memoise it by DER, so the
        # issuer/subject comparisons of path building stop re-parsing the same CA names.
        original_eq = asn1_x509.RDNSequence.__eq__

        @functools.lru_cache(maxsize=8192)
        def names_equal(left: bytes, right: bytes) -> bool:
            return bool(original_eq(asn1_x509.RDNSequence.load(left), asn1_x509.RDNSequence.load(right)))

        def rdn_sequence_eq(self: Any, other: Any) -> bool:
            if not isinstance(other, asn1_x509.RDNSequence):
                return False
            left, right = self.dump(), other.dump()
            return left == right or names_equal(left, right)

        _patch(asn1_x509.RDNSequence, "__eq__", rdn_sequence_eq)

        # The registry keys certificates by Name.hashable (the same RFC 4518 preparation).
        original_hashable = asn1_x509.RDNSequence.hashable.fget

        @functools.lru_cache(maxsize=8192)
        def hashable_of(der: bytes) -> str:
            return str(original_hashable(asn1_x509.RDNSequence.load(der)))

        _patch(asn1_x509.RDNSequence, "hashable", property(lambda self: hashable_of(self.dump())))

        # Path validation of the signer's certificate, cached for contexts PdfVerifier tags
        # (see _PathCache); any other caller of pyHanko gets the original behaviour.
        original_validate_cert_usage = cms_module.validate_cert_usage

        async def validate_cert_usage(
            cert: Any,
            validation_context: ValidationContext,
            key_usage_settings: Any,
            paths: Any,
            pkix_validation_params: Any = None,
        ) -> Any:
            scope: PathScope | None = getattr(validation_context, "_lienthong_path_scope", None)
            if scope is None:
                return await original_validate_cert_usage(
                    cert, validation_context, key_usage_settings, paths, pkix_validation_params
                )
            now = validation_context.moment
            try:
                key = scope.key(cert, validation_context, key_usage_settings, pkix_validation_params)
            except Exception:  # noqa: BLE001 - an odd certificate: validate it uncached
                key = None
            hit = scope.cache.get(key, now) if key is not None else None
            if hit is not None:
                await paths.cancel()
                return hit
            result = await original_validate_cert_usage(
                cert, validation_context, key_usage_settings, paths, pkix_validation_params
            )
            if key is not None and result.error_subindic is None and result.success_result is not None:
                try:
                    scope.cache.put(key, now, scope.expiry(result, now), result)
                except Exception as exc:  # noqa: BLE001 - not cacheable; the result stands
                    log.debug("path validation result not cached: %s", exc)
            return result

        _patch(cms_module, "validate_cert_usage", validate_cert_usage)

        # pyHanko extracts the signer's certificate (and checks its ESS signing-certificate
        # attribute) once for EmbeddedPdfSignature.signer_cert and again in
        # cms_basic_validation, from the same SignedData object: remember the first answer
        # on that object (a pure function of it; errors are not remembered).
        original_extract = cms_module.extract_certs_for_validation

        def extract_certs_for_validation(signed_data: Any) -> Any:
            known = getattr(signed_data, "_lienthong_certs", None)
            if known is not None:
                return known
            result = original_extract(signed_data)
            with contextlib.suppress(AttributeError):
                signed_data._lienthong_certs = result
            return result

        _patch(cms_module, "extract_certs_for_validation", extract_certs_for_validation)

        # One parsed Certificate object per distinct DER, shared by every document that embeds
        # it: asn1crypto memoises what it derives (issuer/serial, key identifiers, names, the
        # public key) on the object, so the signer's and CAs' certificates are decoded once per
        # process instead of once per PDF. Same bytes, so the same values; nothing mutates them.
        original_extract_info = cms_module.extract_certificate_info
        known_certs: dict[bytes, Any] = {}
        known_lock = threading.Lock()

        def canonical(cert: Any) -> Any:
            der = cert.dump()
            with known_lock:
                found = known_certs.get(der)
                if found is None:
                    if len(known_certs) >= 4096:
                        known_certs.clear()
                    found = known_certs[der] = cert
            return found

        def extract_certificate_info(signed_data: Any) -> Any:
            info = original_extract_info(signed_data)
            return dataclasses.replace(
                info,
                signer_cert=canonical(info.signer_cert),
                other_certs=[canonical(c) for c in info.other_certs],
            )

        _patch(cms_module, "extract_certificate_info", extract_certificate_info)

        # Matching the signer identifier and the ESS signing-certificate attribute against a
        # certificate are pure functions of the encodings involved, identical document after
        # document for one signer: memoise them by DER (an exception is never memoised).
        original_match = general_module.match_issuer_serial
        original_check_ess = cms_module.check_ess_certid

        @functools.lru_cache(maxsize=4096)
        def match_by_der(kind: Any, expected: bytes, cert: bytes) -> bool:
            return bool(original_match(kind.load(expected), asn1_x509.Certificate.load(cert)))

        def match_issuer_serial(expected: Any, cert: Any) -> bool:
            try:
                kind: Any = type(expected)
                return match_by_der(kind, expected.dump(), cert.dump())
            except Exception:  # noqa: BLE001 - let the original decide (and raise) on odd input
                return bool(original_match(expected, cert))

        @functools.lru_cache(maxsize=4096)
        def check_ess_by_der(kind: Any, certid: bytes, cert: bytes) -> bool:
            return bool(original_check_ess(asn1_x509.Certificate.load(cert), kind.load(certid)))

        def check_ess_certid(cert: Any, certid: Any) -> bool:
            try:
                kind: Any = type(certid)
                return check_ess_by_der(kind, certid.dump(), cert.dump())
            except Exception:  # noqa: BLE001 - let the original decide (and raise) on odd input
                return bool(original_check_ess(cert, certid))

        _patch(general_module, "match_issuer_serial", match_issuer_serial)

        # The signed byte ranges of an in-memory PDF: hash slices of the buffer directly (one
        # update per range) instead of copying it through a chunk buffer. Same digest, same
        # total; anything unusual (another stream type, negative offsets, an odd-length
        # /ByteRange) goes to the original, which raises as before.
        original_byte_range_digest = embedded_module.byte_range_digest

        def byte_range_digest(stream: Any, byte_range: Any, md_algorithm: str, **kwargs: Any) -> Any:
            ranges = list(byte_range)
            if (
                kwargs
                or type(stream) is not io.BytesIO
                or len(ranges) % 2
                or any(not isinstance(v, int) or v < 0 for v in ranges)
            ):
                return original_byte_range_digest(stream, byte_range, md_algorithm, **kwargs)
            md = hashes.Hash(general_module.get_pyca_cryptography_hash(md_algorithm))
            total = 0
            end = stream.tell()
            with stream.getbuffer() as view:
                size = len(view)
                for start, length in zip(ranges[::2], ranges[1::2], strict=True):
                    if length > 0:
                        md.update(view[start : start + length])
                    end = start + max(0, min(length, size - start))  # where reading stopped
                    total += length
            stream.seek(end)
            return total, md.finalize()

        _patch(embedded_module, "byte_range_digest", byte_range_digest)
        _patch(cms_module, "check_ess_certid", check_ess_certid)
