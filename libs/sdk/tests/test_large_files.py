"""Large files in the SDK and CLI (issue 24): the builder streams attached files into a signed
package, `lienthong send` refuses what the gateway would refuse before uploading anything, and
`lienthong fetch` decodes attachments from the package file as it reads it."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from lienthong_common.edxml import parse_package
from lienthong_common.edxml.signature import verify_envelope
from lienthong_common.package_limits import describe_limit, max_attachment_bytes
from lienthong_common.pki import DevPki, IssuedIdentity
from lienthong_sdk.builder import PackageBuilder
from lienthong_sdk.cli import CliError, build_parser, refuse_oversized
from lienthong_sdk.safe_files import save_attachments, save_document

SENDER = "000.00.00.H49"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> tuple[DevPki, IssuedIdentity]:
    pki = DevPki.init(tmp_path_factory.mktemp("pki"))
    return pki, pki.issue_signer(agency_code=SENDER, common_name="Nguyễn Văn A")


def letter(*files: Path) -> PackageBuilder:
    builder = PackageBuilder(sender=SENDER).to("000.00.02.H49").subject("Bản quét").code("12", "UBND-VP")
    for file in files:
        builder.attach_file(file)
    return builder


def test_attached_files_stream_into_a_signed_package(
    signer: tuple[DevPki, IssuedIdentity], tmp_path: Path
) -> None:
    pki, identity = signer
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(b"%PDF-1.7\n" + os.urandom(3 * MIB))
    builder = letter(scan)
    out = io.BytesIO()
    size = builder.build_to(out, identity=identity)
    package = out.getvalue()
    assert size == len(package)
    assert verify_envelope(package, trust_roots=[pki.root_cert_pem]).passed
    assert parse_package(package).attachments[0].data == scan.read_bytes()
    # The data model still carries the file's bytes, as before.
    assert builder.package().attachments[0].data == scan.read_bytes()
    assert builder.attachment_sizes() == [scan.stat().st_size]


def test_send_refuses_attachments_over_the_gateway_limit_before_uploading(tmp_path: Path) -> None:
    limit = 4 * MIB
    limits = {
        "max_package_bytes": limit,
        "max_attachment_bytes": max_attachment_bytes(limit),
        "detail": describe_limit(limit),
    }
    fits = tmp_path / "fits.pdf"
    fits.write_bytes(b"\0" * max_attachment_bytes(limit))
    refuse_oversized([str(fits)], limits)  # exactly the largest that fits: no refusal
    over = tmp_path / "over.pdf"
    over.write_bytes(b"\0" * (max_attachment_bytes(limit) + 1))
    with pytest.raises(CliError) as refused:
        refuse_oversized([str(over)], limits)
    message = str(refused.value)
    assert message.startswith(f"{over} is 3.0 MiB ({max_attachment_bytes(limit) + 1} bytes): too large")
    assert "the largest attachment that fits is 3.0 MiB" in message and "nothing was sent" in message
    with pytest.raises(CliError, match=r"the attachments are .* together"):
        refuse_oversized([str(fits), str(over)], limits)


def test_send_help_states_the_largest_attachment_that_fits() -> None:
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["send"].format_help().split())  # type: ignore[union-attr]
    assert "the largest attachment that fits is 37.5 MiB (39272448 bytes" in help_text
    assert "refuses larger files before uploading" in help_text


def test_fetch_decodes_attachments_from_the_package_file(tmp_path: Path) -> None:
    first, second = tmp_path / "một.pdf", tmp_path / "hai.pdf"
    first.write_bytes(b"%PDF-1.7\n" + os.urandom(MIB + 5))
    second.write_bytes(b"")
    package = letter(first, second).build()
    saved = tmp_path / "streamed"
    saved.mkdir()
    (saved / "doc.edxml").write_bytes(package)
    read, written = save_attachments(saved, saved / "doc.edxml")
    assert [p.name for p in written] == ["một.pdf", "hai.pdf"]
    assert [p.read_bytes() for p in written] == [first.read_bytes(), b""]
    assert sorted(p.name for p in saved.iterdir()) == ["doc.edxml", "hai.pdf", "một.pdf"]  # no leftovers
    # What save_document (the whole package in memory) writes, the same.
    whole = tmp_path / "whole"
    _, in_memory = save_document(whole, "doc", package)
    assert [p.read_bytes() for p in in_memory[1:]] == [p.read_bytes() for p in written]
    assert read.header.subject == "Bản quét"
