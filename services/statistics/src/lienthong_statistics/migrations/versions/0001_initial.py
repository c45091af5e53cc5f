"""Statistics' initial schema: per-agency monthly counts, outbox, processed events.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 03:55:02.328224
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('agency_month_counts',
    sa.Column('agency_code', sa.String(length=64), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('documents_sent', sa.BigInteger(), nullable=False),
    sa.Column('documents_received', sa.BigInteger(), nullable=False),
    sa.Column('documents_refused', sa.BigInteger(), nullable=False),
    sa.Column('statuses', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('agency_code', 'month')
    )
    op.create_index('ix_agency_month_counts_month', 'agency_month_counts', ['month'], unique=False)
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('topic', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('traceparent', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    op.create_table('processed_events',
    sa.Column('consumer', sa.String(length=100), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'event_id')
    )


def downgrade() -> None:
    op.drop_table('processed_events')
    op.drop_table('outbox')
    op.drop_index('ix_agency_month_counts_month', table_name='agency_month_counts')
    op.drop_table('agency_month_counts')
