"""Reads and writes of verification reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from lienthong_sigverify.domain import Indication, Report, SignatureCheck
from lienthong_sigverify.models import VerificationReportRow


@dataclass(frozen=True)
class StoredReport:
    """A report as kept: the verdict, the document it is about and when it was reached."""

    document_id: str
    report: Report
    verified_at: datetime


def save_report(session: Session, *, document_id: str, report: Report, verified_at: datetime) -> None:
    """Store the report for `document_id` (one per document)."""
    session.add(
        VerificationReportRow(
            document_id=document_id,
            indication=report.indication.value,
            sub_indication=report.sub_indication,
            reason=report.reason,
            signatures=[check.to_json() for check in report.signatures],
            verified_at=verified_at.astimezone(UTC),
        )
    )
    session.flush()


def report_exists(session: Session, *, document_id: str) -> bool:
    """True once a report for `document_id` has been stored."""
    return session.get(VerificationReportRow, document_id) is not None


def get_report(session: Session, *, document_id: str) -> StoredReport | None:
    """The stored report for `document_id`, or None."""
    row = session.get(VerificationReportRow, document_id)
    if row is None:
        return None
    verified_at = row.verified_at
    if verified_at.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        verified_at = verified_at.replace(tzinfo=UTC)
    return StoredReport(
        document_id=row.document_id,
        report=Report(
            indication=Indication(row.indication),
            sub_indication=row.sub_indication,
            reason=row.reason,
            signatures=tuple(SignatureCheck.from_json(item) for item in row.signatures),
        ),
        verified_at=verified_at,
    )
