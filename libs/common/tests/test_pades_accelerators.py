"""The PAdES accelerators are opt-in and version-guarded, and change no verdict.

- using pades (and the CLI's `verify`) in a fresh interpreter leaves pyHanko and asn1crypto
  exactly as installed; only an explicit `accelerators.install()` replaces anything;
- a corpus of real signed PDFs (valid, tampered, modified after signing, expired, not yet
  valid, revoked through a real CRL, untrusted, unsigned) gets the same verdicts with and
  without them;
- `install()` refuses, with a warning, when an installed version is not the pinned one.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils import misc as pdf_misc
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from lienthong_common.outbound import OutboundPolicy
from lienthong_common.pades import (
    Indication,
    PdfVerdict,
    PdfVerifier,
    RevocationCache,
    accelerators,
    sign_pdf,
)
from lienthong_common.pdfgen import make_pdf
from lienthong_common.pki import DevCrlServer, DevPki, certificate_serial

AGENCY = "000.00.00.H49"
ROOT = Path(__file__).resolve().parents[3]

# Every attribute install() replaces, as "module:owner.attribute" (owner "" for a module's own).
TARGETS = [
    "pyhanko.pdf_utils.generic:.read_hex_string_from_stream",
    "pyhanko.pdf_utils.generic:._decode_name",
    "pyhanko.pdf_utils.misc:._read_until_class",
    "asn1crypto.x509:NameTypeAndValue._ldap_string_prep",
    "asn1crypto.x509:RDNSequence.__eq__",
    "asn1crypto.x509:RDNSequence.hashable",
    "pyhanko.sign.validation.generic_cms:.validate_cert_usage",
    "pyhanko.sign.validation.generic_cms:.extract_certs_for_validation",
    "pyhanko.sign.validation.generic_cms:.extract_certificate_info",
    "pyhanko.sign.validation.generic_cms:.check_ess_certid",
    "pyhanko.sign.general:.match_issuer_serial",
    "pyhanko.sign.validation.pdf_embedded:.byte_range_digest",
]

# Run in a fresh interpreter: snapshot every target, use pades as the CLI and SDK do, compare;
# then install() and compare again (so the check can see a replacement when there is one).
_FRESH = r"""
import importlib, json, sys
from pathlib import Path

targets = json.loads(sys.argv[1])
def current():
    found = {}
    for target in targets:
        module, path = target.split(":")
        owner = importlib.import_module(module)
        owner_name, attribute = path.split(".", 1) if not path.startswith(".") else ("", path[1:])
        if owner_name:
            owner = getattr(owner, owner_name)
        found[target] = vars(owner).get(attribute, getattr(owner, attribute))
    return found

before = current()
from lienthong_common.pades import PdfVerifier, verify_pdf
from lienthong_common.pdfgen import make_pdf
from lienthong_common.pki import DevPki
from lienthong_common.pades import sign_pdf
from lienthong_sdk.cli import main as cli

pki = DevPki.init(Path(sys.argv[2]) / "pki")
pdf = sign_pdf(make_pdf("Công văn 1"), pki.issue_signer(agency_code="000.00.00.H49", common_name="A"))
assert PdfVerifier([pki.root_cert_pem]).verify(pdf).passed
assert verify_pdf(pdf, trust_roots=[pki.root_cert_pem]).passed
(Path(sys.argv[2]) / "signed.pdf").write_bytes(pdf)
try:
    cli(["verify", str(Path(sys.argv[2]) / "signed.pdf"), "--trust-root", str(pki.root_path)])
    code = 0
except SystemExit as exit:
    code = exit.code
after_use = current()
from lienthong_common.pades import accelerators
installed = accelerators.install()
after_install = current()
print(json.dumps({
    "cli_exit": code,
    "changed_by_use": [t for t in targets if after_use[t] is not before[t]],
    "installed": installed,
    "unchanged_by_install": [t for t in targets if after_install[t] is before[t]],
}))
"""


def test_using_pades_and_the_cli_patches_nothing_until_install_is_called(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _FRESH, json.dumps(TARGETS), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={"LIENTHONG_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["cli_exit"] == 0
    assert report["changed_by_use"] == []
    assert report["installed"] is True
    assert report["unchanged_by_install"] == []  # every target above really is replaced by install()


def test_every_replaced_attribute_is_listed_in_the_targets() -> None:
    accelerators.install()
    assert len(accelerators._patches) == len(TARGETS)


@pytest.fixture
def originals_then_reinstalled() -> Iterator[None]:
    accelerators.uninstall()
    yield
    accelerators.install()


def test_install_refuses_with_a_warning_when_a_version_is_not_the_pinned_one(
    originals_then_reinstalled: None, caplog: pytest.LogCaptureFixture
) -> None:
    original = pdf_misc._read_until_class
    versions = {**accelerators.PINNED, "pyHanko": "0.39.0"}
    with caplog.at_level(logging.WARNING, logger=accelerators.__name__):
        assert accelerators.install(versions=versions) is False
    assert not accelerators.installed()
    assert pdf_misc._read_until_class is original
    assert "PAdES accelerators not installed" in caplog.text
    assert "pyHanko 0.39.0 (the accelerators are checked against 0.38.0)" in caplog.text
    missing = {**accelerators.PINNED, "asn1crypto": None}
    assert accelerators.install(versions=missing) is False
    assert accelerators.install(versions=dict(accelerators.PINNED)) is True
    assert pdf_misc._read_until_class is not original


def test_uninstall_puts_every_original_back(originals_then_reinstalled: None) -> None:
    from asn1crypto import x509 as asn1_x509

    eq, read = asn1_x509.RDNSequence.__eq__, pdf_misc._read_until_class
    assert accelerators.install()
    assert asn1_x509.RDNSequence.__eq__ is not eq
    accelerators.uninstall()
    assert (asn1_x509.RDNSequence.__eq__, pdf_misc._read_until_class) == (eq, read)
    assert "__eq__" not in vars(asn1_x509.RDNSequence) or vars(asn1_x509.RDNSequence)["__eq__"] is eq


def test_the_pinned_versions_are_those_of_constraints_txt() -> None:
    pins = dict(
        re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line).groups()  # type: ignore[union-attr]
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if re.match(r"[A-Za-z0-9_.-]+==", line)
    )
    assert {name: pins[name] for name in accelerators.PINNED} == accelerators.PINNED


# ----------------------------------------------------------------------------- same verdicts


@pytest.fixture(scope="module")
def crl_server() -> Iterator[DevCrlServer]:
    with DevCrlServer() as server:
        yield server


def _corpus(pki: DevPki, plain: DevPki, tmp: Path) -> dict[str, tuple[bytes, datetime | None]]:
    """Real signed PDFs; `plain` (no CRL) signs those validated at a later moment, when the
    CRL would be stale."""
    now = datetime.now(UTC)
    doc = make_pdf("Quyết định 81/QĐ-UBND", ["Kính gửi"], pad_to_bytes=20_000)
    valid = sign_pdf(doc, pki.issue_signer(agency_code=AGENCY, common_name="Nguyễn Văn A"))
    tampered = bytearray(valid)
    tampered[300] ^= 0x01
    writer = IncrementalPdfFileWriter(BytesIO(valid))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    page["/Contents"] = writer.add_object(generic.StreamObject(stream_data=b"BT (changed) Tj ET"))
    writer.update_container(page)
    modified = BytesIO()
    writer.write(modified)
    short = plain.issue_signer(agency_code=AGENCY, common_name="Old", not_after=now + timedelta(days=1))
    future = pki.issue_signer(agency_code=AGENCY, common_name="Future", not_before=now + timedelta(days=2))
    revoked = pki.issue_signer(agency_code=AGENCY, common_name="Revoked")
    revoked_pdf = sign_pdf(doc, revoked)
    pki.revoke(certificate_serial(revoked.cert_pem))
    seal = pki.issue_signer(agency_code=AGENCY, common_name="Seal", purpose="seal")
    stranger = DevPki.init(tmp / "stranger").issue_signer(agency_code=AGENCY, common_name="Stranger")
    return {
        "valid": (valid, None),
        "tampered": (bytes(tampered), None),
        "modified after signing": (modified.getvalue(), None),
        "expired": (sign_pdf(doc, short), now + timedelta(days=3)),
        "not yet valid": (sign_pdf(doc, future), None),
        "revoked": (revoked_pdf, None),
        "signer then seal": (sign_pdf(valid, seal, field_name="Seal"), None),
        "untrusted": (sign_pdf(doc, stranger), None),
        "unsigned": (doc, None),
        "not a pdf": (b"%PDF-1.7 truncated", None),
    }


def _verdicts(
    pki: DevPki, plain: DevPki, cache: RevocationCache, corpus: dict[str, tuple[bytes, datetime | None]]
) -> dict[str, PdfVerdict]:
    verifier = PdfVerifier(
        [pki.root_cert_pem, plain.root_cert_pem],
        revocation="soft-fail",
        revocation_cache=cache,
        outbound=OutboundPolicy.from_cidrs(["127.0.0.0/8"]),
    )
    return {name: verifier.verify(pdf, at=at) for name, (pdf, at) in corpus.items()}


def test_accelerated_and_original_verdicts_are_identical_on_real_signed_pdfs(
    crl_server: DevCrlServer, tmp_path: Path, originals_then_reinstalled: None
) -> None:
    pki = crl_server.attach(DevPki.init(tmp_path / "pki", crl_base_url=crl_server.base_url))
    plain = DevPki.init(tmp_path / "plain", common_name="plain root")
    corpus = _corpus(pki, plain, tmp_path)
    cache = RevocationCache(None)  # shared: both runs use the same CRL bytes and evidence lines
    _verdicts(pki, plain, cache, {"warm-up": corpus["valid"]})
    original = _verdicts(pki, plain, cache, corpus)
    assert accelerators.install() and accelerators.installed()
    accelerated = _verdicts(pki, plain, cache, corpus)
    again = _verdicts(pki, plain, cache, corpus)  # the second pass may be served from the path cache
    for name in corpus:
        assert accelerated[name] == original[name], name  # every field of every signature
        assert again[name] == original[name], name
    classes = {(v.indication, v.sub_indication) for v in original.values()}
    assert {
        (Indication.TOTAL_PASSED, None),
        (Indication.TOTAL_FAILED, "HASH_FAILURE"),
        (Indication.TOTAL_FAILED, "REVOKED"),
        (Indication.TOTAL_FAILED, "FORMAT_FAILURE"),
        (Indication.INDETERMINATE, "OUT_OF_BOUNDS_NO_POE"),
        (Indication.INDETERMINATE, "NOT_YET_VALID"),
        (Indication.INDETERMINATE, "NO_CERTIFICATE_CHAIN_FOUND"),
        (Indication.INDETERMINATE, "NO_SIGNATURE"),
    } <= classes, classes
