"""The sigverify database: one verification report per document, plus the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lienthong_common.outbox import Outbox


class Base(DeclarativeBase):
    pass


OUTBOX = Outbox.for_metadata(Base.metadata)


class VerificationReportRow(Base):
    """What sigverify concluded about one document's signatures."""

    __tablename__ = "verification_reports"

    document_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    indication: Mapped[str] = mapped_column(String(20), nullable=False)
    sub_indication: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # One object per signature (SignatureCheck.to_json), in the order found.
    signatures: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    verified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
