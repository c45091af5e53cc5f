"""Reads and writes of verification reports and of the trust store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lienthong_sigverify.domain import Indication, Report, SignatureCheck
from lienthong_sigverify.models import TrustAnchorRow, TrustStoreChangeRow, VerificationReportRow


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
            policy=report.policy,
            trust_store_version=report.trust_store_version,
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
            policy=row.policy,
            trust_store_version=row.trust_store_version,
        ),
        verified_at=verified_at,
    )


# ------------------------------------------------------------------------------ trust store


@dataclass(frozen=True)
class TrustAnchor:
    """A trusted CA certificate as the store keeps it."""

    fingerprint: str
    subject: str
    certificate_pem: str
    self_signed: bool
    not_before: datetime
    not_after: datetime
    added_at: datetime
    added_by: str
    note: str
    version_added: int
    removed_at: datetime | None
    removed_by: str


class UnknownAnchor(LookupError):
    """No trust anchor matches the fingerprint (or a prefix matches several)."""


def trust_store_version(session: Session) -> int:
    """The number of the last change to the trust store (0 when it was never changed)."""
    return int(session.scalar(select(func.max(TrustStoreChangeRow.version))) or 0)


def list_anchors(session: Session, *, include_removed: bool = False) -> list[TrustAnchor]:
    """Trusted anchors (and, on request, removed ones), oldest first."""
    query = select(TrustAnchorRow).order_by(TrustAnchorRow.version_added)
    if not include_removed:
        query = query.where(TrustAnchorRow.removed_at.is_(None))
    return [_anchor(row) for row in session.scalars(query)]


def anchor_known(session: Session, *, fingerprint: str) -> bool:
    """True when the certificate was ever in the store, even if an administrator removed it."""
    return session.get(TrustAnchorRow, fingerprint) is not None


def add_anchor(
    session: Session,
    *,
    fingerprint: str,
    subject: str,
    certificate_pem: str,
    self_signed: bool,
    not_before: datetime,
    not_after: datetime,
    added_by: str,
    note: str,
    at: datetime,
) -> tuple[TrustAnchor, bool]:
    """Trust a certificate (re-trust a removed one); returns it and whether anything changed."""
    row = session.get(TrustAnchorRow, fingerprint)
    if row is not None and row.removed_at is None:
        return _anchor(row), False
    version = _record_change(session, action="add", fingerprint=fingerprint, by=added_by, at=at)
    if row is None:
        row = TrustAnchorRow(fingerprint=fingerprint)
        session.add(row)
    row.subject = subject
    row.certificate_pem = certificate_pem
    row.self_signed = self_signed
    row.not_before = not_before
    row.not_after = not_after
    row.added_at = at
    row.added_by = added_by
    row.note = note
    row.version_added = version
    row.removed_at = None
    row.removed_by = ""
    session.flush()
    return _anchor(row), True


def remove_anchor(session: Session, *, fingerprint: str, removed_by: str, at: datetime) -> TrustAnchor:
    """Stop trusting the anchor whose fingerprint is (or starts with) `fingerprint`."""
    prefix = fingerprint.strip().lower()
    rows = list(
        session.scalars(
            select(TrustAnchorRow).where(
                TrustAnchorRow.fingerprint.startswith(prefix, autoescape=True),
                TrustAnchorRow.removed_at.is_(None),
            )
        )
    )
    if not rows:
        raise UnknownAnchor(f"no trusted anchor has fingerprint {fingerprint}")
    if len(rows) > 1:
        raise UnknownAnchor(f"fingerprint prefix {fingerprint} matches {len(rows)} anchors; give more digits")
    row = rows[0]
    _record_change(session, action="remove", fingerprint=row.fingerprint, by=removed_by, at=at)
    row.removed_at = at
    row.removed_by = removed_by
    session.flush()
    return _anchor(row)


def _record_change(session: Session, *, action: str, fingerprint: str, by: str, at: datetime) -> int:
    change = TrustStoreChangeRow(action=action, fingerprint=fingerprint, changed_by=by, changed_at=at)
    session.add(change)
    session.flush()
    return int(change.version)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _anchor(row: TrustAnchorRow) -> TrustAnchor:
    return TrustAnchor(
        fingerprint=row.fingerprint,
        subject=row.subject,
        certificate_pem=row.certificate_pem,
        self_signed=row.self_signed,
        not_before=_aware(row.not_before),
        not_after=_aware(row.not_after),
        added_at=_aware(row.added_at),
        added_by=row.added_by,
        note=row.note,
        version_added=row.version_added,
        removed_at=_aware(row.removed_at) if row.removed_at else None,
        removed_by=row.removed_by,
    )
