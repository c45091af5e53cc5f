"""Statistics' one table of facts: raw counts per agency per month, built only from events."""

from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lienthong_common.outbox import Outbox


class Base(DeclarativeBase):
    pass


# Statistics publishes nothing; the outbox also brings the processed_events table its
# consumer records event ids in.
OUTBOX = Outbox.for_metadata(Base.metadata)

COUNTERS = ("documents_sent", "documents_received", "documents_refused", "statuses")


class AgencyMonthCount(Base):
    """What one agency did electronically in one month (YYYY-MM, Asia/Ho_Chi_Minh)."""

    __tablename__ = "agency_month_counts"

    agency_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True, index=True)
    documents_sent: Mapped[int] = mapped_column(BigInteger, default=0)
    documents_received: Mapped[int] = mapped_column(BigInteger, default=0)
    documents_refused: Mapped[int] = mapped_column(BigInteger, default=0)
    statuses: Mapped[int] = mapped_column(BigInteger, default=0)
