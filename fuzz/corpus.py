"""Seeds for fuzzing: well-formed packages and the hostile inputs the platform must refuse.

Shared by the hypothesis tests (bounded, in `make test`) and the atheris harness (`make fuzz`).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import re

from lienthong_common import edxml

SENDER = "000.00.00.H49"
RECIPIENT = "000.00.02.H49"
DOCUMENT_ID = "000.00.00.H49,2026/01/15,7816/UBND-VP"


def package(
    *, name: str = "vanban.pdf", data: bytes = b"%PDF-1.7\n%%EOF\n", content_type: str = "application/pdf"
) -> bytes:
    return edxml.build_package(
        edxml.EdxmlPackage(
            header=edxml.MessageHeader(
                sender=edxml.Organization(organ_id=SENDER, organ_name="UBND tỉnh Quảng Ninh"),
                recipients=[edxml.Organization(organ_id=RECIPIENT, organ_name="Sở Nội vụ")],
                code_number="7816",
                code_notation="UBND-VP",
                promulgation_place="Hạ Long",
                promulgation_date=dt.date(2026, 1, 15),
                document_type=1,
                document_type_name="Công văn",
                subject="Về việc kiểm thử",
            ),
            attachments=[
                edxml.Attachment(content_id="cid:1", name=name, content_type=content_type, data=data)
            ],
        )
    )


def status_package(code: str = "03") -> bytes:
    return edxml.build_status_package(
        edxml.StatusPackage(
            response_for_organ_id=SENDER,
            response_for_document_id=DOCUMENT_ID,
            response_for_code="7816/UBND-VP",
            response_for_promulgation_date=dt.date(2026, 1, 15),
            sender=edxml.Organization(organ_id=RECIPIENT, organ_name="Sở Nội vụ"),
            status_code=code,
            description="Đã tiếp nhận",
            timestamp=dt.datetime(2026, 1, 15, 9, 30),
        )
    )


XXE = (
    b'<?xml version="1.0"?><!DOCTYPE edXML [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b'<edXML:edXML xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">&e;</edXML:edXML>'
)
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]><edXML>&lol9;</edXML>"
)
# The same DTD in UTF-16: a byte scan for "<!DOCTYPE" cannot see it.
XXE_UTF16 = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'.encode(
    "utf-16"
)
DEEP_NESTING = b"<edXML>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</edXML>"
WIDE = b"<edXML>" + b"<a/>" * 200_000 + b"</edXML>"


def bad_base64(data: bytes) -> bytes:
    """The package with characters base64 does not have at the start of its attachment."""
    return re.sub(rb"(<edXML:ContentTransferEncoded[^>]*>)", rb"\1!!not*base64!!", data, count=1)


@functools.cache
def seeds() -> list[bytes]:
    valid = package()
    return [
        valid,
        status_package(),
        package(name="../../../etc/passwd"),
        package(name="..\\..\\boot.ini"),
        package(data=b""),
        package(content_type="application/zip", data=b"PK\x03\x04" + b"\x00" * 26),
        bad_base64(valid),
        b"\xff\xfe" + valid,
        valid.decode().encode("utf-16"),
        valid.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"'),
        b"junk before the declaration " + valid,
        XXE,
        BILLION_LAUGHS,
        XXE_UTF16,
        b"",
        b"<",
        base64.b64encode(valid),
    ]
