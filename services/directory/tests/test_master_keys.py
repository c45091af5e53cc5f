"""Master keys: how they are given, the development key, and `lienthong-directory vdxp-rewrap`."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from lienthong_common.db import make_engine, make_session_factory, transaction, upgrade_database
from lienthong_common.settings import DirectorySettings, Settings
from lienthong_directory import envelope, vdxp_systems
from lienthong_directory.envelope import MasterKeyError, MasterKeyRing, load_master_keys, new_master_key_text
from lienthong_directory.main import MIGRATIONS, rewrap_command

from .conftest import add_agency

KEY = base64.b64encode(bytes(range(32))).decode()


def settings(tmp_path: Path, **directory: object) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'directory.db'}",
        directory=DirectorySettings(**directory),  # type: ignore[arg-type]
    )


def test_keys_parse_with_the_first_current_and_every_one_unwrapping() -> None:
    other = base64.urlsafe_b64encode(bytes(range(32, 64))).decode().rstrip("=")
    keys = MasterKeyRing.parse(f"k2:{KEY}, k1:{other}", source="test")
    assert keys.ids == ("k2", "k1") and keys.current.key_id == "k2"
    assert keys.get("k1").material == bytes(range(32, 64))
    sealed = envelope.seal(MasterKeyRing([keys.get("k1")]), "s3cret", context="vxp.saas.03")
    assert envelope.unseal(keys, sealed, context="vxp.saas.03") == "s3cret"
    from_file = MasterKeyRing.parse(f"# rotated 2026-12\nk2:{KEY}\n\nk1:{other}\n", source="file")
    assert from_file.ids == ("k2", "k1")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "holds no master key"),
        (KEY, "expected id:base64key"),
        ("bad id:" + KEY, "expected id:base64key"),
        ("k1:not*base64", "the key is not base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "the key is 5 bytes, AES-256 needs 32"),
        (f"k1:{KEY},k1:{KEY}", "master key id 'k1' is given twice"),
    ],
)
def test_malformed_master_keys_are_refused_without_showing_them(text: str, reason: str) -> None:
    with pytest.raises(MasterKeyError) as caught:
        MasterKeyRing.parse(text, source="LIENTHONG_DIRECTORY__MASTER_KEYS")
    assert reason in str(caught.value)
    assert KEY not in str(caught.value)


def test_reprs_never_show_key_material_or_secrets() -> None:
    keys = MasterKeyRing.parse(f"k1:{KEY}", source="test")
    sealed = envelope.seal(keys, "s3cret", context="x")
    shown = repr(keys) + repr(keys.current) + repr(sealed)
    assert KEY not in shown and "s3cret" not in shown and repr(bytes(range(32))) not in shown
    assert "k1" in shown
    assert KEY not in repr(settings(Path("/tmp"), master_keys=f"k1:{KEY}"))


def test_keys_come_from_the_setting_or_a_mounted_file_not_both(tmp_path: Path) -> None:
    inline = load_master_keys(settings(tmp_path, master_keys=SecretStr(f"k1:{KEY}")))
    assert inline is not None and inline.ids == ("k1",)
    mounted = tmp_path / "master-keys"
    mounted.write_text(f"k9:{KEY}\n")
    from_file = load_master_keys(settings(tmp_path, master_keys_file=mounted))
    assert from_file is not None and from_file.ids == ("k9",)
    with pytest.raises(MasterKeyError, match="not both"):
        load_master_keys(settings(tmp_path, master_keys=SecretStr(f"k1:{KEY}"), master_keys_file=mounted))
    with pytest.raises(MasterKeyError, match=r"cannot read .*absent"):
        load_master_keys(settings(tmp_path, master_keys_file=tmp_path / "absent"))


def test_outside_development_no_master_key_means_vdxp_systems_are_off(tmp_path: Path) -> None:
    production = settings(tmp_path).model_copy(update={"environment": "production"})
    assert load_master_keys(production) is None
    assert not (tmp_path / "data" / envelope.DEV_KEY_FILE).exists()


def test_development_generates_one_key_kept_0600_in_the_data_dir(tmp_path: Path) -> None:
    first = load_master_keys(settings(tmp_path))
    path = tmp_path / "data" / envelope.DEV_KEY_FILE
    assert first is not None and first.current.key_id.startswith("dev-")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_master_keys(settings(tmp_path))
    assert again is not None and again.current == first.current
    assert [p.name for p in path.parent.iterdir()] == [envelope.DEV_KEY_FILE]  # no staging left


def _database_with_secrets(tmp_path: Path, keys: MasterKeyRing) -> None:
    url = f"sqlite:///{tmp_path / 'directory.db'}"
    upgrade_database(url, MIGRATIONS)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        add_agency(session, "000.00.00.H49", 2)
        for system_id in ("vxp.saas.03", "vxp.saas.04"):
            vdxp_systems.add_system(
                session=session, keys=keys, system_id=system_id, agency_codes=["000.00.00.H49"]
            )
    engine.dispose()


def test_rewrap_command_moves_secrets_to_the_current_key_and_reports_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = new_master_key_text("k1")
    _database_with_secrets(tmp_path, MasterKeyRing.parse(old, source="test"))
    new = new_master_key_text("k2")
    rotated = settings(tmp_path, master_keys=SecretStr(f"{new},{old}"))
    assert rewrap_command([], rotated) == 0
    assert capsys.readouterr().out.strip() == (
        "2 VDXP secret(s): 2 re-wrapped under master key k2, 0 already under it, 0 failed"
    )
    assert rewrap_command(["--json"], rotated) == 0
    assert json.loads(capsys.readouterr().out) == {
        "current_key_id": "k2",
        "secrets": 2,
        "rewrapped": 0,
        "already_current": 2,
        "failed": [],
    }
    # k1 can go now: the secrets still decrypt with k2 alone.
    retired = settings(tmp_path, master_keys=SecretStr(new))
    assert rewrap_command([], retired) == 0
    capsys.readouterr()


def test_rewrap_command_fails_when_a_secret_is_under_a_key_no_longer_configured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _database_with_secrets(tmp_path, MasterKeyRing.parse(new_master_key_text("k1"), source="test"))
    assert rewrap_command([], settings(tmp_path, master_keys=SecretStr(new_master_key_text("k2")))) == 1
    out = capsys.readouterr().out
    assert "2 VDXP secret(s): 0 re-wrapped under master key k2, 0 already under it, 2 failed" in out
    assert "master key 'k1' is not configured (configured: k2)" in out


def test_rewrap_command_without_usable_keys_exits_2_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    production = settings(tmp_path).model_copy(update={"environment": "production"})
    assert rewrap_command([], production) == 2
    assert "LIENTHONG_DIRECTORY__MASTER_KEYS" in capsys.readouterr().err
    assert rewrap_command([], settings(tmp_path, master_keys=SecretStr("k1:short"))) == 2
    assert "entry 1 (id 'k1')" in capsys.readouterr().err


def test_directory_refuses_to_start_with_unusable_master_keys_and_says_why(tmp_path: Path) -> None:
    from lienthong_directory.main import master_keys

    with pytest.raises(SystemExit) as caught:
        master_keys(settings(tmp_path, master_keys=SecretStr("k1:" + KEY[:-8])))
    assert "LIENTHONG_DIRECTORY__MASTER_KEYS, entry 1 (id 'k1')" in str(caught.value)


def test_directory_serves_without_master_keys_outside_development_and_logs_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from lienthong_directory.main import master_keys

    production = settings(tmp_path).model_copy(update={"environment": "production"})
    assert master_keys(production) is None
    assert "VDXP systems are off: the directory has no master key" in caplog.text
