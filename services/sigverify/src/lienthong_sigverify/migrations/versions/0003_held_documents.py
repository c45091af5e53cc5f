"""Held documents: TRY_LATER verdicts waiting for revocation data (docs/adr/0075).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "held_documents",
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("submitted_event", sa.LargeBinary(), nullable=False),
        sa.Column("traceparent", sa.String(length=55), server_default="", nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("document_id"),
    )
    op.create_index("ix_held_documents_next_attempt_at", "held_documents", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_held_documents_next_attempt_at", table_name="held_documents")
    op.drop_table("held_documents")
