"""Groups as recipients, credential rotation and mTLS binding, import/export, connection status."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lienthong.events.v1 import events_pb2
from lienthong_common.db import transaction
from lienthong_common.errors import DomainError, ErrorKind
from lienthong_directory import connections, domain, groups, transfer
from lienthong_directory.consumers import DeliveryEvents
from lienthong_directory.models import OUTBOX, AgencyVersion

from .conftest import add_agency

DAY = date(2024, 1, 1)


@pytest.fixture
def province(sessions: sessionmaker[Session], quang_ninh: None) -> None:
    with transaction(sessions) as session:
        add_agency(session, "000.02.03.H49", 4, "Phường Bãi Cháy", on=date(2020, 1, 1))
        add_agency(session, "000.01.12.H49", 4, "Xã Thống Nhất", on=date(2020, 1, 1))
        session.flush()
        domain.upsert_agency(
            session=session,
            record=domain.AgencyRecord(code="000.00.02.H49", name="Sở Nội vụ", tier=3, kind="department"),
            effective_from=date(2020, 1, 1),
        )


def test_group_expansion_is_as_of_and_deterministic(sessions: sessionmaker[Session], province: None) -> None:
    with transaction(sessions) as session:
        codes = [v.code for v in groups.expand(session=session, address="tier4:000.00.00.H49", day=DAY)]
        assert codes == ["000.01.03.H49", "000.01.12.H49", "000.02.03.H49"]
        under = groups.expand(session=session, address="tier4:000.00.03.H49", day=DAY)
        assert [v.code for v in under] == ["000.01.03.H49", "000.02.03.H49"]
        with pytest.raises(DomainError, match="not in the directory on 2019-01-01"):
            groups.expand(session=session, address="tier4:000.00.00.H49", day=date(2019, 1, 1))
        departments = groups.expand(session=session, address="departments:H49", day=DAY)
        assert [v.code for v in departments] == ["000.00.02.H49"]
        groups.define_group(
            session=session,
            definition=groups.GroupDefinition(
                code="000.00.05.X00",
                name="Nhóm thử",
                rule="members",
                members=("000.02.03.H49", "000.00.12.H49", "000.01.03.H49"),
            ),
        )
        # A dissolved member (Hoành Bồ) is followed to its successor once it is dissolved.
        add_agency(
            session,
            "000.00.12.H49",
            3,
            "Ủy ban nhân dân huyện Hoành Bồ",
            on=date(2024, 6, 1),
            status="dissolved",
            successor="000.00.03.H49",
        )
        resolutions = groups.resolve_recipients(
            session=session, codes=["000.00.05.X00", "000.00.02.H49"], day=date(2024, 7, 1)
        )
        assert [(r.requested_code, r.resolved_code) for r in resolutions] == [
            ("000.00.05.X00", "000.00.03.H49"),
            ("000.00.05.X00", "000.01.03.H49"),
            ("000.00.05.X00", "000.02.03.H49"),
            ("000.00.02.H49", "000.00.02.H49"),
        ]
        assert all(r.group_code == "000.00.05.X00" for r in resolutions[:3])
        assert "member of group 000.00.05.X00 (Nhóm thử)" in resolutions[0].reason
        unknown = groups.resolve_recipients(session=session, codes=["000.00.09.X00"], day=DAY)
        assert not unknown[0].found and "not defined" in unknown[0].reason


def test_group_definitions_are_checked(sessions: sessionmaker[Session], province: None) -> None:
    cases = [
        groups.GroupDefinition(code="000.00.01.H49", name="x", rule="members", members=("000.00.02.H49",)),
        groups.GroupDefinition(code="000.00.01.X00", name="x", rule="everyone"),
        groups.GroupDefinition(code="000.00.01.X00", name="x", rule="departments_of", base_code="H4"),
        groups.GroupDefinition(code="000.00.01.X00", name="x", rule="members"),
    ]
    for definition in cases:
        with pytest.raises(DomainError) as caught, transaction(sessions) as session:
            groups.define_group(session=session, definition=definition)
        assert caught.value.kind is ErrorKind.INVALID
    with pytest.raises(DomainError, match="reserved for recipient groups"), transaction(sessions) as session:
        add_agency(session, "000.00.00.X00", 1)


def test_rotation_with_overlap_and_revocation(sessions: sessionmaker[Session], province: None) -> None:
    code = "000.00.00.H49"
    with transaction(sessions) as session:
        version = domain.set_credential(session=session, client_id=code, secret="old-secret-123", roles=[])
    with transaction(sessions) as session:
        rotation = domain.rotate_credential(
            session=session, client_id=code, new_secret="new-secret-456", overlap=timedelta(hours=1)
        )
    assert rotation.version == version  # tokens already issued stay valid to their expiry
    with transaction(sessions) as session:
        assert domain.verify_credential(session=session, client_id=code, secret="new-secret-456").valid
        assert domain.verify_credential(session=session, client_id=code, secret="old-secret-123").valid
        stored = session.get(domain.Credential, code)
        assert stored is not None
        stored.previous_valid_until = datetime.now(UTC) - timedelta(seconds=1)
    with transaction(sessions) as session:
        assert not domain.verify_credential(session=session, client_id=code, secret="old-secret-123").valid
        assert domain.verify_credential(session=session, client_id=code, secret="new-secret-456").valid
        domain.set_credential(session=session, client_id=code, secret="", roles=[])
    with transaction(sessions) as session:
        assert not domain.verify_credential(session=session, client_id=code, secret="new-secret-456").valid
    with pytest.raises(DomainError, match="no active credential"), transaction(sessions) as session:
        domain.rotate_credential(session=session, client_id=code, new_secret="another-secret-789")


def test_client_certificate_binding(sessions: sessionmaker[Session], province: None) -> None:
    code, fingerprint = "000.00.00.H49", "ab" * 32
    with transaction(sessions) as session:
        domain.set_credential(session=session, client_id=code, secret="secret-secret-1", roles=[])
        domain.bind_client_certificate(
            session=session, client_id=code, fingerprint=fingerprint.upper(), required=False
        )
    with transaction(sessions) as session:
        verify = domain.verify_credential
        assert verify(session=session, client_id=code, secret="secret-secret-1").valid
        assert verify(
            session=session, client_id=code, secret="secret-secret-1", client_cert_fingerprint=fingerprint
        ).valid
        assert not verify(
            session=session, client_id=code, secret="secret-secret-1", client_cert_fingerprint="cd" * 32
        ).valid
        check = domain.verify_client_certificate(session=session, fingerprint=fingerprint)
        assert check.valid and check.agency_code == code
        domain.bind_client_certificate(
            session=session, client_id=code, fingerprint=fingerprint, required=True
        )
    with transaction(sessions) as session:
        assert not domain.verify_credential(session=session, client_id=code, secret="secret-secret-1").valid
        domain.set_credential(session=session, client_id="000.00.03.H49", secret="secret-secret-2", roles=[])
    with pytest.raises(DomainError, match="already bound"), transaction(sessions) as session:
        domain.bind_client_certificate(
            session=session, client_id="000.00.03.H49", fingerprint=fingerprint, required=False
        )


CSV_GOOD = """code,name,tier,kind,effective_from
000.00.00.H31,Ủy ban nhân dân tỉnh thử,2,provincial_peoples_committee,2020-01-01
000.01.05.H31,Xã thử,4,commune_peoples_committee,2020-01-01
000.00.05.H31,Huyện thử,3,district_peoples_committee,2020-01-01
"""


def _versions(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AgencyVersion)) or 0)


def test_import_is_all_or_nothing_and_reports_every_row(sessions: sessionmaker[Session]) -> None:
    bad = (
        CSV_GOOD
        + "000.0X.05.H31,Xấu,4,,\n000.00.06.H31,,3,,\n"
        + "000.00.07.H31,Bậc sai,9,,\n000.02.08.H31,Mồ côi,4,,2020-01-01\n"
    )
    with transaction(sessions) as session:
        report = transfer.import_content(session=session, fmt="csv", content=bad.encode(), default_day=DAY)
        assert not report.applied
        assert [(r.row, r.code) for r in report.rejected] == [
            (5, "000.0X.05.H31"),
            (6, "000.00.06.H31"),
            (7, "000.00.07.H31"),
            (8, "000.02.08.H31"),
        ]
        reasons = [r.reason for r in report.rejected]
        assert "segment Z1Z2 '0X'" in reasons[0]
        assert "name is required" in reasons[1]
        assert "tier 9" in reasons[2]
        assert "parent 000.00.08.H31 is not in the directory" in reasons[3]
        session.rollback()  # the gRPC layer rolls back an import with rejections
    with transaction(sessions) as session:
        assert _versions(session) == 0
        report = transfer.import_content(
            session=session, fmt="csv", content=CSV_GOOD.encode(), default_day=DAY
        )
        assert report.applied and report.created_or_changed == 3


def test_export_round_trip(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        transfer.import_content(session=session, fmt="csv", content=CSV_GOOD.encode(), default_day=DAY)
        content, kind = transfer.export_content(session=session, fmt="csv", day=DAY)
        assert kind.startswith("text/csv") and content.decode().count("\n") == 4
        exported, _ = transfer.export_content(session=session, fmt="json", day=DAY, history=True)
    document = json.loads(exported)
    assert {a["code"] for a in document["agencies"]} == {"000.00.00.H31", "000.01.05.H31", "000.00.05.H31"}
    with transaction(sessions) as session:
        again = transfer.import_content(session=session, fmt="csv", content=content, default_day=DAY)
        assert again.applied and again.unchanged == 3 and again.created_or_changed == 0


def _delivery_event(sender: str, recipient: str, at: datetime) -> events_pb2.Event:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    event = events_pb2.Event(event_id="e1", occurred_at=stamp, document_id="d1")
    event.delivery_updated.sender_code = sender
    event.delivery_updated.recipient_code = recipient
    event.delivery_updated.state = "delivered"
    return event


def test_connection_status_from_delivery_events(sessions: sessionmaker[Session], province: None) -> None:
    now = datetime.now(UTC)
    with transaction(sessions) as session:
        domain.set_credential(session=session, client_id="000.00.00.H49", secret="secret-secret-1", roles=[])
        domain.set_credential(session=session, client_id="000.00.03.H49", secret="secret-secret-2", roles=[])
        DeliveryEvents().handle(session, _delivery_event("000.00.00.H49", "000.01.03.H49", now))
        # A replayed older event does not move the time back.
        DeliveryEvents().handle(
            session, _delivery_event("000.00.00.H49", "000.01.03.H49", now - timedelta(days=90))
        )
        DeliveryEvents().handle(
            session, _delivery_event("000.00.03.H49", "000.02.03.H49", now - timedelta(days=40))
        )
    with transaction(sessions) as session:
        result = {
            c.code: c
            for c in connections.status(
                session=session, codes=[], province_code="H49", tier=0, day=domain.today(), window_days=30
            )
        }
        assert result["000.00.00.H49"].connected
        assert not result["000.00.03.H49"].connected and result["000.00.03.H49"].active_credential
        assert not result["000.01.03.H49"].connected  # exchanged, but no credential
        wide = connections.status(
            session=session,
            codes=["000.00.03.H49"],
            province_code="",
            tier=0,
            day=domain.today(),
            window_days=60,
        )
        assert wide[0].connected


def test_every_change_is_published(sessions: sessionmaker[Session], province: None) -> None:
    with transaction(sessions) as session:
        before = int(session.scalar(select(func.count()).select_from(OUTBOX.table)) or 0)
        transfer.import_content(session=session, fmt="csv", content=CSV_GOOD.encode(), default_day=DAY)
        after = int(session.scalar(select(func.count()).select_from(OUTBOX.table)) or 0)
    assert after - before == 3
