"""`lienthong verify` and the dev-PKI verbs, offline: exit codes, messages, never a traceback."""

from __future__ import annotations

import datetime
import json
import socket
from pathlib import Path

import pytest
from cryptography import x509

from lienthong_common import edxml
from lienthong_common.pades import sign_pdf
from lienthong_common.pdfgen import make_pdf
from lienthong_common.pki import DevCrlServer, DevPki, IssuedIdentity, write_identity
from lienthong_sdk.cli import main

AGENCY = "000.00.00.H49"


def _dead_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir with a dev PKI and no platform running."""
    monkeypatch.setenv("LIENTHONG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LIENTHONG_URL", _dead_url())
    monkeypatch.delenv("LIENTHONG_CLIENT_SECRET", raising=False)
    return tmp_path / "data"


@pytest.fixture
def pki(home: Path) -> DevPki:
    return DevPki.init(home / "pki")


@pytest.fixture
def signer(pki: DevPki, home: Path) -> IssuedIdentity:
    identity = pki.issue_signer(agency_code=AGENCY, common_name="Nguyễn Văn A")
    write_identity(identity, home / "pki" / "agencies", AGENCY)
    return identity


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _package(pdf: bytes, sender: str = AGENCY) -> bytes:
    header = edxml.MessageHeader(
        sender=edxml.Organization(organ_id=sender, organ_name="UBND tỉnh"),
        recipients=[edxml.Organization(organ_id="000.00.02.H49")],
        code_number="7",
        code_notation="UBND-VP",
        promulgation_place="Hạ Long",
        promulgation_date=datetime.date(2026, 1, 5),
        document_type=1,
        document_type_name="Công văn",
        subject="Thử nghiệm",
    )
    attachment = edxml.Attachment(content_id="cid:1", name="cv.pdf", content_type="application/pdf", data=pdf)
    return edxml.build_package(edxml.EdxmlPackage(header=header, attachments=[attachment]))


def test_sign_then_verify_passes_with_the_dev_root(
    capsys: pytest.CaptureFixture[str], signer: IssuedIdentity, tmp_path: Path
) -> None:
    source = _write(tmp_path / "cv.pdf", make_pdf("Công văn"))
    code, out, _ = run(capsys, "sign", source, "--as", AGENCY, "-o", str(tmp_path / "signed.pdf"))
    assert code == 0, out
    code, out, err = run(capsys, "verify", str(tmp_path / "signed.pdf"), "--json")
    assert code == 0, out + err
    report = json.loads(out)
    assert report["indication"] == "TOTAL_PASSED"
    assert report["signatures"][0]["agency"] == AGENCY
    assert "dev PKI root" in report["trust"]["source"]


def test_second_signature_goes_to_the_next_field(
    capsys: pytest.CaptureFixture[str], signer: IssuedIdentity, pki: DevPki, home: Path, tmp_path: Path
) -> None:
    seal = pki.issue_signer(agency_code=AGENCY, common_name="UBND", purpose="seal")
    write_identity(seal, home / "pki" / "agencies", AGENCY + "-seal")
    source = _write(tmp_path / "cv.pdf", make_pdf("Công văn"))
    run(capsys, "sign", source, "--as", AGENCY, "-o", str(tmp_path / "one.pdf"))
    code, out, _ = run(
        capsys,
        "sign",
        str(tmp_path / "one.pdf"),
        "--as",
        AGENCY,
        "--seal",
        "-o",
        str(tmp_path / "two.pdf"),
        "--json",
    )
    assert code == 0 and json.loads(out)["field"] == "Signature2"
    code, out, _ = run(capsys, "verify", str(tmp_path / "two.pdf"), "--json")
    assert code == 0 and len(json.loads(out)["signatures"]) == 2


def test_tampered_pdf_exits_1(
    capsys: pytest.CaptureFixture[str], signer: IssuedIdentity, tmp_path: Path
) -> None:
    signed = sign_pdf(make_pdf("Công văn"), signer)
    at = signed.index(b"Tj")
    path = _write(tmp_path / "t.pdf", signed[:at] + b"TJ" + signed[at + 2 :])
    code, out, err = run(capsys, "verify", path)
    assert code == 1
    assert out.startswith("TOTAL_FAILED/HASH_FAILURE")
    assert "Traceback" not in out + err


def test_untrusted_root_exits_2(
    capsys: pytest.CaptureFixture[str], signer: IssuedIdentity, tmp_path: Path
) -> None:
    other = DevPki.init(tmp_path / "other", common_name="other root")
    path = _write(tmp_path / "s.pdf", sign_pdf(make_pdf("Công văn"), signer))
    code, out, _ = run(capsys, "verify", path, "--trust-root", str(other.root_path))
    assert code == 2
    assert out.startswith("INDETERMINATE/NO_CERTIFICATE_CHAIN_FOUND")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"just some text", "neither a PDF nor an edXML package"),
        (b"", "is empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "neither a PDF nor an edXML package"),
    ],
)
def test_not_a_pdf_or_edxml_exits_1_with_a_message(
    capsys: pytest.CaptureFixture[str], pki: DevPki, tmp_path: Path, content: bytes, expected: str
) -> None:
    code, out, err = run(capsys, "verify", _write(tmp_path / "x.bin", content))
    assert code == 1
    assert expected in out
    assert "Traceback" not in out + err


def test_truncated_pdf_exits_1(
    capsys: pytest.CaptureFixture[str], signer: IssuedIdentity, tmp_path: Path
) -> None:
    signed = sign_pdf(make_pdf("Công văn"), signer)
    code, out, err = run(capsys, "verify", _write(tmp_path / "cut.pdf", signed[: len(signed) // 2]), "--json")
    assert code == 1
    assert json.loads(out)["sub_indication"] == "FORMAT_FAILURE"
    assert "Traceback" not in err


def test_truncated_edxml_exits_1(
    capsys: pytest.CaptureFixture[str], signer: IssuedIdentity, tmp_path: Path
) -> None:
    package = _package(sign_pdf(make_pdf("Công văn"), signer))
    code, out, err = run(capsys, "verify", _write(tmp_path / "cut.edxml", package[: len(package) // 2]))
    assert code == 1
    assert "not a valid edXML package" in out
    assert "Traceback" not in err


def test_missing_file_and_bad_trust_root(
    capsys: pytest.CaptureFixture[str], pki: DevPki, tmp_path: Path
) -> None:
    code, _, err = run(capsys, "verify", str(tmp_path / "nope.pdf"))
    assert code == 1 and "cannot read" in err
    pdf = _write(tmp_path / "u.pdf", make_pdf("x"))
    junk = _write(tmp_path / "junk.pem", b"junk")
    code, _, err = run(capsys, "verify", pdf, "--trust-root", junk)
    assert code == 2 and "holds no readable certificate" in err


def test_edxml_package_verifies_each_pdf(
    capsys: pytest.CaptureFixture[str], signer: IssuedIdentity, tmp_path: Path
) -> None:
    good = _write(tmp_path / "good.edxml", _package(sign_pdf(make_pdf("Công văn"), signer)))
    code, out, _ = run(capsys, "verify", good, "--json")
    report = json.loads(out)
    assert code == 0, report
    assert report["type"] == "edxml" and report["sender"] == AGENCY
    assert report["pdfs"][0]["indication"] == "TOTAL_PASSED"
    assert "checked" in report["envelope"]  # checked, or "not checked" with the reason

    unsigned = _write(tmp_path / "unsigned.edxml", _package(make_pdf("Công văn")))
    code, out, _ = run(capsys, "verify", unsigned)
    assert code == 2 and out.startswith("INDETERMINATE/NO_SIGNATURE")


def test_revoked_signer_exits_1_with_crl_on_loopback(
    capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path
) -> None:
    with DevCrlServer() as server:
        pki = server.attach(DevPki.init(home / "pki", crl_base_url=server.base_url))
        code, out, _ = run(capsys, "pki", "issue", "--agency", AGENCY)
        assert code == 0, out
        signed = _write(tmp_path / "s.pdf", make_pdf("Công văn"))
        run(capsys, "sign", signed, "--as", AGENCY, "-o", str(tmp_path / "signed.pdf"))
        code, out, _ = run(capsys, "pki", "revoke", "--agency", AGENCY)
        assert code == 0, out
        # The CRL is on loopback: refused by default (CRL/OCSP URLs reach public addresses only),
        # the refused source named; the user lets the dev PKI's network through explicitly.
        code, out, _ = run(capsys, "verify", str(tmp_path / "signed.pdf"), "--revocation", "hard-fail")
        assert code == 2, out
        assert out.startswith("INDETERMINATE/TRY_LATER")
        assert f"{server.base_url}/issuing.crl" in out and "refused by the outbound-address checks" in out
        code, out, _ = run(
            capsys,
            "verify",
            str(tmp_path / "signed.pdf"),
            "--revocation",
            "hard-fail",
            "--allow-revocation-cidr",
            "127.0.0.0/8",
        )
        assert code == 1, out
        assert out.startswith("TOTAL_FAILED/REVOKED")
        code, _, _ = run(capsys, "pki", "crl", "-o", str(tmp_path / "issuing.crl"))
        assert code == 0
        crl = x509.load_der_x509_crl((tmp_path / "issuing.crl").read_bytes())
        assert len(list(crl)) == 1
        assert crl.issuer == x509.load_pem_x509_certificate(pki.issuing_cert_pem).subject


def test_default_policy_unreachable_crl_is_try_later_and_soft_fail_says_not_checked(
    capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path
) -> None:
    """A CRL on a loopback port nobody listens on: exit 2 by default; --soft-fail passes, loudly."""
    DevPki.init(home / "pki", crl_base_url=_dead_url() + "/crl")
    code, out, _ = run(capsys, "pki", "issue", "--agency", AGENCY)
    assert code == 0, out
    source = _write(tmp_path / "s.pdf", make_pdf("Công văn"))
    signed = str(tmp_path / "signed.pdf")
    run(capsys, "sign", source, "--as", AGENCY, "-o", signed)
    code, out, err = run(capsys, "verify", signed, "--allow-revocation-cidr", "127.0.0.0/8")
    assert code == 2, out
    assert out.startswith("INDETERMINATE/TRY_LATER")
    assert "unreachable" in out
    assert "Traceback" not in err and "Traceback" not in out
    code, out, err = run(capsys, "verify", signed, "--soft-fail", "--allow-revocation-cidr", "127.0.0.0/8")
    assert code == 0, out
    assert "revocation NOT checked" in out
    assert "Traceback" not in err


def test_verdicts_print_no_traceback(
    capsys: pytest.CaptureFixture[str], home: Path, signer: IssuedIdentity, tmp_path: Path
) -> None:
    other = DevPki.init(tmp_path / "other-root")
    signed = _write(tmp_path / "signed.pdf", sign_pdf(make_pdf("Công văn"), signer))
    code, out, err = run(capsys, "verify", signed, "--trust-root", str(other.root_path))
    assert code == 2, out
    assert "Traceback" not in err, err


def test_a_malformed_revocation_cidr_is_refused_by_name(
    capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path
) -> None:
    DevPki.init(home / "pki")
    signed = _write(tmp_path / "s.pdf", make_pdf("Công văn"))
    code, _, err = run(capsys, "verify", signed, "--allow-revocation-cidr", "10.0.0.0/33")
    assert code == 2
    assert "--allow-revocation-cidr: allowed CIDR '10.0.0.0/33' is not a network" in err
