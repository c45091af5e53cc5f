"""PdfVerifier's speed-ups (lienthong_common.pades.accelerators, installed here as sigverify
installs them) change no verdict: caches on and off agree, nothing goes stale.

The accelerated pyHanko/asn1crypto hot spots are compared with the originals they replaced on
the same inputs; the path-validation cache is checked against every verdict class and against
what could make a cached PASS stale (a new CRL that revokes the signer, a validation time past
expiry, another trust store, time running out on an entry).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils import misc as pdf_misc
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PDF_DELIMITERS, PDF_WHITESPACE
from pyhanko.sign import general as pdf_sign_general
from pyhanko.sign.validation import generic_cms, pdf_embedded

from lienthong_common.outbound import OutboundPolicy
from lienthong_common.pades import (
    CachedRevinfo,
    Indication,
    PdfVerdict,
    PdfVerifier,
    RevocationCache,
    accelerators,
    sign_pdf,
)
from lienthong_common.pades.paths import PathCache
from lienthong_common.pdfgen import make_pdf
from lienthong_common.pki import DevCrlServer, DevPki, IssuedIdentity, certificate_serial

AGENCY = "000.00.00.H49"
LOOPBACK = OutboundPolicy.from_cidrs(["127.0.0.0/8"])  # the tests' CRL server


@pytest.fixture(autouse=True)
def accelerated() -> None:
    assert accelerators.install(), "the installed pyHanko/asn1crypto are the pinned versions"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return DevPki.init(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def signer(pki: DevPki) -> IssuedIdentity:
    return pki.issue_signer(agency_code=AGENCY, common_name="Nguyễn Văn A")


@pytest.fixture(scope="module")
def signed(signer: IssuedIdentity) -> bytes:
    return sign_pdf(make_pdf("Công văn số 1/UBND", ["Kính gửi"], pad_to_bytes=20_000), signer)


def _originals() -> dict[str, Any]:
    return accelerators.ORIGINALS


# ----------------------------------------------------------------------------- accelerators


def _outcome(func: Any, *args: Any) -> tuple[Any, ...]:
    try:
        return ("ok", func(*args))
    except Exception as exc:  # the same exception type and text is the requirement
        return ("raised", type(exc).__name__, str(exc))


def test_token_reader_matches_pyhanko() -> None:
    originals = _originals()
    fast = pdf_misc._read_until_class
    assert fast is not originals["read_until_class"]
    rng = random.Random(5)
    alphabet = b"abcXYZ019#.-+" + PDF_WHITESPACE + PDF_DELIMITERS
    samples = [b"", b"abc", b"Type/Sig", b"x" * 300, b"x" * 300 + b" y", b"12 0 R", b"%comment\n"]
    samples += [bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 600))) for _ in range(300)]
    for data in samples:
        for classes in (PDF_WHITESPACE, PDF_WHITESPACE + PDF_DELIMITERS):
            for start in {0, min(len(data), 3)}:
                results = []
                for func in (fast, originals["read_until_class"]):
                    stream = BytesIO(data)
                    stream.seek(start)
                    results.append((_outcome(func, classes, stream), stream.tell()))
                assert results[0] == results[1], (data, classes, start)
    stream = BytesIO(b"abcdef ghi")  # maxchars is passed through to the original
    assert fast(PDF_WHITESPACE, stream, 3) == (b"abc", False)


def test_name_decoder_matches_pyhanko() -> None:
    originals = _originals()
    fast = generic._decode_name
    names = [b"Type", b"Sig", b"A#20B", b"A#2", b"caf\xc3\xa9", b"\xe9", b"a(b", b"", b"#23", b"x~!"]
    for name in names:
        fast_result = _outcome(fast, name)
        original = _outcome(originals["decode_name"], name)
        assert fast_result == original, name
        if fast_result[0] == "ok":
            assert type(fast_result[1]) is type(original[1])


@pytest.mark.parametrize(
    "byte_range",
    [
        [0, 100, 200, 300],
        [0, 5000],
        [0, 0],
        [],
        [4990, 100],
        [6000, 10],
        [0, 10, 20, 0],
        [10, -5],
        [0, 1, 2],
        [-1, 5],
    ],
)
def test_byte_range_digest_matches_pyhanko(byte_range: list[int]) -> None:
    originals = _originals()
    data = random.Random(7).randbytes(5000)
    results = []
    for func in (pdf_embedded.byte_range_digest, originals["byte_range_digest"]):
        stream = BytesIO(data)
        stream.seek(7)
        results.append((_outcome(func, stream, byte_range, "sha256"), stream.tell()))
    assert results[0] == results[1]


def test_signer_identification_memo_matches_pyhanko(signed: bytes, pki: DevPki) -> None:
    originals = _originals()
    reader_sig = next(iter(_embedded(signed)))
    signed_data = reader_sig.signed_data
    sid = signed_data["signer_infos"][0]["sid"].chosen
    certs = [c.chosen for c in signed_data["certificates"]]
    for cert in certs:
        fast = pdf_sign_general.match_issuer_serial(sid, cert)
        assert fast == originals["match_issuer_serial"](sid, cert)
    assert sum(pdf_sign_general.match_issuer_serial(sid, c) for c in certs) == 1
    info = generic_cms.extract_certs_for_validation(signed_data)
    assert info.signer_cert.dump() == originals["extract_certificate_info"](signed_data).signer_cert.dump()


def _embedded(pdf: bytes) -> Iterator[Any]:
    from pyhanko.pdf_utils.reader import PdfFileReader

    return iter(PdfFileReader(BytesIO(pdf)).embedded_regular_signatures)


# ----------------------------------------------------------------------------- path cache: verdicts


def _summary(verdict: PdfVerdict) -> PdfVerdict:
    return verdict  # dataclass equality covers every field of every signature


def _cases(pki: DevPki, signer: IssuedIdentity, signed: bytes, tmp: Path) -> dict[str, tuple[bytes, Any]]:
    now = datetime.now(UTC)
    tampered = bytearray(signed)
    tampered[200] ^= 0x01
    writer = IncrementalPdfFileWriter(BytesIO(signed))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    stream = generic.StreamObject(stream_data=b"BT /F1 12 Tf 50 50 Td (changed) Tj ET")
    page["/Contents"] = writer.add_object(stream)
    writer.update_container(page)
    out = BytesIO()
    writer.write(out)
    expired = pki.issue_signer(agency_code=AGENCY, common_name="Old", not_after=now + timedelta(days=1))
    future = pki.issue_signer(agency_code=AGENCY, common_name="Future", not_before=now + timedelta(days=2))
    seal = pki.issue_signer(agency_code=AGENCY, common_name="Seal", purpose="seal")
    rsa = pki.issue_signer(agency_code=AGENCY, common_name="RSA", key_type="rsa")
    other = DevPki.init(tmp / "other").issue_signer(agency_code=AGENCY, common_name="Stranger")
    doc = make_pdf("Quyết định 9", ["x"])
    return {
        "valid": (signed, None),
        "tampered": (bytes(tampered), None),
        "modified after signing": (out.getvalue(), None),
        "expired": (sign_pdf(doc, expired), now + timedelta(days=3)),
        "valid before expiry": (sign_pdf(doc, expired), None),
        "not yet valid": (sign_pdf(doc, future), None),
        "untrusted root": (sign_pdf(doc, other), None),
        "signer then seal": (sign_pdf(signed, seal, field_name="Seal"), None),
        "rsa signer": (sign_pdf(doc, rsa), None),
        "unsigned": (doc, None),
        "not a pdf": (b"GIF89a not a pdf", None),
        "truncated": (signed[: len(signed) // 2], None),
    }


def test_path_cache_changes_no_verdict(
    pki: DevPki, signer: IssuedIdentity, signed: bytes, tmp_path: Path
) -> None:
    cases = _cases(pki, signer, signed, tmp_path)
    cached = PdfVerifier([pki.root_cert_pem])
    uncached = PdfVerifier([pki.root_cert_pem], cache_paths=False)
    seen = set()
    for name, (pdf, at) in cases.items():
        expected = uncached.verify(pdf, at=at)
        for attempt in range(3):  # the first fills the cache, the others may hit it
            assert _summary(cached.verify(pdf, at=at)) == _summary(expected), (name, attempt)
        seen.add((expected.indication, expected.sub_indication))
    assert cached._paths._entries, "valid documents were cached"
    assert not uncached._paths._entries
    # the matrix really covers the verdict classes
    assert (Indication.TOTAL_PASSED, None) in seen
    assert (Indication.TOTAL_FAILED, "HASH_FAILURE") in seen
    assert (Indication.INDETERMINATE, "OUT_OF_BOUNDS_NO_POE") in seen
    assert (Indication.INDETERMINATE, "NOT_YET_VALID") in seen
    assert (Indication.INDETERMINATE, "NO_CERTIFICATE_CHAIN_FOUND") in seen
    assert (Indication.INDETERMINATE, "NO_SIGNATURE") in seen
    assert (Indication.TOTAL_FAILED, "FORMAT_FAILURE") in seen


def test_cached_pass_does_not_survive_expiry(pki: DevPki) -> None:
    now = datetime.now(UTC)
    short = pki.issue_signer(agency_code=AGENCY, common_name="Short", not_after=now + timedelta(days=1))
    pdf = sign_pdf(make_pdf("Quyết định 10", ["x"]), short)
    verifier = PdfVerifier([pki.root_cert_pem])
    assert verifier.verify(pdf).passed
    later = verifier.verify(pdf, at=now + timedelta(days=2))
    assert later.sub_indication == "OUT_OF_BOUNDS_NO_POE"
    # and an entry never outlives the earliest notAfter on its path
    (created, expires, _result) = next(iter(verifier._paths._entries.values()))
    assert created < expires <= now + timedelta(days=1, minutes=1)


def test_cached_pass_does_not_cross_trust_stores(pki: DevPki, signed: bytes, tmp_path: Path) -> None:
    trusting = PdfVerifier([pki.root_cert_pem])
    assert trusting.verify(signed).passed
    stranger = DevPki.init(tmp_path / "stranger").root_cert_pem
    other_store = PdfVerifier([stranger])
    assert other_store.verify(signed).sub_indication == "NO_CERTIFICATE_CHAIN_FOUND"
    assert PdfVerifier([stranger, pki.root_cert_pem]).verify(signed).passed


def test_path_cache_entries_expire_and_ignore_a_clock_moving_back() -> None:
    cache = PathCache()
    now = datetime.now(UTC)
    cache.put(b"k", now, now + timedelta(seconds=10), "result")
    assert cache.get(b"k", now + timedelta(seconds=5)) == "result"
    assert cache.get(b"k", now - timedelta(seconds=1)) is None
    cache.put(b"k", now, now + timedelta(seconds=10), "result")
    assert cache.get(b"k", now + timedelta(seconds=10)) is None
    cache.put(b"gone", now, now, "result")  # already expired: not stored
    assert cache.get(b"gone", now) is None


# ----------------------------------------------------------------------------- path cache: revocation


@pytest.fixture
def crl_pki(tmp_path: Path) -> Iterator[tuple[DevPki, DevCrlServer]]:
    with DevCrlServer() as server:
        yield server.attach(DevPki.init(tmp_path / "pki-crl", crl_base_url=server.base_url)), server


@pytest.mark.parametrize("mode", ["soft-fail", "hard-fail"])
def test_revocation_after_a_cached_pass_is_seen(
    crl_pki: tuple[DevPki, DevCrlServer], tmp_path: Path, mode: str
) -> None:
    pki, _server = crl_pki
    signer = pki.issue_signer(agency_code=AGENCY, common_name="Trần Thị B")
    pdf = sign_pdf(make_pdf("Quyết định 11", ["x"]), signer)
    verifier = PdfVerifier(
        [pki.root_cert_pem],
        revocation=mode,  # type: ignore[arg-type]
        revocation_cache=RevocationCache(tmp_path / "cache"),
        revocation_max_age=timedelta(0),  # refetch the CRL every time
        fetch_timeout=2.0,
        outbound=LOOPBACK,
    )
    assert verifier.verify(pdf).passed
    assert verifier.verify(pdf).passed  # served from the path cache
    assert verifier._paths._entries
    pki.revoke(certificate_serial(signer.cert_pem))
    verdict = verifier.verify(pdf)
    assert (verdict.indication, verdict.sub_indication) == (Indication.TOTAL_FAILED, "REVOKED"), (
        verdict.message
    )


def test_stale_revocation_data_is_never_cached(crl_pki: tuple[DevPki, DevCrlServer], tmp_path: Path) -> None:
    pki, server = crl_pki
    pdf = sign_pdf(make_pdf("Quyết định 12", ["x"]), pki.issue_signer(agency_code=AGENCY, common_name="C"))
    cache = RevocationCache(tmp_path / "cache")
    now = datetime.now(UTC)
    stale = pki.crl_der(this_update=now - timedelta(hours=2), validity=timedelta(hours=1))
    entry = CachedRevinfo(der=stale, next_update=now - timedelta(hours=1), fetched_at=now)
    cache.put(f"crl|{server.base_url}/issuing.crl", entry)
    server.available = False
    verifier = PdfVerifier(
        [pki.root_cert_pem],
        revocation="soft-fail",
        revocation_cache=cache,
        fetch_timeout=1.0,
        outbound=LOOPBACK,
    )
    verifier.verify(pdf)
    assert not verifier._paths._entries
