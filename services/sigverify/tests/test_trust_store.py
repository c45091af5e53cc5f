"""Loading trust roots: several per file, the dev PKI fallback, refusals that name the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from lienthong_common.pki import DevPki
from lienthong_common.settings import GatewaySettings, Settings, SigverifySettings
from lienthong_sigverify.trust import TrustStoreError, load_trust_roots


def _settings(
    tmp_path: Path, *, environment: str = "development", roots: list[Path] | None = None
) -> Settings:
    return Settings(
        environment=environment,  # type: ignore[arg-type]
        data_dir=tmp_path / "data",
        sigverify=SigverifySettings(trust_roots=roots or []),
        gateway=GatewaySettings(jwt_secret=SecretStr("not-the-placeholder")),
    )


def test_a_file_may_hold_several_certificates(tmp_path: Path, pki: DevPki) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pki.issuing_cert_pem + pki.root_cert_pem)
    roots = load_trust_roots(_settings(tmp_path, roots=[bundle]))
    assert roots == [pki.issuing_cert_pem, pki.root_cert_pem]


def test_development_falls_back_to_the_demo_pki(tmp_path: Path) -> None:
    demo = DevPki.init(tmp_path / "data" / "pki")
    assert load_trust_roots(_settings(tmp_path)) == [demo.root_cert_pem]


def test_development_without_any_root_starts_empty(tmp_path: Path) -> None:
    assert load_trust_roots(_settings(tmp_path)) == []


def test_production_refuses_an_empty_trust_store(tmp_path: Path) -> None:
    DevPki.init(tmp_path / "data" / "pki")  # the dev fallback never applies in production
    with pytest.raises(TrustStoreError, match="LIENTHONG_SIGVERIFY__TRUST_ROOTS"):
        load_trust_roots(_settings(tmp_path, environment="production"))


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(TrustStoreError, match=r"missing\.pem"):
        load_trust_roots(_settings(tmp_path, roots=[missing]))
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a certificate")
    with pytest.raises(TrustStoreError, match=r"junk\.pem holds no"):
        load_trust_roots(_settings(tmp_path, roots=[junk]))
