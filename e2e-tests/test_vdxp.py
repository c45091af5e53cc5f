"""Existing agency software connects unchanged: VNPT's real VDXP SDK 2.0.1 against /vdxp/.

The Java harness (vdxp_sdk/VdxpSdk.java) is compiled against the vendored, unchanged jars in
third_party/vdxp/vdxp-sdk/ and makes each call as an agency's document-management software
does; status packages are written and read with VNPT's own EdXML102 builder and parser. The
wire edge cases the SDK cannot be made to produce (wrong HMAC, a tampered file, an oversized
body, a slow 100-continue) are sent by lienthong_sdk.vdxp_client, which signs byte for byte
as the SDK does.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from harness import DEPARTMENT, OUTSIDER, PROVINCE, ROOT, RunningPlatform, eventually
from lienthong_common import edxml
from lienthong_sdk.demo import load_credentials
from lienthong_sdk.vdxp_client import VdxpClient

SDK = ROOT / "third_party" / "vdxp" / "vdxp-sdk"
# Demo agencies no other end-to-end test writes to: their lists hold only what these tests send
# (a system sees its oldest 100 pending items, and the busy demo agencies have more by now).
SENDER, RECIPIENT = "000.00.00.H44", "000.00.24.H44"
SHARED_A, SHARED_B = "000.00.00.G09", "000.00.04.H49"
HARNESS = Path(__file__).resolve().parent / "vdxp_sdk" / "VdxpSdk.java"


@pytest.fixture(scope="session")
def sdk_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The harness compiled against the real SDK jars (Java 17 is on every machine)."""
    javac = shutil.which("javac")
    assert javac, "javac (Java 17) is required to drive the real VDXP SDK"
    out = tmp_path_factory.mktemp("vdxp-sdk-classes")
    subprocess.run([javac, "-cp", f"{SDK}/*", "-d", str(out), str(HARNESS)], check=True, capture_output=True)
    return out


def systems(platform: RunningPlatform) -> dict[str, dict[str, Any]]:
    """What `lienthong demo` wrote: system id -> {secret, agencies}."""
    loaded: dict[str, dict[str, Any]] = json.loads(
        (platform.local.data_dir / "vdxp-systems.json").read_text()
    )
    return loaded


def shared_system(platform: RunningPlatform) -> tuple[str, str]:
    """A system acting for two agencies, registered as an administrator does (REST)."""
    admin_secret = load_credentials(platform.local.data_dir)["admin"]
    token = httpx.post(
        f"{platform.local.gateway_url}/v1/oauth/token",
        data={"client_id": "admin", "client_secret": admin_secret},
        timeout=60,
    ).json()["access_token"]
    system_id = f"vxp.saas.{uuid.uuid4().hex[:8]}"
    reply = httpx.post(
        f"{platform.local.gateway_url}/v1/vdxp/systems",
        json={"system_id": system_id, "agencies": [SHARED_A, SHARED_B]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert reply.status_code == 201, reply.text
    return system_id, reply.json()["secret"]


class Sdk:
    """One agency system's calls through the real Java SDK; each call one JVM, one JSON result."""

    def __init__(self, classes: Path, endpoint: str, system_id: str, secret: str) -> None:
        self.classes = classes
        self.endpoint = endpoint
        self.system_id = system_id
        self.secret = secret

    def __call__(self, command: str, *args: str) -> Any:
        result = subprocess.run(
            [
                "java",
                "-cp",
                f"{self.classes}:{SDK}/*",
                "VdxpSdk",
                self.endpoint,
                self.system_id,
                self.secret,
                command,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, f"SDK {command} failed:\n{result.stdout}\n{result.stderr}"
        return json.loads(result.stdout.strip().splitlines()[-1])


def offline(classes: Path, *args: str) -> Any:
    result = subprocess.run(
        ["java", "-cp", f"{classes}:{SDK}/*", "VdxpSdk", "-", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def sdk_for(platform: RunningPlatform, sdk_classes: Path) -> Callable[[str], Sdk]:
    def make(system_id: str, secret: str | None = None) -> Sdk:
        secret = secret or systems(platform)[system_id]["secret"]
        return Sdk(sdk_classes, f"{platform.local.gateway_url}/vdxp", system_id, secret)

    return make


def build_package(pdf: Path, sender: str, recipients: list[str], subject: str) -> bytes:
    header = edxml.MessageHeader(
        sender=edxml.Organization(organ_id=sender, organ_name="UBND tỉnh Quảng Ninh"),
        recipients=[edxml.Organization(organ_id=code) for code in recipients],
        code_number=str(uuid.uuid4().int % 100000),
        code_notation="UBND-VP",
        promulgation_place="Hạ Long",
        promulgation_date=dt.date.today(),
        document_type=1,
        document_type_name="Công văn",
        subject=subject,
    )
    attachment = edxml.Attachment(
        content_id="cid:1", name=pdf.name, content_type="application/pdf", data=pdf.read_bytes()
    )
    return edxml.build_package(edxml.EdxmlPackage(header=header, attachments=[attachment]))


def listed(sdk: Sdk, doc_id: str, messagetype: str = "edoc") -> list[dict[str, Any]]:
    reply = sdk("list", messagetype)
    assert reply["status"] == "OK", reply
    return [k for k in reply["knobsticks"] if k["id"] == doc_id]


def test_two_systems_exchange_a_document_and_its_status_through_the_real_sdk(
    platform: RunningPlatform,
    signed_pdf: Callable[[str, str], Path],
    sdk_for: Callable[..., Sdk],
    sdk_classes: Path,
    tmp_path: Path,
) -> None:
    sender, recipient = sdk_for(SENDER), sdk_for(RECIPIENT)
    subject = f"Chuyển sang trục mới qua SDK VDXP {uuid.uuid4().hex[:6]}"
    package = build_package(signed_pdf(SENDER, subject), SENDER, [RECIPIENT], subject)
    file = tmp_path / "outgoing.edxml"
    file.write_bytes(package)

    # sendEdoc, as ServiceTest sends it: from, servicetype, messagetype; recipients from the package.
    sent = sender("send", SENDER, str(file))
    assert sent["status"] == "OK" and sent["errorCode"] == "0", sent
    doc_id = sent["docID"]
    assert doc_id

    # The recipient's system polls until the document is verified and delivered.
    item = eventually(lambda: listed(recipient, doc_id), what="the document in getReceivedEdocList")[0]
    assert (item["from"], item["to"], item["messageType"], item["serviceType"]) == (
        SENDER,
        RECIPIENT,
        "edoc",
        "eDoc",
    )
    got = recipient("get", doc_id, str(tmp_path / "inbox"))
    assert got["status"] == "OK", got
    assert got["data"].encode("utf-8") == package, "the SDK hands over the package as UTF-8 text"
    now = dt.datetime.now()
    written = list((tmp_path / "inbox").rglob(f"{doc_id}.edxml"))
    assert written and written[0].read_bytes() == package, "the SDK saves the package as it was sent"
    assert written[0].parent.name in (str(now.month), str((now - dt.timedelta(days=1)).month))
    acked = recipient("ack", doc_id, "done")
    assert acked["status"] == "OK", acked
    assert not listed(recipient, doc_id), "done takes the document off the received list"
    again = recipient("ack", doc_id, "done")
    assert again["status"] == "OK", "an identical re-sent acknowledgement is fine"

    # The recipient answers with a status package written by VNPT's own builder.
    document_id = edxml.parse_package(package).header.document_id
    built = offline(
        sdk_classes,
        "build-status",
        RECIPIENT,
        SENDER,
        document_id,
        "",
        "03",
        "Đã tiếp nhận",
        str(tmp_path),
    )
    answered = recipient("send", RECIPIENT, built["path"], "", "status")
    assert answered["status"] == "OK", answered
    status_id = answered["docID"]

    # The sender's system lists it beside documents, fetches it in VNPT's shape and drains it.
    status_item = eventually(
        lambda: listed(sender, status_id), what="the status message in the sender's list"
    )[0]
    assert (status_item["messageType"], status_item["from"], status_item["to"]) == (
        "status",
        RECIPIENT,
        SENDER,
    )
    only_statuses = sender("list", "status")["knobsticks"]
    assert {k["messageType"] for k in only_statuses} == {"status"}
    fetched = sender("get", status_id, str(tmp_path / "statuses"))
    assert fetched["status"] == "OK", fetched
    status_file = tmp_path / "status-package.edxml"
    status_file.write_bytes(fetched["data"].encode("utf-8"))
    read_by_vnpt = offline(sdk_classes, "parse-status", str(status_file))
    assert read_by_vnpt["statusCode"] == "03"
    assert read_by_vnpt["from"] == RECIPIENT
    assert read_by_vnpt["responseForOrganId"] == SENDER
    assert read_by_vnpt["responseForDocumentId"] == document_id
    assert sender("ack", status_id, "done")["status"] == "OK"
    assert not listed(sender, status_id), "done drains the status message"

    # getSentEdocList shows the recipient's status, one flat row per recipient.
    rows = sender("sent", doc_id)
    assert rows["status"] == "OK", rows
    assert [(r["toCode"], r["fromCode"], r["receiveStatus"]) for r in rows["statusResult"]] == [
        (RECIPIENT, SENDER, "03")
    ]


def test_a_shared_system_receives_and_sends_for_each_of_its_agencies(
    platform: RunningPlatform,
    signed_pdf: Callable[[str, str], Path],
    sdk_for: Callable[..., Sdk],
    tmp_path: Path,
) -> None:
    shared = sdk_for(*shared_system(platform))
    subject = f"Gửi hai đơn vị một hệ thống {uuid.uuid4().hex[:6]}"
    file = tmp_path / "two.edxml"
    file.write_bytes(build_package(signed_pdf(PROVINCE, subject), PROVINCE, [SHARED_A, SHARED_B], subject))
    sent = sdk_for(PROVINCE)("send", PROVINCE, str(file), json.dumps([SHARED_A, SHARED_B]))
    assert sent["status"] == "OK", sent
    doc_id = sent["docID"]
    items = eventually(
        lambda: (found := listed(shared, doc_id)) and len(found) == 2 and found,
        what="the document listed once per agency of the shared system",
    )
    assert {i["to"] for i in items} == {SHARED_A, SHARED_B}

    # ServiceTest's loop on ONE service object: sticky headers, one timestamp, unquoted ids.
    handled = shared("loop", str(tmp_path / "loop"))
    mine = [h for h in handled if h["item"]["id"] == doc_id]
    assert mine and all(h["get"] == "OK" and h["ack"] == "OK" and h["dataLength"] > 0 for h in mine)
    assert not listed(shared, doc_id)

    # It sends for one of its agencies, and is refused for an agency it does not serve.
    reply_file = tmp_path / "reply.edxml"
    reply_file.write_bytes(
        build_package(
            signed_pdf(SHARED_B, "Báo cáo"), SHARED_B, [PROVINCE], f"Báo cáo {uuid.uuid4().hex[:6]}"
        )
    )
    assert shared("send", SHARED_B, str(reply_file))["status"] == "OK"
    refused = shared("send", PROVINCE, str(file))
    assert (refused["status"], refused["errorCode"]) == ("FAIL", "403"), refused


def test_a_wrong_secret_is_refused_with_fail_401(
    platform: RunningPlatform, sdk_for: Callable[..., Sdk]
) -> None:
    wrong = sdk_for(PROVINCE, "not-the-secret")("list")
    assert (wrong["status"], wrong["errorCode"]) == ("FAIL", "401"), wrong
    unknown = Sdk(sdk_for(PROVINCE).classes, f"{platform.local.gateway_url}/vdxp", "vxp.unknown.99", "x")(
        "list"
    )
    assert (unknown["status"], unknown["errorCode"]) == ("FAIL", "401"), unknown


def test_the_directory_reads_as_the_sdk_expects(
    platform: RunningPlatform, sdk_for: Callable[..., Sdk]
) -> None:
    sdk = sdk_for(OUTSIDER)
    agencies = sdk("agencies")
    assert agencies["status"] == "OK", agencies
    assert PROVINCE in {a["code"] for a in agencies["agencies"]}
    units = sdk("sync")
    assert units["status"] == "OK", units
    unit = next(u for u in units["unitSynchronize"] if u["code"] == DEPARTMENT)
    assert unit["pid"] == PROVINCE and unit["version"] > 0 and unit["deleted"] is False
    # The SDK sample's own body is broken JSON; an agency system may not write the directory.
    refused = sdk(
        "register", '{"id":"1","pcode":"000.00.00.H49","code":"000.00.31.H49","name":"x","mail":cc""}'
    )
    assert (refused["status"], refused["errorCode"]) == ("FAIL", "403"), refused


# -- the wire, where the SDK cannot be made to misbehave -------------------------------------------


def client(platform: RunningPlatform, system_id: str, secret: str | None = None) -> VdxpClient:
    return VdxpClient(
        f"{platform.local.gateway_url}/vdxp", system_id, secret or systems(platform)[system_id]["secret"]
    )


def test_bad_requests_get_a_clear_fail_and_store_nothing(
    platform: RunningPlatform, signed_pdf: Callable[[str, str], Path]
) -> None:
    subject = f"Sai lệch {uuid.uuid4().hex[:6]}"
    package = build_package(signed_pdf(PROVINCE, subject), PROVINCE, [DEPARTMENT], subject)
    with client(platform, PROVINCE) as province:
        params = {"from": PROVINCE, "servicetype": "eDoc", "messagetype": "edoc"}
        # A file changed after hashing.
        headers = province.headers({**params, "hash-file": "0" * 64}, "application/octet-stream")
        tampered = province.http.post(
            f"{province.endpoint}/sendEdoc", content=package + b"\r\n", headers=headers
        )
        assert (tampered.json()["status"], tampered.json()["ErrorCode"]) == ("FAIL", "422")
        assert "hash-file" in tampered.json()["ErrorDesc"]
        # A signature made with another secret; an unsigned call.
        with client(platform, PROVINCE, "guessed") as guess:
            assert guess.call("getReceivedEdocList", {"servicetype": "eDoc"})["ErrorCode"] == "401"
        bare = province.http.post(f"{province.endpoint}/getReceivedEdocList", headers={"systemid": PROVINCE})
        assert (bare.status_code, bare.json()["ErrorCode"]) == (200, "401")
        # A status for a document this agency never exchanged.
        status = edxml.build_vnpt_status_package(
            edxml.StatusPackage(
                response_for_organ_id=DEPARTMENT,
                response_for_document_id=f"{DEPARTMENT},2026/01/02,{uuid.uuid4().int % 9999}/XYZ",
                response_for_code="1/XYZ",
                response_for_promulgation_date=dt.date(2026, 1, 2),
                sender=edxml.Organization(organ_id=PROVINCE),
                status_code="03",
                description="",
                timestamp=dt.datetime.now(dt.UTC),
            )
        )
        unknown = province.send_edoc(status, {**params, "messagetype": "status"})
        assert (unknown["status"], unknown["ErrorCode"]) == ("FAIL", "404"), unknown
        # Unknown operation, and the trailing-slash endpoint the SDK can be configured with.
        assert province.call("sendEdocs")["ErrorCode"] == "404"
        with VdxpClient(province.endpoint, PROVINCE, province.secret) as slash:
            slash.endpoint = f"{province.endpoint}/"  # as configured with a trailing slash: //op
            assert slash.call("countReceiveEdoc", {"servicetype": "eDoc"})["status"] == "OK"
        # downloadEdoc errors are an empty body (the SDK would save any body as the package).
        missing = province.request("downloadEdoc", {"docId": str(uuid.uuid4())}, method="GET")
        assert missing.status_code == 404 and missing.content == b""
    sent_before = client(platform, PROVINCE).call("getSentEdocList", {"servicetype": "eDoc"})
    assert subject not in json.dumps(sent_before, ensure_ascii=False)


def test_identical_resends_store_one_document(
    platform: RunningPlatform, signed_pdf: Callable[[str, str], Path]
) -> None:
    subject = f"Gửi lại {uuid.uuid4().hex[:6]}"
    package = build_package(signed_pdf(PROVINCE, subject), PROVINCE, [DEPARTMENT], subject)
    with client(platform, PROVINCE) as province:
        province.timestamp = "07122026T101010+0001"  # one SDK object: the same headers each time
        params = {"from": PROVINCE, "servicetype": "eDoc", "messagetype": "edoc", "to": [DEPARTMENT]}
        first = province.send_edoc(package, params)
        second = province.send_edoc(package, params)
        assert first["status"] == "OK" and second["DocId"] == first["DocId"]
        doc_id = first["DocId"]
        assert province.download_edoc(doc_id) == package
        count = province.call("countReceiveStatus", {"servicetype": "eDoc"})
        assert count["status"] == "OK" and isinstance(count["count"], int)


def raw_exchange(platform: RunningPlatform, request: bytes, *, then: bytes = b"") -> bytes:
    """Send raw bytes; read the first reply, send `then`, read until the JSON body ends."""
    url = urlsplit(platform.local.gateway_url)
    assert url.hostname and url.port
    with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
        sock.sendall(request)
        reply = sock.recv(65536)
        if then:
            sock.sendall(then)
        while not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


def test_expect_continue_is_answered_before_the_body_and_an_oversized_body_refused_unread(
    platform: RunningPlatform,
) -> None:
    with client(platform, PROVINCE) as province:
        headers = province.headers({"servicetype": "eDoc", "messagetype": "edoc"}, "application/json")
        head = b"".join(k.encode() + b": " + v + b"\r\n" for k, v in headers.items())
        path = urlsplit(province.endpoint).path
        # The server asks for the body (100 Continue) before it has any of it.
        request = (
            f"POST {path}/getReceivedEdocList HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            "Expect: 100-continue\r\n".encode()
            + head
            + b"\r\n"
        )
        reply = raw_exchange(platform, request, then=b"{}")
        assert reply.startswith(b"HTTP/1.1 100 Continue"), reply[:200]
        assert b'"status":"OK"' in reply
        # A package declared larger than the limit is refused without being read.
        send_headers = province.headers(
            {"from": PROVINCE, "servicetype": "eDoc", "messagetype": "edoc", "hash-file": "0"},
            "application/octet-stream",
        )
        head = b"".join(k.encode() + b": " + v + b"\r\n" for k, v in send_headers.items())
        big = 10 * 1024 * 1024 * 1024
        refused = raw_exchange(
            platform,
            f"POST {path}/sendEdoc HTTP/1.1\r\nHost: x\r\nContent-Length: {big}\r\n".encode()
            + b"Expect: 100-continue\r\n"
            + head
            + b"\r\n",
        )
        assert b'"status":"FAIL"' in refused and b'"ErrorCode":"413"' in refused, refused[:400]


def test_header_lines_of_64_kib_and_sticky_headers_are_accepted(platform: RunningPlatform) -> None:
    with client(platform, DEPARTMENT) as department:
        reply = department.call(
            "getReceivedEdocList",
            {"servicetype": "eDoc", "messagetype": "edoc", "filePath": "x" * 70_000, "status": "done"},
        )
        assert reply["status"] == "OK", reply
