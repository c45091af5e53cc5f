"""VNPT's real packages (third_party/vdxp/vdxp-samples, vendored unchanged) are read for what
they say, and the status packages we write for VDXP clients have VNPT's builder's shape."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from lienthong_common.edxml import (
    LENIENT,
    STATUS_SHAPE_VNPT,
    VIETNAM_TZ,
    EdxmlError,
    Organization,
    ParsePolicy,
    StatusPackage,
    build_vnpt_status_package,
    is_status_package,
    parse_status_package,
)

VDXP = Path(__file__).resolve().parents[3] / "third_party" / "vdxp"
SAMPLES = VDXP / "vdxp-samples"
UNSIGNED_STRICT = ParsePolicy(lenient=False, require_signature=False)


def _sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def _elements(data: bytes) -> list[tuple[int, str]]:
    """(depth, prefixed name) of every element, in document order."""
    root = etree.fromstring(data)
    out: list[tuple[int, str]] = []

    def walk(element: Any, depth: int) -> None:
        name = etree.QName(element).localname
        out.append((depth, f"{element.prefix}:{name}" if element.prefix else name))
        for child in element:
            if isinstance(child.tag, str):
                walk(child, depth + 1)

    walk(root, 0)
    return out


def _children(data: bytes, parent: str) -> list[str]:
    """Prefixed names of the children of the first element named ``parent``, in order."""
    elements = _elements(data)
    start = next(i for i, (_, name) in enumerate(elements) if name == parent)
    depth = elements[start][0]
    names = []
    for d, name in elements[start + 1 :]:
        if d <= depth:
            break
        if d == depth + 1:
            names.append(name)
    return names


# -- writing status packages as VNPT's builder does ---------------------------------------------
def test_vnpt_status_package_of_status_edxml_fields_is_that_sample_byte_for_byte() -> None:
    """status.edxml is exactly the builder's output (VDXP-WIRE §6.1), down to CRLF and omissions."""
    st = parse_status_package(_sample("status.edxml"))
    assert build_vnpt_status_package(st) == _sample("status.edxml")


def test_vnpt_status_package_has_the_structure_of_status_acceptance_03() -> None:
    sample = _sample("status_acceptance_03.edxml")
    st = parse_status_package(sample)
    built = build_vnpt_status_package(st)

    # Same elements, same prefixes, same nesting; MessageHeader's children in the same order.
    assert sorted(_elements(built)) == sorted(_elements(sample))
    assert built.split(b"\r\n")[:5] == sample.split(b"\r\n")[:5]
    assert _children(built, "edXML:MessageHeader") == _children(sample, "edXML:MessageHeader")
    # Inside From, ResponseFor and StaffInfo the sample was reordered by hand (VDXP-WIRE §6.1:
    # "accept any child order"); the builder's own order is the one status.edxml pins.
    for group in ("edXML:From", "edXML:ResponseFor", "edXML:StaffInfo"):
        assert sorted(_children(built, group)) == sorted(_children(sample, group))
        assert _children(built, group) == _children(_sample("status.edxml"), group)
    assert _children(built, "edXML:ResponseFor") == [
        "edXML:OrganId",
        "edXML:Code",
        "edXML:DocumentId",
        "edXML:PromulgationDate",
    ]
    # CRLF everywhere, 2-space indent, Vietnam local time.
    assert b"\n" not in built.replace(b"\r\n", b"")
    assert built.endswith(b"</edXML>\r\n")
    assert b"\r\n      <edXML:MessageHeader>\r\n" in built
    assert b"<edXML:Timestamp>2015/09/20 11:08:36</edXML:Timestamp>" in built
    again = parse_status_package(built, policy=UNSIGNED_STRICT)
    assert again == st
    assert again.shape == STATUS_SHAPE_VNPT
    assert again.warnings == []
    # Same values (the sample pads some with tabs and spaces; the builder trims).
    assert _texts(built) == _texts(sample)


def _texts(data: bytes) -> dict[str, str]:
    root = etree.fromstring(data)
    """Text of each leaf element, keyed by its path of local names (each is unique here)."""

    def path(e: Any) -> str:
        names = [etree.QName(a).localname for a in reversed(list(e.iterancestors()))]
        return "/".join([*names, etree.QName(e).localname])

    return {path(e): (e.text or "").strip() for e in root.iter() if isinstance(e.tag, str) and len(e) == 0}


def test_vnpt_status_package_omits_empty_elements() -> None:
    st = StatusPackage(
        response_for_organ_id="vxp.saas.02",
        response_for_document_id="1da394ba-2117-4354-a23f-6ec3e47ba81b",
        sender=Organization("vxp.saas.03"),
        status_code="01",
        description="",
        timestamp=datetime.datetime(2025, 7, 1, 8, 0, 0, tzinfo=VIETNAM_TZ),
    )
    built = build_vnpt_status_package(st)
    assert _children(built, "edXML:MessageHeader") == [
        "edXML:From",
        "edXML:ResponseFor",
        "edXML:StatusCode",
        "edXML:Timestamp",
    ]
    assert _children(built, "edXML:From") == ["edXML:OrganId"]
    assert _children(built, "edXML:ResponseFor") == ["edXML:OrganId", "edXML:DocumentId"]
    # System ids and UUID DocumentIds are echoed as the counterpart wrote them.
    again = parse_status_package(built)
    assert again == st
    assert is_status_package(built)


def test_vnpt_status_package_refuses_an_unknown_status_code() -> None:
    st = parse_status_package(_sample("status.edxml"))
    with pytest.raises(EdxmlError, match="'99' is not a status code"):
        build_vnpt_status_package(dataclasses.replace(st, status_code="99"))


def test_vnpt_status_package_refuses_a_status_without_addressee() -> None:
    st = parse_status_package(_sample("status.edxml"))
    with pytest.raises(EdxmlError, match="ResponseFor/OrganId: must not be empty"):
        build_vnpt_status_package(dataclasses.replace(st, response_for_organ_id=" "))


def test_vendored_samples_match_their_sha256sums() -> None:
    listed = {}
    for line in (VDXP / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name] = digest
    on_disk = {
        str(path.relative_to(VDXP)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(VDXP.glob("vdxp-*/*"))
    }
    assert on_disk == listed


def test_lenient_policy_is_the_default_for_samples() -> None:
    assert parse_status_package(_sample("status_inbox__01.edxml"), policy=LENIENT).status_code == "01"
