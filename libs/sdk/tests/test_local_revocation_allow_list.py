"""`lienthong run` lets sigverify fetch the dev PKI's loopback CRLs, and only sigverify."""

from __future__ import annotations

from pathlib import Path

import pytest

from lienthong_sdk.local import LocalPlatform

VARIABLE = "LIENTHONG_SIGVERIFY__REVOCATION_ALLOWED_CIDRS"


def _platform(tmp_path: Path) -> LocalPlatform:
    return LocalPlatform(data_dir=tmp_path, grpc_port_base=28051, http_port=28151, otlp_endpoint="")


def test_sigverify_may_fetch_loopback_crls_and_no_other_service_is_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    platform = _platform(tmp_path)
    assert platform.env_for("sigverify")[VARIABLE] == '["127.0.0.0/8"]'
    assert VARIABLE not in platform.env_for("routing")
    assert "LIENTHONG_ROUTING__WEBHOOKS__ALLOWED_CIDRS" not in platform.env_for("routing")


def test_the_operators_own_allow_list_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, '["10.30.0.0/16"]')
    assert _platform(tmp_path).env_for("sigverify")[VARIABLE] == '["10.30.0.0/16"]'
