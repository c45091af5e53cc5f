"""Bounded property-based fuzzing of the edXML readers and the PDF verifier's front end.

Whatever bytes arrive, `parse_package` and `parse_status_package` either return a package or
raise `EdxmlError` (`XmlSecurityError` for hostile XML), quickly; `PdfVerifier.verify` always
returns a verdict and never passes a PDF whose signed bytes were changed. `FUZZ_EXAMPLES`
scales the number of examples (default sized for about 20 s in `make test`; `make fuzz` runs more).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from corpus import BILLION_LAUGHS, DEEP_NESTING, WIDE, XXE, XXE_UTF16, bad_base64, package, seeds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lienthong_common import edxml

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # timed by hand below, with room for a busy shared machine
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed with a few byte-level mutations: flips, inserts, deletes, splices, repeats."""
    data = bytearray(draw(st.sampled_from(seeds())))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "splice", "repeat", "token"]))
        at = draw(st.integers(0, max(0, len(data))))
        if kind == "flip" and data:
            at = min(at, len(data) - 1)
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "splice":
            other = draw(st.sampled_from(seeds()))
            start = draw(st.integers(0, max(0, len(other) - 1)))
            data[at:at] = other[start : start + draw(st.integers(1, 200))]
        elif kind == "repeat":
            chunk = bytes(data[at : at + draw(st.integers(1, 32))])
            data[at:at] = chunk * draw(st.integers(1, 50))
        else:
            token = draw(
                st.sampled_from(
                    [
                        b"<!DOCTYPE x>",
                        b"&amp;",
                        b"&#0;",
                        b"]]>",
                        b"<![CDATA[",
                        b"<?pi?>",
                        b"<!--",
                        b"\x00",
                        b'xmlns:edXML="urn:x"',
                        b"</edXML:edXML>",
                        b"0000/99/99",
                        b"\xc3\x28",
                        b"==",
                    ]
                )
            )
            data[at:at] = token
    return bytes(data)


def assert_refused_or_parsed(parse, data: bytes) -> None:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    try:
        parse(data)
    except edxml.EdxmlError:
        pass  # the specific refusal every caller maps to a 4xx
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0, f"took {elapsed:.2f}s"  # milliseconds normally; 5 s means a hang


@FUZZ
@given(mutated())
def test_parse_package_only_raises_edxml_errors(data: bytes) -> None:
    assert_refused_or_parsed(edxml.parse_package, data)


@FUZZ
@given(mutated())
def test_parse_status_package_only_raises_edxml_errors(data: bytes) -> None:
    assert_refused_or_parsed(edxml.parse_status_package, data)


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_are_refused_cleanly(data: bytes) -> None:
    assert_refused_or_parsed(edxml.parse_package, data)
    assert_refused_or_parsed(edxml.parse_status_package, data)


@settings(max_examples=max(20, EXAMPLES // 5), deadline=None, database=None)
@given(
    subject=st.text(min_size=1, max_size=200).filter(lambda s: s.strip()),
    name=st.text(min_size=1, max_size=60).filter(lambda s: s.strip()),
    data=st.binary(max_size=4096),
)
def test_what_we_write_we_read_back(subject: str, name: str, data: bytes) -> None:
    try:
        built = package(name=name, data=data)
    except (edxml.EdxmlError, ValueError):
        return  # text XML cannot carry (control characters) is refused at build time
    parsed = edxml.parse_package(built)
    assert parsed.attachments[0].data == data
    assert edxml.build_package(parsed) == built


@pytest.mark.parametrize(
    "hostile",
    [XXE, BILLION_LAUGHS, XXE_UTF16, DEEP_NESTING, WIDE],
    ids=["xxe", "billion-laughs", "xxe-utf16", "deep-nesting", "wide"],
)
def test_hostile_xml_is_refused_fast_as_unsafe(hostile: bytes) -> None:
    for parse in (edxml.parse_package, edxml.parse_status_package):
        started = time.perf_counter()
        with pytest.raises(edxml.EdxmlError) as refused:
            parse(hostile)
        assert time.perf_counter() - started < 5.0  # well under 1 s normally; machines are shared
        if hostile in (XXE, BILLION_LAUGHS, XXE_UTF16, DEEP_NESTING):
            assert isinstance(refused.value, edxml.XmlSecurityError), refused.value


def test_invalid_base64_is_a_specific_error() -> None:
    bad = bad_base64(package())
    assert bad != package()
    with pytest.raises(edxml.EdxmlError, match="base64"):
        edxml.parse_package(bad)


# ----------------------------------------------------------------------------- the PDF verifier


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, bytes, list[tuple[int, int]]]:
    import re

    from lienthong_common.pades import PdfVerifier, accelerators, sign_pdf
    from lienthong_common.pdfgen import make_pdf
    from lienthong_common.pki import DevPki

    accelerators.install()  # fuzz the verifier as sigverify runs it
    pki = DevPki.init(Path(tmp_path_factory.mktemp("pki")))
    identity = pki.issue_signer(agency_code="000.00.00.H49", common_name="UBND tỉnh Quảng Ninh")
    pdf = sign_pdf(make_pdf("Công văn", ["Kính gửi."]), identity)
    verifier = PdfVerifier([pki.root_cert_pem], revocation="off")
    assert verifier.verify(pdf).indication == "TOTAL_PASSED"
    found = re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", pdf)
    assert found
    a, b, c, d = (int(x) for x in found.groups())
    return verifier, pdf, [(a, a + b), (c, c + d)]


@settings(
    max_examples=max(20, EXAMPLES // 6),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_pdf_verifier_never_raises_and_never_passes_changed_bytes(signed, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    verifier, pdf, ranges = signed
    start, end = data.draw(st.sampled_from(ranges))
    at = data.draw(st.integers(start, end - 1))
    replacement = data.draw(st.integers(0, 255).filter(lambda v: v != pdf[at]))
    changed = pdf[:at] + bytes([replacement]) + pdf[at + 1 :]
    started = time.perf_counter()
    verdict = verifier.verify(changed)  # type: ignore[attr-defined]
    assert time.perf_counter() - started < 10.0
    assert verdict.indication != "TOTAL_PASSED", f"byte {at} changed and the PDF still passed"


@settings(
    max_examples=max(20, EXAMPLES // 6),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(junk=st.binary(max_size=4096), cut=st.floats(0, 0.95))
def test_pdf_verifier_gives_a_verdict_for_any_bytes(signed, junk: bytes, cut: float) -> None:  # type: ignore[no-untyped-def]
    verifier, pdf, _ = signed
    for candidate in (junk, pdf[: int(len(pdf) * cut)], b"%PDF-1.7\n" + junk):
        verdict = verifier.verify(candidate)  # type: ignore[attr-defined]
        assert verdict.indication in {"TOTAL_FAILED", "INDETERMINATE"}
