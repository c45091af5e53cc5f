"""The directory seen from outside: a dissolved recipient's successor receives and `track` says
so; a group address reaches every member; import is all or nothing through the CLI."""

from __future__ import annotations

from pathlib import Path

from harness import PROVINCE, RunningPlatform, eventually

DISSOLVED = "000.00.12.H49"  # huyện Hoành Bồ, dissolved into Hạ Long in demo.json
SUCCESSOR = "000.00.03.H49"  # thành phố Hạ Long
GROUP = "000.00.01.X00"
MEMBERS = ["000.01.03.H49", "000.02.03.H49"]  # the wards under Hạ Long


def inbox_ids(platform: RunningPlatform, code: str) -> list[str]:
    return [item["id"] for item in platform.cli_json("inbox", "--as", code, "--all")["items"]]


def send(platform: RunningPlatform, pdf: Path, to: str, subject: str) -> str:
    sent = platform.cli_json("send", "--as", PROVINCE, "--to", to, "--subject", subject, "--attach", str(pdf))
    return str(sent["id"])


def test_dissolved_recipient_redirects_and_group_reaches_every_member(
    platform: RunningPlatform, signed_pdf, tmp_path: Path
) -> None:
    pdf = signed_pdf(PROVINCE, "Công văn gửi huyện đã giải thể")
    redirected = send(platform, pdf, DISSOLVED, "Gửi huyện Hoành Bồ (đã sáp nhập)")

    with platform.client("admin") as admin:
        defined = admin._request(
            "PUT",
            f"/v1/groups/{GROUP}",
            json={"name": "Các phường thuộc Hạ Long", "rule": "tier4_under", "base_code": SUCCESSOR},
        ).json()
    assert defined["code"] == GROUP
    grouped = send(platform, signed_pdf(PROVINCE, "Công văn gửi nhóm"), GROUP, "Gửi các phường")

    eventually(lambda: redirected in inbox_ids(platform, SUCCESSOR), what="redirected delivery")
    tracked = platform.cli_json("track", redirected, "--as", PROVINCE)
    assert [r["code"] for r in tracked["recipients"]] == [SUCCESSOR]
    notes = " ".join(str(t.get("description", "")) for t in tracked["timeline"])
    assert f"redirected from {DISSOLVED} to {SUCCESSOR}" in notes, tracked["timeline"]
    text = platform.cli("track", redirected, "--as", PROVINCE).stdout
    assert f"redirected from {DISSOLVED} to {SUCCESSOR}" in text

    for member in MEMBERS:
        eventually(lambda m=member: grouped in inbox_ids(platform, m), what=f"group delivery to {member}")
    tracked = platform.cli_json("track", grouped, "--as", PROVINCE)
    assert sorted(r["code"] for r in tracked["recipients"]) == MEMBERS

    # Import through the CLI is all or nothing and names every rejected row.
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "code,name,tier\n000.03.03.H49,Phường mới,4\n000.0X.03.H49,Sai mã,4\n000.04.03.H49,,4\n",
        encoding="utf-8",
    )
    refused = platform.cli("agencies", "import", str(bad), "--as", "admin", check=False)
    assert refused.returncode == 1
    assert "row 3: 000.0X.03.H49" in refused.stderr and "row 4: 000.04.03.H49" in refused.stderr
    missing = platform.cli("agencies", "show", "000.03.03.H49", "--as", PROVINCE, check=False)
    assert missing.returncode != 0
