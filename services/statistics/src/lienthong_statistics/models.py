"""Statistics' tables.

Derived from events only (rebuilt identically by a replay from offset 0): per-agency monthly
counts and the deliveries still awaiting acknowledgement. Primary data: the paper traffic the
agencies report (current values, plus every revision kept for audit).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lienthong_common.outbox import Outbox


class Base(DeclarativeBase):
    pass


# Statistics publishes nothing; the outbox also brings the processed_events table its
# consumer records event ids in.
OUTBOX = Outbox.for_metadata(Base.metadata)

COUNTERS = (
    "documents_sent",
    "documents_received",
    "documents_refused",
    "statuses",
    "documents_submitted",
    "acknowledgements_late",
)


class AgencyMonthCount(Base):
    """What one agency did electronically in one month (YYYY-MM, Asia/Ho_Chi_Minh)."""

    __tablename__ = "agency_month_counts"

    agency_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True, index=True)
    documents_sent: Mapped[int] = mapped_column(BigInteger, default=0)
    documents_received: Mapped[int] = mapped_column(BigInteger, default=0)
    documents_refused: Mapped[int] = mapped_column(BigInteger, default=0)
    statuses: Mapped[int] = mapped_column(BigInteger, default=0)
    documents_submitted: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    acknowledgements_late: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class PendingAcknowledgement(Base):
    """A delivery its recipient has not acknowledged yet (deleted when it is)."""

    __tablename__ = "pending_acknowledgements"

    document_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    recipient_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The Vietnamese calendar day of delivery: the acknowledgement is due by its end.
    delivered_day: Mapped[str] = mapped_column(String(10), index=True)


class PaperReport(Base):
    """An agency's current report of its paper traffic in one month."""

    __tablename__ = "paper_reports"

    agency_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True, index=True)
    paper_issued: Mapped[int] = mapped_column(BigInteger)
    paper_received: Mapped[int] = mapped_column(BigInteger)
    electronic_issued_other: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, default="")
    revision: Mapped[int] = mapped_column(Integer)
    reported_by: Mapped[str] = mapped_column(String(64))
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PaperReportRevision(Base):
    """Every accepted report, in order: the audit trail of corrections."""

    __tablename__ = "paper_report_revisions"

    agency_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True)
    paper_issued: Mapped[int] = mapped_column(BigInteger)
    paper_received: Mapped[int] = mapped_column(BigInteger)
    electronic_issued_other: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, default="")
    reported_by: Mapped[str] = mapped_column(String(64))
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
