"""`lienthong run` gives the gateway a random signing secret of its own per data directory."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lienthong_common.settings import PLACEHOLDER_SECRET
from lienthong_sdk.local import GATEWAY_JWT_FILE, LocalPlatform, gateway_jwt


def test_a_random_secret_per_data_dir_kept_private_and_stable(tmp_path: Path) -> None:
    first = gateway_jwt(tmp_path / "a")
    assert len(first["secret"]) >= 48 and first["secret"] != PLACEHOLDER_SECRET and first["key_id"]
    assert gateway_jwt(tmp_path / "a") == first  # a restart keeps tokens valid
    assert gateway_jwt(tmp_path / "b")["secret"] != first["secret"]
    mode = stat.S_IMODE((tmp_path / "a" / GATEWAY_JWT_FILE).stat().st_mode)
    assert mode == 0o600


def test_only_the_gateway_gets_it_and_an_operators_own_secret_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIENTHONG_GATEWAY__JWT_SECRET", raising=False)
    monkeypatch.delenv("LIENTHONG_GATEWAY__JWT_KEY_ID", raising=False)
    local = LocalPlatform(data_dir=tmp_path, otlp_endpoint="")
    env = local.env_for("gateway")
    key = gateway_jwt(tmp_path)
    assert env["LIENTHONG_GATEWAY__JWT_SECRET"] == key["secret"]
    assert env["LIENTHONG_GATEWAY__JWT_KEY_ID"] == key["key_id"]
    assert "LIENTHONG_GATEWAY__JWT_SECRET" not in local.env_for("routing")
    own = LocalPlatform(
        data_dir=tmp_path, otlp_endpoint="", extra_env={"LIENTHONG_GATEWAY__JWT_SECRET": "mine-" + "m" * 40}
    )
    assert own.env_for("gateway")["LIENTHONG_GATEWAY__JWT_SECRET"] == "mine-" + "m" * 40
    monkeypatch.setenv("LIENTHONG_GATEWAY__JWT_SECRET", "exported-" + "e" * 40)
    assert local.env_for("gateway")["LIENTHONG_GATEWAY__JWT_SECRET"] == "exported-" + "e" * 40
