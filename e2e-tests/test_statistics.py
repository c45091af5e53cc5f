"""The province's electronic-exchange report, end to end: a province with four tiers, a known mix
of electronic and paper traffic through the real pipeline (with the statistics consumer killed
and restarted halfway), exact percentages in the API, CLI, metrics and the HTML page in headless
Chromium, and a rebuild from offset 0 identical to the live numbers.

Electronic documents go through the gateway; paper counts are reported in bulk through
POST /v1/statistics/paper. Expected at tier 3 (departments): 13 sent electronically and 37 on
paper, a 26 % send rate; 49 received electronically and 1 on paper, a 98 % receive rate.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx

from harness import ROOT, RunningPlatform, eventually, one_pdf_package
from lienthong_common.pades import sign_pdf
from lienthong_common.pdfgen import make_pdf
from lienthong_common.pki import load_identity
from lienthong_sdk.demo import identity_dir, load_credentials, seed
from lienthong_statistics.domain import VIETNAM

PROVINCE_CODE = "H98"  # an illustrative province of our own, so other tests' traffic is elsewhere
CENTRAL = "000.00.00.G98"  # tier 1
PEOPLES_COMMITTEE = "000.00.00.H98"  # tier 2
OFFICE = "000.00.01.H98"  # tier 2, never exchanges anything: not connected
DEPARTMENTS = ["000.00.02.H98", "000.00.03.H98", "000.00.04.H98"]  # tier 3
COMMUNES = ["000.01.02.H98", "000.01.03.H98"]  # tier 4

AGENCIES = [
    {
        "code": CENTRAL,
        "name": "Bộ Thử nghiệm (minh họa)",
        "tier": 1,
        "kind": "ministry",
        "illustrative": True,
    },
    {"code": PEOPLES_COMMITTEE, "name": "UBND tỉnh H98 (minh họa)", "tier": 2, "illustrative": True},
    {"code": OFFICE, "name": "Văn phòng UBND tỉnh H98 (minh họa)", "tier": 2, "illustrative": True},
    *[
        {"code": c, "name": f"Sở {i} tỉnh H98 (minh họa)", "tier": 3, "illustrative": True}
        for i, c in enumerate(DEPARTMENTS)
    ],
    *[
        {"code": c, "name": f"UBND xã {i} (minh họa)", "tier": 4, "illustrative": True}
        for i, c in enumerate(COMMUNES)
    ],
]

D1, D2, D3 = DEPARTMENTS
C1, C2 = COMMUNES
# (sender, recipients, how many documents)
TRAFFIC_BEFORE_CRASH = [(PEOPLES_COMMITTEE, DEPARTMENTS, 8), (CENTRAL, [D1], 1), (D1, [C1], 7)]
TRAFFIC_AFTER_CRASH = [
    (PEOPLES_COMMITTEE, DEPARTMENTS, 8),
    (D2, [C2], 4),
    (D3, [PEOPLES_COMMITTEE], 2),
    (C1, [PEOPLES_COMMITTEE], 2),
]
# agency: (paper issued, paper received, issued electronically outside the axis)
PAPER = {
    PEOPLES_COMMITTEE: (4, 1, 20),
    D1: (20, 1, 0),
    D2: (17, 0, 0),  # first reported as 10, then corrected
    D3: (0, 0, 24),
    C1: (2, 0, 0),
}
EXPECTED_TIERS = {
    2: {
        "agencies": 2,
        "agencies_connected": 1,
        "connected_share": 0.5,
        "documents_sent": 16,
        "documents_received": 4,
        "paper_issued": 4,
        "paper_received": 1,
        "send_rate": 0.8,
        "receive_rate": 0.8,
        "electronic_share": 0.9,
    },
    3: {
        "agencies": 3,
        "agencies_connected": 3,
        "connected_share": 1.0,
        "documents_sent": 13,
        "documents_received": 49,
        "paper_issued": 37,
        "paper_received": 1,
        "send_rate": 0.26,
        "receive_rate": 0.98,
        "electronic_share": 0.5,
    },
    4: {
        "agencies": 2,
        "agencies_connected": 2,
        "connected_share": 1.0,
        "documents_sent": 2,
        "documents_received": 11,
        "paper_issued": 2,
        "paper_received": 0,
        "send_rate": 0.5,
        "receive_rate": 1.0,
        "electronic_share": 0.5,
    },
}
PAGE_FIGURES = {  # what the page's per-tier table shows
    2: {
        "connected": "1/2",
        "documents_sent": "16",
        "send_rate": "80 %",
        "receive_rate": "80 %",
        "electronic_share": "90 %",
    },
    3: {
        "connected": "3/3",
        "documents_sent": "13",
        "paper_issued": "37",
        "send_rate": "26 %",
        "documents_received": "49",
        "receive_rate": "98 %",
        "electronic_share": "50 %",
    },
    4: {"connected": "2/2", "documents_received": "11", "send_rate": "50 %", "receive_rate": "100 %"},
}


def package(pdf: bytes, sender: str, recipients: list[str], number: int) -> bytes:
    return one_pdf_package(
        sender=sender,
        recipients=recipients,
        pdf=pdf,
        subject=f"Báo cáo thống kê {number}",
        notation=f"TK-{uuid.uuid4().hex[:6]}",
        number=number,
        place="Tỉnh H98",
    )


def signed(platform: RunningPlatform, code: str) -> bytes:
    """A PDF signed by the agency's dev certificate (in-process: the CLI's `sign` is tested elsewhere)."""
    return sign_pdf(
        make_pdf(f"Văn bản của {code}", ["Kính gửi các cơ quan."]),
        load_identity(identity_dir(platform.local.data_dir), code),
    )


def send_all(
    platform: RunningPlatform, pdfs: dict[str, bytes], traffic: list[tuple[str, list[str], int]]
) -> int:
    sent = 0
    for sender, recipients, count in traffic:
        with platform.client(sender) as client:
            for _ in range(count):
                sent += 1
                client.send_package(package(pdfs[sender], sender, recipients, sent))
    return sent


def tier_rows(report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {
        int(r["tier"]): r
        for r in report["rows"]
        if r["province_code"] == PROVINCE_CODE and r["month"] == "cumulative"
    }


def matches(row: dict[str, Any], expected: dict[str, Any]) -> bool:
    return all(row.get(k) == v for k, v in expected.items())


def chromium() -> str:
    found = subprocess.run(
        ["bash", str(ROOT / "infra" / "chromium.sh")], capture_output=True, text=True, timeout=900
    )
    assert found.returncode == 0, f"infra/chromium.sh failed:\n{found.stderr}"
    return found.stdout.strip().splitlines()[-1]


def headless(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_province_report_is_exact_live_rebuilt_and_rendered(
    platform: RunningPlatform, tmp_path: Path
) -> None:
    dataset = tmp_path / "h98.json"
    dataset.write_text(json.dumps({"agencies": AGENCIES}, ensure_ascii=False), encoding="utf-8")
    seed(
        directory_address=platform.local.grpc_address("directory"),
        data_dir=platform.local.data_dir,
        dataset=dataset,
    )
    month = dt.datetime.now(VIETNAM).strftime("%Y-%m")
    senders = {s for s, _, _ in TRAFFIC_BEFORE_CRASH + TRAFFIC_AFTER_CRASH}
    pdfs = {code: signed(platform, code) for code in senders}

    # Electronic traffic, with the statistics consumer SIGKILLed in the middle of it.
    send_all(platform, pdfs, TRAFFIC_BEFORE_CRASH)
    platform.local.kill("statistics")
    send_all(platform, pdfs, TRAFFIC_AFTER_CRASH)
    platform.restart("statistics")

    # Paper traffic, reported by the agencies themselves: idempotent and correctable.
    for code, (issued, received, other) in PAPER.items():
        first = (10, 0, 0) if code == D2 else (issued, received, other)
        with platform.client(code) as client:
            reply = client.report_paper(
                period=month, paper_issued=first[0], paper_received=first[1], electronic_issued_other=first[2]
            )
            assert reply["created"] and reply["revision"] == 1
            again = client.report_paper(
                period=month, paper_issued=first[0], paper_received=first[1], electronic_issued_other=first[2]
            )
            assert (again["changed"], again["revision"]) == (False, 1)
    corrected = platform.cli_json(
        "stats", "paper", "--as", D2, "--period", month, "--issued", "17", "--received", "0"
    )
    assert (corrected["changed"], corrected["revision"], corrected["paper_issued"]) == (True, 2, 17)
    history = platform.cli_json("stats", "paper", "--as", D2, "--show", "--period", month)
    assert [r["paper_issued"] for r in history] == [10, 17]
    with httpx.Client(base_url=platform.local.gateway_url) as http, platform.client(D1) as d1:
        other = http.post(
            "/v1/statistics/paper",
            json={"agency_code": D2, "period": month, "paper_issued": 1, "paper_received": 1},
            headers={"Authorization": f"Bearer {d1.token()}"},
        )
        assert other.status_code == 403, other.text

    # The live report reproduces the percentages exactly.
    def live() -> dict[str, Any] | None:
        with platform.client(PEOPLES_COMMITTEE) as client:
            report = client.report(province=PROVINCE_CODE, from_month=month, to_month=month)
        rows = tier_rows(report)
        return report if all(matches(rows.get(t, {}), e) for t, e in EXPECTED_TIERS.items()) else None

    report = eventually(live, timeout=120, what="the report to reach the expected figures")
    rows = tier_rows(report)
    assert rows[3]["send_rate"] == 0.26 and rows[3]["receive_rate"] == 0.98
    whole = next(
        r for r in report["provinces"] if r["province_code"] == PROVINCE_CODE and r["month"] == "cumulative"
    )
    assert (
        whole["agencies"],
        whole["agencies_connected"],
        whole["documents_sent"],
        whole["documents_received"],
    ) == (7, 6, 31, 64)
    per_agency = {a["agency_code"]: a for a in report["agencies"]}
    assert per_agency[D2]["paper_issued"] == 17 and per_agency[D2]["send_rate"] == 4 / 21
    assert per_agency[OFFICE]["connected"] is False and per_agency[OFFICE]["send_rate"] is None
    tier1 = platform.cli_json(
        "stats", "report", "--as", CENTRAL, "--tier", "1", "--from", month, "--to", month, "--agencies"
    )
    central = next(a for a in tier1["agencies"] if a["agency_code"] == CENTRAL)
    assert (central["tier"], central["documents_sent"], central["send_rate"], central["receive_rate"]) == (
        1,
        1,
        1.0,
        None,
    )

    # CSV and the CLI's table say the same.
    csv_text = platform.cli(
        "stats",
        "report",
        "--as",
        PEOPLES_COMMITTEE,
        "--province",
        PROVINCE_CODE,
        "--from",
        month,
        "--to",
        month,
        "--format",
        "csv",
    ).stdout
    header, *lines = csv_text.splitlines()
    columns = header.split(",")
    tier3 = next(
        dict(zip(columns, line.split(","), strict=True))
        for line in lines
        if line.startswith(f"tier,{PROVINCE_CODE},3,,cumulative,")
    )
    assert (tier3["send_rate"], tier3["receive_rate"], tier3["documents_sent"], tier3["paper_issued"]) == (
        "0.26",
        "0.98",
        "13",
        "37",
    )
    table = platform.cli(
        "stats",
        "report",
        "--as",
        PEOPLES_COMMITTEE,
        "--province",
        PROVINCE_CODE,
        "--from",
        month,
        "--to",
        month,
    ).stdout
    assert re.search(
        r"H98\s+3 dept/district\s+cumulative\s+3/3\s+100%\s+13\s+37\s+26%\s+49\s+1\s+98%\s+50%", table
    ), table

    # Live metrics on the gateway's metrics port; its API port has no anonymous /metrics.
    assert httpx.get(f"{platform.local.gateway_url}/metrics").status_code in (401, 404)
    metrics = httpx.get(f"http://127.0.0.1:{platform.local.metrics_port('gateway')}/metrics").text
    assert "lienthong_exchange_up 1.0" in metrics
    submitted = float(
        re.search(r'lienthong_exchange_documents_submitted_total\{tier="3"\} (\S+)', metrics).group(1)
    )  # type: ignore[union-attr]
    delivered = float(
        re.search(r'lienthong_exchange_documents_delivered_total\{tier="3"\} (\S+)', metrics).group(1)
    )  # type: ignore[union-attr]
    assert submitted >= 13 and delivered >= 49
    assert re.search(r'lienthong_exchange_acknowledgements_overdue\{tier="4"\} \d', metrics)

    # Rebuild from offset 0: identical to the live numbers, consumer crash or not.
    rebuilt = platform.cli_json("stats", "rebuild", "--as", "admin")
    assert rebuilt["identical"], rebuilt["differences"]
    assert rebuilt["events_counted"] > 0 and rebuilt["rows_compared"] > 0
    assert (
        platform.cli("stats", "rebuild", "--as", PEOPLES_COMMITTEE, check=False).returncode == 1
    )  # admins only
    assert matches(tier_rows(live() or {"rows": []}).get(3, {}), EXPECTED_TIERS[3])

    # Signing in to the page takes the form (with its CSRF token); a token in the URL does nothing.
    gateway = platform.local.gateway_url
    query = {"province": PROVINCE_CODE, "from": month, "to": month}
    with platform.client(PEOPLES_COMMITTEE) as client:
        token = client.token()
    in_url = httpx.get(
        f"{gateway}/reports", params={**query, "token": token}, headers={"Accept": "text/html"}
    )
    assert in_url.status_code == 401 and "lienthong_report_token" not in in_url.headers.get("set-cookie", "")
    secret = load_credentials(platform.local.data_dir)[PEOPLES_COMMITTEE]
    with httpx.Client(base_url=gateway) as browser:
        login = browser.get("/reports", headers={"Accept": "text/html"})
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', login.text).group(1)  # type: ignore[union-attr]
        form = {"client_id": PEOPLES_COMMITTEE, "client_secret": secret, "csrf": csrf}
        assert (
            browser.post("/reports/login", data=form, headers={"Origin": "https://evil.example"}).status_code
            == 403
        )
        signed_in = browser.post("/reports/login", data=form, headers={"Origin": gateway})
        assert signed_in.status_code == 303 and "samesite=strict" in signed_in.headers["set-cookie"].lower()
        served = browser.get("/reports", params=query)
    assert served.status_code == 200, served.text[:500]
    csp = served.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and served.headers["x-frame-options"] == "DENY"
    assert served.headers["referrer-policy"] == "no-referrer"

    # The page, in a real headless Chromium, shows the same figures. Chromium cannot sign in by
    # itself from the command line, so it renders the page the gateway served, under the same
    # CSP (a <meta> carries what a <meta> may: everything but frame-ancestors).
    binary = chromium()
    meta_csp = "; ".join(p for p in csp.split("; ") if not p.startswith("frame-ancestors"))
    page_file = tmp_path / "report.html"
    page_file.write_text(
        served.text.replace(
            "<head>", f'<head><meta http-equiv="Content-Security-Policy" content="{meta_csp}">', 1
        ),
        encoding="utf-8",
    )
    url = page_file.as_uri()
    dumped = headless(binary, tmp_path / "profile", "--dump-dom", url)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    assert "Báo cáo gửi, nhận văn bản điện tử" in dom and "<svg" in dom, dom[:2000]
    for tier, figures in PAGE_FIGURES.items():
        row = re.search(rf'<tr data-tier="{tier}">(.*?)</tr>', dom, re.S)
        assert row, f"no row for tier {tier} in the page"
        cells = dict(re.findall(r'data-measure="(\w+)">([^<]*)<', row.group(1)))
        assert {k: cells.get(k) for k in figures} == figures, f"tier {tier}: {cells}"
    assert re.search(r'data-measure="documents_sent"><span>[^<]*<br>[^<]*</span><b>31</b>', dom), (
        "summary card"
    )
    assert token not in dom and "access_token" not in dom  # no token in the page or its links

    shot = tmp_path / "report.png"
    shot_run = headless(
        binary,
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1280,2200",
        "--hide-scrollbars",
        url,
    )
    assert shot.exists() and shot.stat().st_size > 20_000, shot_run.stderr[-2000:]
    keep = os.environ.get("LIENTHONG_REPORT_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)

    # Without a credential the page asks to sign in instead of showing numbers.
    anonymous = httpx.get(f"{platform.local.gateway_url}/reports", headers={"Accept": "text/html"})
    assert anonymous.status_code == 401 and "client_secret" in anonymous.text
