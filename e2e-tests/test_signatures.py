"""Signatures through the whole platform: a FAILED document never reaches a recipient, its sender
sees why in `lienthong track`; `lienthong verify` exit codes; the trust store as an administrator."""

from __future__ import annotations

from pathlib import Path

from harness import DEPARTMENT, PROVINCE, RunningPlatform, eventually
from lienthong_common.pki import DevPki


def _tamper(signed: Path, out: Path) -> Path:
    data = signed.read_bytes()
    at = data.index(b"Tj")  # page text, inside the signed byte range
    out.write_bytes(data[:at] + b"TJ" + data[at + 2 :])
    return out


def test_failed_signature_is_refused_and_the_sender_sees_why(
    platform: RunningPlatform, signed_pdf, tmp_path: Path
) -> None:
    good = signed_pdf(PROVINCE, "Quyết định thử nghiệm chữ ký")
    forged = _tamper(good, tmp_path / "forged.pdf")

    # lienthong verify: exit 0 passed, 1 failed, 2 indeterminate (against the platform's store).
    passed = platform.cli("verify", str(good), "--json", check=False)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert '"platform trust store version' in passed.stdout
    failed = platform.cli("verify", str(forged), check=False)
    assert failed.returncode == 1 and failed.stdout.startswith("TOTAL_FAILED/HASH_FAILURE"), failed.stdout
    stranger = DevPki.init(tmp_path / "stranger", common_name="someone else's root")
    unknown = platform.cli("verify", str(good), "--trust-root", str(stranger.root_path), check=False)
    assert unknown.returncode == 2 and "NO_CERTIFICATE_CHAIN_FOUND" in unknown.stdout, unknown.stdout
    sent = platform.cli_json(
        "send",
        "--as",
        PROVINCE,
        "--to",
        DEPARTMENT,
        "--subject",
        "Văn bản bị sửa sau khi ký",
        "--attach",
        str(forged),
    )
    doc_id = sent["id"]

    def verdict() -> dict | None:
        tracked = platform.cli_json("track", doc_id, "--as", PROVINCE)
        validation = tracked.get("validation") or {}
        return tracked if validation.get("indication") else None

    tracked = eventually(verdict, what=f"a verdict on {doc_id}")
    assert tracked["validation"]["indication"] == "TOTAL_FAILED"
    assert tracked["validation"]["sub_indication"] == "HASH_FAILURE"
    text = platform.cli("track", doc_id, "--as", PROVINCE).stdout
    assert "TOTAL_FAILED/HASH_FAILURE" in text and "forged.pdf" in text, text

    # Never delivered: not in the recipient's inbox, and the recipient cannot fetch it.
    inbox = platform.cli_json("inbox", "--as", DEPARTMENT, "--all")["items"]
    assert doc_id not in [item["id"] for item in inbox]
    assert all(r["state"] != "delivered" for r in tracked["recipients"]), tracked["recipients"]
    fetched = platform.cli("fetch", doc_id, "--as", DEPARTMENT, "-o", str(tmp_path / "out"), check=False)
    assert fetched.returncode != 0


def test_administrators_manage_the_trust_store(platform: RunningPlatform, tmp_path: Path) -> None:
    listed = platform.cli_json("trust", "list")
    dev_root = DevPki.load(platform.local.data_dir / "pki").root_cert_pem.decode()
    assert dev_root in [a["certificate_pem"] for a in listed["anchors"]]

    extra = DevPki.init(tmp_path / "extra", common_name="another licensed CA")
    added = platform.cli_json("trust", "add", str(extra.root_path), "--note", "e2e")
    assert added["created"] and added["version"] > listed["version"]
    removed = platform.cli_json("trust", "remove", added["anchor"]["fingerprint"])
    assert removed["version"] == added["version"] + 1
    after = platform.cli_json("trust", "list", "--all")
    [entry] = [a for a in after["anchors"] if a["fingerprint"] == added["anchor"]["fingerprint"]]
    assert entry["removed_by"] == "admin"

    refused = platform.cli("trust", "add", str(extra.root_path), "--as", PROVINCE, check=False)
    assert refused.returncode != 0 and "administrators" in refused.stderr
