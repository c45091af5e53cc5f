"""`lienthong fetch` writes what a sender named (issue 20, item 7): hostile names stay plain files
in the output folder, symlinks are never followed, nothing is overwritten, nothing crashes."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from lienthong_common import edxml
from lienthong_sdk.safe_files import safe_file_name, save_attachment, save_document, write_new_file

HOSTILE = [
    (".bashrc", "bashrc"),
    ("../../x", "x"),
    ("..\\..\\evil.pdf", "evil.pdf"),
    ("a/b", "b"),
    ("/etc/passwd", "passwd"),
    ("", "attachment-1.pdf"),
    ("..", "attachment-1.pdf"),
    (".", "attachment-1.pdf"),
    ("...", "attachment-1.pdf"),
    ("   ", "attachment-1.pdf"),
    ("a/", "attachment-1.pdf"),
    ("con.pdf", "attachment-1.pdf"),
    ("quyết\u0301 định.pdf", "quyết\u0301 định.pdf"),  # NFC: composed where a composition exists
    ("Quye\u0302\u0301t đi\u0323nh.pdf", "Quyết định.pdf"),
    ("cv\x00.pdf\x1b[31m", "cv.pdf[31m"),
    ("invoice\u202egpj.exe", "invoicegpj.exe"),  # the right-to-left override is dropped
    ("tab\there.pdf", "tab here.pdf"),
    ("trailing. . ", "trailing"),
]


@pytest.mark.parametrize(("name", "expected"), HOSTILE)
def test_names_are_plain_file_names(name: str, expected: str) -> None:
    safe = safe_file_name(name, index=1, content_type="application/pdf")
    assert safe == expected
    assert "/" not in safe and "\\" not in safe and not safe.startswith(".") and safe not in ("", "..")


def test_long_names_keep_their_extension_under_200_bytes() -> None:
    safe = safe_file_name("đ" * 300 + ".pdf")
    assert safe.endswith(".pdf") and len(safe.encode()) <= 200


def test_a_planted_symlink_is_never_followed(tmp_path: Path) -> None:
    out, target = tmp_path / "out", tmp_path / "victim.txt"
    out.mkdir()
    target.write_text("keep me")
    (out / "cv.pdf").symlink_to(target)
    (out / "dangling.pdf").symlink_to(tmp_path / "nowhere" / "x")
    written = save_attachment(out, "cv.pdf", b"%PDF-1", index=1)
    assert written == out / "cv-1.pdf" and written.read_bytes() == b"%PDF-1"
    assert target.read_text() == "keep me" and (out / "cv.pdf").is_symlink()
    assert save_attachment(out, "dangling.pdf", b"x", index=2) == out / "dangling-1.pdf"
    assert not (tmp_path / "nowhere").exists()


def test_duplicates_get_numbered_and_nothing_is_overwritten(tmp_path: Path) -> None:
    names = [write_new_file(tmp_path, "cv.pdf", str(n).encode()) for n in range(3)]
    assert [p.name for p in names] == ["cv.pdf", "cv-1.pdf", "cv-2.pdf"]
    assert [p.read_bytes() for p in names] == [b"0", b"1", b"2"]
    assert write_new_file(tmp_path, "README", b"r").name == "README"
    assert write_new_file(tmp_path, "README", b"r").name == "README-1"
    (tmp_path / "dir.pdf").mkdir()
    assert write_new_file(tmp_path, "dir.pdf", b"d").name == "dir-1.pdf"


def hostile_package(names: list[str]) -> bytes:
    header = edxml.MessageHeader(
        sender=edxml.Organization(organ_id="000.00.00.H49"),
        recipients=[edxml.Organization(organ_id="000.00.02.H49")],
        code_number="1",
        code_notation="UBND-VP",
        promulgation_place="Hạ Long",
        promulgation_date=dt.date(2026, 1, 5),
        document_type=1,
        document_type_name="Công văn",
        subject="Tên tệp lạ",
    )
    placeholders = [f"placeholder-{n}.pdf" for n in range(len(names))]
    attachments = [
        edxml.Attachment(content_id=f"cid:{n}", name=p, content_type="application/pdf", data=f"{n}".encode())
        for n, p in enumerate(placeholders)
    ]
    package = edxml.build_package(edxml.EdxmlPackage(header=header, attachments=attachments))
    # The writer is strict about names; a hostile sender's software is not.
    for placeholder, name in zip(placeholders, names, strict=True):
        escaped = name.replace("&", "&amp;").replace("<", "&lt;")
        package = package.replace(placeholder.encode(), escaped.encode())
    return package


def test_fetch_saves_a_hostile_package_safely(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "outside.txt").write_text("untouched")
    (out / "x").symlink_to(tmp_path / "outside.txt")
    names = [".bashrc", "../../x", "a/b", "", "cv.pdf", "cv.pdf", "..", "x"]
    package, written = save_document(out, "doc-1", hostile_package(names))
    assert [a.name for a in package.attachments] == names
    assert [p.name for p in written] == [
        "doc-1.edxml",
        "bashrc",
        "x-1",  # "x" is a planted symlink: never written through
        "b",
        "attachment-4.pdf",
        "cv.pdf",
        "cv-1.pdf",
        "attachment-7.pdf",
        "x-2",
    ]
    assert all(p.parent == out and p.is_file() and not p.is_symlink() for p in written)
    assert [p.read_bytes() for p in written[1:]] == [str(n).encode() for n in range(len(names))]
    assert (tmp_path / "outside.txt").read_text() == "untouched"
    assert not (tmp_path / "x").exists() and not (out / "a").exists()
    # Fetching again never overwrites the first copy.
    _, again = save_document(out, "doc-1", hostile_package(names))
    assert again[0].name == "doc-1-1.edxml" and len(set(written) & set(again)) == 0


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="O_NOFOLLOW is POSIX")
def test_files_are_created_exclusively_without_following_links(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    assert write_new_file(tmp_path, "a", b"1").name == "a-1"
    assert not (tmp_path / "b").exists()
