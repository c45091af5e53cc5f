"""Paper reports with their revisions, pending acknowledgements, submitted and late counters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 04:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('agency_month_counts') as batch:
        batch.add_column(sa.Column('documents_submitted', sa.BigInteger(), server_default='0', nullable=False))
        batch.add_column(sa.Column('acknowledgements_late', sa.BigInteger(), server_default='0', nullable=False))
    op.create_table('pending_acknowledgements',
    sa.Column('document_id', sa.String(length=64), nullable=False),
    sa.Column('recipient_code', sa.String(length=64), nullable=False),
    sa.Column('delivered_day', sa.String(length=10), nullable=False),
    sa.PrimaryKeyConstraint('document_id', 'recipient_code')
    )
    op.create_index('ix_pending_acknowledgements_delivered_day', 'pending_acknowledgements', ['delivered_day'], unique=False)
    op.create_table('paper_reports',
    sa.Column('agency_code', sa.String(length=64), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('paper_issued', sa.BigInteger(), nullable=False),
    sa.Column('paper_received', sa.BigInteger(), nullable=False),
    sa.Column('electronic_issued_other', sa.BigInteger(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('reported_by', sa.String(length=64), nullable=False),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('agency_code', 'period')
    )
    op.create_index('ix_paper_reports_period', 'paper_reports', ['period'], unique=False)
    op.create_table('paper_report_revisions',
    sa.Column('agency_code', sa.String(length=64), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('paper_issued', sa.BigInteger(), nullable=False),
    sa.Column('paper_received', sa.BigInteger(), nullable=False),
    sa.Column('electronic_issued_other', sa.BigInteger(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('reported_by', sa.String(length=64), nullable=False),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('agency_code', 'period', 'revision')
    )


def downgrade() -> None:
    op.drop_table('paper_report_revisions')
    op.drop_index('ix_paper_reports_period', table_name='paper_reports')
    op.drop_table('paper_reports')
    op.drop_index('ix_pending_acknowledgements_delivered_day', table_name='pending_acknowledgements')
    op.drop_table('pending_acknowledgements')
    with op.batch_alter_table('agency_month_counts') as batch:
        batch.drop_column('acknowledgements_late')
        batch.drop_column('documents_submitted')
