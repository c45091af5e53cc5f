"""Statuses travel back as edXML Status packages, numbered per document."""

from __future__ import annotations

from routing_support import HA_LONG, QUANG_NINH, SENDER, FakeDirectory, route
from sqlalchemy.orm import Session

from lienthong_common import edxml
from lienthong_routing import deliveries, status_packages


def test_each_status_becomes_a_status_package(session: Session, directory: FakeDirectory) -> None:
    document_id = route(session, directory, recipients=[HA_LONG, QUANG_NINH])
    deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="01")
    deliveries.post_status(
        session=session, document_id=document_id, actor_code=HA_LONG, code="03", description="Đã tiếp nhận"
    )
    deliveries.post_status(session=session, document_id=document_id, actor_code=SENDER, code="13")
    found = status_packages.list_for(session=session, document_id=document_id)
    assert [(p.number, p.from_code, p.status_code) for p in found] == [
        (1, HA_LONG, "01"),
        (2, HA_LONG, "03"),
        (3, SENDER, "13"),  # one package for the recall request, whatever the number of recipients
    ]
    parsed = edxml.parse_status_package(
        status_packages.get(session=session, document_id=document_id, number=2).package
    )
    assert parsed.status_code == "03"
    assert parsed.description == "Đã tiếp nhận"
    assert parsed.sender.organ_id == HA_LONG
    assert parsed.response_for_document_id == f"{SENDER},2025/07/15,7816/VPCP-TTĐT"
    assert parsed.response_for_organ_id == SENDER
    assert parsed.response_for_code == "7816/VPCP-TTĐT"


def test_document_without_a_standard_id_has_no_packages(session: Session, directory: FakeDirectory) -> None:
    document_id = route(session, directory, recipients=[HA_LONG], edxml_document_id="7c0e9a4e-uuid-style")
    deliveries.post_status(session=session, document_id=document_id, actor_code=HA_LONG, code="01")
    assert status_packages.list_for(session=session, document_id=document_id) == []
    assert status_packages.response_for("7c0e9a4e-uuid-style") == ("", "", None)
