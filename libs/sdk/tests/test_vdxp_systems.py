"""VDXP systems on a local platform from a fresh data dir: the directory gets a master key by
itself, `lienthong demo` registers the demo systems (idempotently) and `lienthong vdxp systems`
manages them through the gateway. Directory and gateway only, started as `lienthong run` does."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong_sdk.cli import main
from lienthong_sdk.demo import SHARED_VDXP_AGENCIES, SHARED_VDXP_SYSTEM, load_vdxp_systems, seed
from lienthong_sdk.local import LocalPlatform, repo_root

DATASET = repo_root() / "data" / "directory" / "demo.json"
SIGNED = b'{"XroadVnpt-systemid":"x","XroadVnpt-timestamp":"15032025T091530+0042"}'


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_base() -> int:
    for _ in range(50):
        base = random.randrange(30000, 45000, 10)
        if all(_free(p) for p in (base, base + 100, base + 200)):
            return base
    raise RuntimeError("no free ports")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    base = _port_base()
    local = LocalPlatform(
        data_dir=tmp_path_factory.mktemp("vdxp-platform"),
        grpc_port_base=base,
        http_port=base + 100,
        kafka_bootstrap="127.0.0.1:9",  # no broker: these calls need none
        otlp_endpoint="",
        extra_env={"LIENTHONG_ENVIRONMENT": "development", "LIENTHONG_DRAIN_SECONDS": "1"},
    )
    try:
        local.start(services=("directory", "gateway"))
        address = local.grpc_address("directory")
        with local.grpc_channel("directory") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
        seed(directory_address=address, data_dir=local.data_dir, dataset=DATASET)
        yield local
    finally:
        local.stop()


@pytest.fixture
def stub(platform: LocalPlatform) -> Iterator[directory_pb2_grpc.DirectoryServiceStub]:
    # The directory as the gateway's admin API calls it (RemoveVdxpSystem is no seeder's call).
    with platform.grpc_channel("directory", identity="gateway") as channel:
        yield directory_pb2_grpc.DirectoryServiceStub(channel)


@pytest.fixture
def cli_env(platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LIENTHONG_DATA_DIR", str(platform.data_dir))
    monkeypatch.setenv("LIENTHONG_URL", platform.gateway_url)
    monkeypatch.delenv("LIENTHONG_CLIENT_SECRET", raising=False)
    return platform.data_dir


def signs(stub: directory_pb2_grpc.DirectoryServiceStub, system_id: str, secret: str) -> bool:
    signature = hmac.new(secret.encode(), SIGNED, hashlib.sha256).hexdigest()
    request = directory_pb2.VerifyVdxpSignatureRequest(
        system_id=system_id, signed=SIGNED, signature=signature
    )
    return bool(stub.VerifyVdxpSignature(request).valid)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_the_directory_makes_its_own_development_master_key_0600(platform: LocalPlatform) -> None:
    key_file = platform.data_dir / "directory-master-keys"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().splitlines()[-1].startswith("dev-")


def test_demo_registers_one_system_per_agency_and_a_shared_one(
    platform: LocalPlatform, stub: directory_pb2_grpc.DirectoryServiceStub
) -> None:
    path = platform.data_dir / "vdxp-systems.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    systems = load_vdxp_systems(platform.data_dir)
    codes = [str(r["code"]) for r in json.loads(DATASET.read_text())["agencies"]]
    assert set(systems) == {*codes, SHARED_VDXP_SYSTEM}
    assert systems[SHARED_VDXP_SYSTEM]["agencies"] == list(SHARED_VDXP_AGENCIES)
    for system_id, entry in systems.items():
        if system_id != SHARED_VDXP_SYSTEM:
            assert entry["agencies"] == [system_id]
        assert signs(stub, system_id, entry["secret"]), system_id


def test_demo_again_keeps_the_secrets_and_repairs_what_changed(
    platform: LocalPlatform, stub: directory_pb2_grpc.DirectoryServiceStub
) -> None:
    before = load_vdxp_systems(platform.data_dir)
    stub.RemoveVdxpSystem(directory_pb2.VdxpSystemRequest(system_id="000.00.00.G22"))
    stub.RotateVdxpSecret(
        directory_pb2.RotateVdxpSecretRequest(system_id=SHARED_VDXP_SYSTEM, overlap_seconds=0)
    )
    assert not signs(stub, SHARED_VDXP_SYSTEM, before[SHARED_VDXP_SYSTEM]["secret"])
    seed(directory_address=platform.grpc_address("directory"), data_dir=platform.data_dir, dataset=DATASET)
    assert load_vdxp_systems(platform.data_dir) == before
    assert signs(stub, "000.00.00.G22", before["000.00.00.G22"]["secret"])
    assert signs(stub, SHARED_VDXP_SYSTEM, before[SHARED_VDXP_SYSTEM]["secret"])


def test_seeding_another_dataset_keeps_the_systems_already_in_the_file(
    platform: LocalPlatform, stub: directory_pb2_grpc.DirectoryServiceStub, tmp_path: Path
) -> None:
    before = load_vdxp_systems(platform.data_dir)
    extra = tmp_path / "extra.json"
    extra.write_text(
        json.dumps({"agencies": [{"code": "000.00.00.H97", "name": "UBND tỉnh Thử", "tier": 2}]}),
        encoding="utf-8",
    )
    seed(directory_address=platform.grpc_address("directory"), data_dir=platform.data_dir, dataset=extra)
    after = load_vdxp_systems(platform.data_dir)
    assert after == {**before, "000.00.00.H97": after["000.00.00.H97"]}
    assert signs(stub, "000.00.00.H97", after["000.00.00.H97"]["secret"])


def test_cli_adds_lists_updates_rotates_and_removes_a_system(
    cli_env: Path, stub: directory_pb2_grpc.DirectoryServiceStub, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "vdxp", "systems", "add", "vxp.saas.03", "--agencies", "000.00.02.H49,000.00.03.H49"
    )
    assert code == 0, out
    assert "added VDXP system vxp.saas.03 for 000.00.02.H49, 000.00.03.H49" in out
    secret = out.rsplit("secret (shown only now): ", 1)[1].strip()
    assert signs(stub, "vxp.saas.03", secret)

    code, out, _ = run(capsys, "vdxp", "systems", "list", "--agency", "000.00.03.H49", "--json")
    assert code == 0
    assert [s["system_id"] for s in json.loads(out)["systems"]] == ["000.00.03.H49", "vxp.saas.03"]
    assert secret not in out

    code, out, _ = run(capsys, "vdxp", "systems", "update", "vxp.saas.03", "--admin", "--json")
    assert (
        code == 0 and json.loads(out)["admin"] is True and json.loads(out)["agencies"][0] == "000.00.02.H49"
    )

    code, out, _ = run(capsys, "vdxp", "systems", "rotate", "vxp.saas.03", "--json")
    rotated = json.loads(out)
    assert code == 0 and rotated["system"]["active_secrets"] == 2
    assert signs(stub, "vxp.saas.03", secret) and signs(stub, "vxp.saas.03", rotated["secret"])
    code, out, _ = run(capsys, "vdxp", "systems", "rotate", "vxp.saas.03", "--overlap", "0")
    assert code == 0 and "the previous secret no longer works" in out
    assert not signs(stub, "vxp.saas.03", rotated["secret"])

    code, out, _ = run(capsys, "vdxp", "systems", "remove", "vxp.saas.03")
    assert (code, out.strip()) == (0, "removed VDXP system vxp.saas.03 and its secrets")


def test_cli_errors_are_clear_and_exit_non_zero(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "vdxp", "systems", "add", "000.00.00.H49", "--agencies", "000.00.00.H49")
    assert code == 1
    assert "lienthong: 409 already-exists: VDXP system 000.00.00.H49 already exists" in err
    code, _, err = run(capsys, "vdxp", "systems", "add", "vxp.saas.07", "--agencies", "000.00.00.H98")
    assert code == 1 and "agency 000.00.00.H98 is not in the directory" in err
    code, _, err = run(capsys, "vdxp", "systems", "list", "--as", "000.00.00.H49")
    assert code == 1 and "403 admin-only: only administrators manage VDXP systems" in err
    code, _, err = run(capsys, "vdxp", "systems", "remove", "vxp.saas.99", "--json")
    assert code == 1 and json.loads(err.splitlines()[0])["error"]["status"] == 404
    code, _, err = run(capsys, "vdxp", "systems", "update", "000.00.00.H49")
    assert code == 2 and "nothing to change" in err
