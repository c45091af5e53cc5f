"""SIGKILL a consumer while events are in flight: every document still arrives exactly once."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from harness import COMMUNE, DEPARTMENT, PROVINCE, RunningPlatform, eventually, one_pdf_package
from lienthong_sdk.client import ApiError


def package(pdf: bytes, number: int) -> bytes:
    return one_pdf_package(
        sender=PROVINCE,
        recipients=[DEPARTMENT, COMMUNE],
        pdf=pdf,
        subject=f"Kiểm thử sự cố {number}",
        notation=f"CRASH-{uuid.uuid4().hex[:6]}",
        number=number,
        sender_name="UBND tỉnh Quảng Ninh",
    )


@pytest.mark.parametrize("victim", ["sigverify", "routing", "statistics"])
def test_sigkill_consumer_loses_and_duplicates_nothing(
    platform: RunningPlatform, signed_pdf, victim: str
) -> None:
    pdf = signed_pdf(PROVINCE, f"Kiểm thử {victim}").read_bytes()
    before = received_counts(platform)
    sent: list[str] = []
    with platform.client(PROVINCE) as client:
        for number in range(12):
            if number == 4:
                platform.local.kill(victim)  # SIGKILL: no drain, no goodbye
            sent.append(client.send_package(package(pdf, number))["id"])
    platform.restart(victim)

    for code in (DEPARTMENT, COMMUNE):

        def delivered(code: str = code) -> Counter[str] | None:
            try:
                with platform.client(code) as client:
                    seen = Counter(item["id"] for item in client.inbox_all(limit=200))
            except ApiError as error:  # the restarted service may still be warming up
                if error.status != 503:
                    raise
                return None
            return seen if all(seen[d] >= 1 for d in sent) else None

        seen = eventually(delivered, timeout=90, what=f"all {len(sent)} documents in {code}'s inbox")
        assert all(seen[d] == 1 for d in sent), f"duplicates in {code}'s inbox: {seen}"

    # Statistics counted each delivery exactly once, crash or not.
    expected = {c: before.get(c, 0) + len(sent) for c in (DEPARTMENT, COMMUNE)}
    eventually(
        lambda: {c: received_counts(platform).get(c, 0) for c in expected} == expected,
        timeout=60,
        what=f"statistics to reach {expected}",
    )

    with platform.client(PROVINCE) as client:
        for doc_id in sent:
            doc = client.document(doc_id)
            assert sorted(r["code"] for r in doc["recipients"]) == sorted([DEPARTMENT, COMMUNE])
            created = [t for t in doc["timeline"] if t["state"] == "delivered"]
            assert len(created) <= 2


def received_counts(platform: RunningPlatform) -> dict[str, int]:
    with platform.client(PROVINCE) as client:
        report = client.report()
    return {a["agency_code"]: int(a.get("documents_received", 0)) for a in report.get("agencies", [])}
