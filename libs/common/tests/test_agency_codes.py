"""QCVN 102 agency code parsing."""

from __future__ import annotations

import pytest

from lienthong_common import agency_codes
from lienthong_common.agency_codes import AgencyCodeError


@pytest.mark.parametrize(
    ("code", "segment", "message"),
    [
        (
            "000.00.XX.H49",
            "Y1Y2",
            "agency code 000.00.XX.H49: segment Y1Y2 'XX' must be two digits",
        ),
        ("00.00.00.H49", "V1V2V3", "segment V1V2V3 '00' must be three digits"),
        ("000.0a.00.H49", "Z1Z2", "segment Z1Z2 '0a' must be two digits"),
        ("000.00.001.H49", "Y1Y2", "segment Y1Y2 '001' must be two digits"),
        ("000.00.00.h49", "M1M2M3", "segment M1M2M3 'h49' must be a capital letter and two digits"),
        ("000.00.00.449", "M1M2M3", "segment M1M2M3 '449'"),
        ("000.00.00.H4", "M1M2M3", "segment M1M2M3 'H4'"),
        ("000.00.00.H\uff149", "M1M2M3", "segment M1M2M3"),  # full-width digit
        ("000.00.\u0660\u0660.H49", "Y1Y2", "segment Y1Y2"),  # Arabic-Indic zeros
    ],
)
def test_wrong_segment_is_named(code: str, segment: str, message: str) -> None:
    with pytest.raises(AgencyCodeError) as caught:
        agency_codes.parse(code)
    assert caught.value.segment == segment
    assert message in str(caught.value)


@pytest.mark.parametrize("code", ["", "000.00.H49", "vxp.saas.03", "000.00.00.00.H49"])
def test_wrong_shape_is_rejected(code: str) -> None:
    with pytest.raises(AgencyCodeError, match="agency code"):
        agency_codes.parse(code)
    assert not agency_codes.is_valid(code)


def test_validate_strips_and_keeps_canonical_form() -> None:
    assert agency_codes.validate("  000.46.24.H44 ") == "000.46.24.H44"
    assert agency_codes.is_valid("000.00.00.G22")


@pytest.mark.parametrize(
    ("code", "parent"),
    [
        ("000.00.00.H49", None),
        ("000.00.00.G22", None),
        ("000.00.24.H44", "000.00.00.H44"),
        ("000.46.24.H44", "000.00.24.H44"),
        ("000.01.01.H49", "000.00.01.H49"),
        ("001.02.03.H49", "000.02.03.H49"),
        ("000.02.03.H49", "000.00.03.H49"),
        # A skipped level: zeroing the leftmost non-zero segment still climbs one step.
        ("000.05.00.H49", "000.00.00.H49"),
    ],
)
def test_parent_zeroes_leftmost_non_zero_segment(code: str, parent: str | None) -> None:
    assert agency_codes.parent_of(code) == parent


def test_depth_and_root() -> None:
    assert agency_codes.parse("000.00.00.H49").depth == 0
    assert agency_codes.parse("000.46.24.H44").depth == 2
    assert agency_codes.parse("001.02.03.H49").depth == 3
    assert agency_codes.root_of("000.46.24.H44") == "000.00.00.H44"
    assert agency_codes.parse("000.00.00.H49").is_root


def test_province_of() -> None:
    assert agency_codes.province_of("000.46.24.H44") == "H44"
    assert agency_codes.province_of("000.00.00.G22") is None
    assert agency_codes.level1_of("000.00.00.G22") == "G22"


def test_plausible_tiers() -> None:
    assert agency_codes.plausible_tiers("000.00.00.G09") == {1}
    assert agency_codes.plausible_tiers("000.00.00.H49") == {2}
    assert agency_codes.plausible_tiers("000.00.01.H49") == {2, 3, 4}
    assert agency_codes.plausible_tiers("000.01.01.H49") == {3, 4}
    assert agency_codes.plausible_tiers("000.00.05.G22") == {1}


def test_group_codes_and_descendants() -> None:
    from lienthong_common.agency_codes import is_descendant, is_group_code

    assert is_group_code("000.00.01.X00")
    assert not is_group_code("000.00.00.X00") and not is_group_code("000.00.01.H49")
    assert is_descendant("000.01.03.H49", "000.00.03.H49")
    assert is_descendant("000.01.03.H49", "000.00.00.H49")
    assert not is_descendant("000.01.04.H49", "000.00.03.H49")
    assert not is_descendant("000.00.03.H49", "000.00.03.H49")
    assert not is_descendant("000.01.03.H44", "000.00.00.H49")
