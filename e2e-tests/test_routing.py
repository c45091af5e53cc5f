"""Routing end to end: 500 documents, routing SIGKILLed mid-way, every recipient gets each once.

The full 500 run takes about three minutes on this 2-core machine when it is busy (sending
is threaded, the PDF signed once), so it runs at full size on the sqlite flavour only; the
postgres flavour runs the same test with 120 documents (LIENTHONG_TEST_ROUTING_POSTGRES_DOCUMENTS;
set it to 500 for the full run there). LIENTHONG_TEST_ROUTING_DOCUMENTS changes the sqlite size.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import column, create_engine, func, select, table

from harness import COMMUNE, DEPARTMENT, PROVINCE, RunningPlatform, eventually, one_pdf_package
from lienthong_common import edxml
from lienthong_sdk.client import ApiError, LienthongClient

SIZES = {
    "sqlite": int(os.environ.get("LIENTHONG_TEST_ROUTING_DOCUMENTS", "500")),
    "postgres": int(os.environ.get("LIENTHONG_TEST_ROUTING_POSTGRES_DOCUMENTS", "120")),
}
RECIPIENTS = (DEPARTMENT, COMMUNE)


def package(pdf: bytes, number: int, notation: str) -> bytes:
    return one_pdf_package(
        sender=PROVINCE,
        recipients=RECIPIENTS,
        pdf=pdf,
        subject=f"Kiểm thử định tuyến {number}",
        notation=notation,
        number=number,
        sender_name="UBND tỉnh Quảng Ninh",
    )


def routing_database_url(platform: RunningPlatform) -> str:
    urls = platform.local.database_urls
    return urls.get("routing") or f"sqlite:///{Path(platform.local.data_dir) / 'routing.db'}"


def send_all(
    platform: RunningPlatform, packages: list[bytes], on_sent: threading.Event, kill_after: int
) -> list[str]:
    local = threading.local()
    sent: list[str] = []
    lock = threading.Lock()

    def send(body: bytes) -> None:
        if not hasattr(local, "client"):
            local.client = platform.client(PROVINCE)
        client: LienthongClient = local.client
        for attempt in range(60):
            try:
                reply = client.send_package(body, idempotency_key=hashlib.sha256(body).hexdigest())
                break
            except ApiError as error:  # rate limit, or a service restarting: the key makes a retry safe
                if error.status not in (429, 502, 503, 504, 0):
                    raise
                time.sleep(min(0.2 * (attempt + 1), 2.0))
        else:
            raise AssertionError("a document could not be sent")
        with lock:
            sent.append(reply["id"])
            if len(sent) == kill_after:
                on_sent.set()

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(send, packages))
    return sent


@pytest.mark.e2e
def test_500_documents_exactly_once_across_a_routing_sigkill(platform: RunningPlatform, signed_pdf) -> None:
    documents = SIZES[platform.flavour]
    pdf = signed_pdf(PROVINCE, "Kiểm thử định tuyến").read_bytes()  # signed once, reused
    notation = f"RT-{uuid.uuid4().hex[:6]}"
    packages = [package(pdf, number, notation) for number in range(1, documents + 1)]

    started = time.monotonic()
    third_sent = threading.Event()
    killer = threading.Thread(
        target=lambda: third_sent.wait(300) and platform.local.kill("routing"),  # SIGKILL mid-way
        daemon=True,
    )
    killer.start()
    sent = send_all(platform, packages, third_sent, kill_after=documents // 3)
    killer.join()
    platform.restart("routing")
    assert len(set(sent)) == documents

    # Through the API: each recipient's inbox lists every document exactly once.
    for code in RECIPIENTS:

        def delivered(code: str = code) -> Counter[str] | None:
            try:
                with platform.client(code) as client:
                    seen = Counter(item["id"] for item in client.inbox_all(limit=500))
            except ApiError as error:
                if error.status not in (429, 502, 503):
                    raise
                return None
            return seen if all(seen[d] >= 1 for d in sent) else None

        seen = eventually(delivered, timeout=420, interval=2, what=f"{documents} documents in {code}'s inbox")
        assert all(seen[d] == 1 for d in sent), f"duplicates in {code}'s inbox"

    # In routing's own database: one delivery per (document, recipient), no more.
    deliveries = table("deliveries", column("document_id"), column("recipient_code"))
    engine = create_engine(routing_database_url(platform))
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(deliveries.c.document_id, deliveries.c.recipient_code, func.count())
                .where(deliveries.c.document_id.in_(sent))
                .group_by(deliveries.c.document_id, deliveries.c.recipient_code)
            ).all()
    finally:
        engine.dispose()
    assert len(rows) == documents * len(RECIPIENTS)
    assert {(r[1]) for r in rows} == set(RECIPIENTS)
    assert all(r[2] == 1 for r in rows)

    # The evidence chain survived the crash intact, and track shows the deadline flag.
    verdict = platform.cli_json("evidence", "verify", "--as", "admin")
    assert verdict["valid"] and verdict["entries"] >= documents * (1 + len(RECIPIENTS))
    print(f"routing e2e ({platform.flavour}): {documents} documents in {time.monotonic() - started:.0f}s")


@pytest.mark.e2e
def test_push_status_packages_and_deadlines(platform: RunningPlatform, signed_pdf) -> None:
    """A webhook receives the delivery signed, by reference (the content's URL, not the package);
    the sender's webhook receives the status by reference too and reads it as an edXML package.
    The receivers listen on loopback: the harness allows 127.0.0.0/8 as an operator would."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[tuple[dict[str, str], bytes]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(
                (dict(self.headers.items()), self.rfile.read(int(self.headers["Content-Length"])))
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        hook = platform.cli_json("webhook", "set", "--as", COMMUNE, "--url", url)
        secret = hook["secret"]
        platform.cli_json("webhook", "set", "--as", PROVINCE, "--url", url + "/sender")
        pdf = signed_pdf(PROVINCE, "Kiểm thử đẩy").read_bytes()
        with platform.client(PROVINCE) as client:
            document_id = client.send_package(package(pdf, 1, f"PUSH-{uuid.uuid4().hex[:6]}"))["id"]

        def pushed() -> bool:
            return any(json.loads(body).get("document", {}).get("id") == document_id for _, body in received)

        eventually(pushed, timeout=60, what="the delivery pushed to the webhook")
        headers, body = next(
            (h, b)
            for h, b in received
            if json.loads(b)["type"] == "delivery" and json.loads(b)["document"]["id"] == document_id
        )
        from lienthong_routing.webhooks import verify_signature

        assert verify_signature(
            secret=secret,
            body=body,
            timestamp=headers["X-Lienthong-Timestamp"],
            signature=headers["X-Lienthong-Signature"],
        )
        # By reference: the content's URL, fetched with the recipient's own token; no package inline.
        delivery = json.loads(body)["document"]
        assert delivery["content"] == f"/v1/documents/{document_id}/content"
        assert b"edXML" not in body and b"base64" not in body
        # Pull works beside push, and the recipient's status reaches the sender as edXML.
        with platform.client(COMMUNE) as client:
            assert document_id in {i["id"] for i in client.inbox_all(limit=500)}
            assert client._request("GET", delivery["content"]).content == client.content(document_id)
            client.post_status(document_id, "03", "Đã tiếp nhận")

        def status_pushed() -> list[dict[str, Any]]:
            return [
                payload
                for headers, b in received
                if headers.get("X-Lienthong-Event") == "status"
                and (payload := json.loads(b))["document"]["id"] == document_id
                and payload["status"]["code"] == "03"
            ]

        status_push = eventually(status_pushed, timeout=60, what="the status pushed to the sender")[0]
        assert "package_base64" not in status_push["status"]
        with platform.client(PROVINCE) as client:
            pushed_status = client._request("GET", status_push["status"]["url"]).content
        assert edxml.parse_status_package(pushed_status).status_code == "03"
        # Fetching the content recorded 01 (arrived) before the recipient's 03.
        statuses = platform.cli_json("statuses", document_id, "--as", PROVINCE)["statuses"]
        assert [(s["from"], s["code"]) for s in statuses] == [(COMMUNE, "01"), (COMMUNE, "03")]
        assert status_push["status"]["url"].endswith(f"/statuses/{statuses[-1]['number']}")
        number = str(statuses[-1]["number"])
        xml = platform.cli("statuses", document_id, "--as", PROVINCE, "--number", number).stdout
        assert edxml.parse_status_package(xml.encode()).status_code == "03"
        shown = platform.cli_json("webhook", "show", "--as", COMMUNE)
        assert shown["pushed"] >= 1 and "secret" not in shown
        doc = platform.cli_json("track", document_id, "--as", PROVINCE)
        assert {r["code"]: r["state"] for r in doc["recipients"]}[COMMUNE] == "accepted"
        assert isinstance(platform.cli_json("deadlines", "--as", DEPARTMENT)["overdue"], list)
    finally:
        platform.cli("webhook", "delete", "--as", COMMUNE, check=False)
        platform.cli("webhook", "delete", "--as", PROVINCE, check=False)
        server.shutdown()
