"""Routing's initial schema: documents, deliveries, status timeline, outbox, processed events.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 03:52:01.231695
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('documents',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('sender_code', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('edxml_document_id', sa.String(length=500), nullable=False),
    sa.Column('business_doc_type', sa.Integer(), nullable=False),
    sa.Column('referenced_document_id', sa.String(length=500), nullable=False),
    sa.Column('recipient_codes', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('indication', sa.String(length=40), nullable=False),
    sa.Column('sub_indication', sa.String(length=60), nullable=False),
    sa.Column('refusal_reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_documents_sender_code', 'documents', ['sender_code'], unique=False)
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
    op.create_table('deliveries',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('document_id', sa.String(length=36), nullable=False),
    sa.Column('recipient_code', sa.String(length=64), nullable=False),
    sa.Column('requested_code', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=30), nullable=False),
    sa.Column('last_status_code', sa.String(length=4), nullable=False),
    sa.Column('inbox_sequence', sa.BigInteger(), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('document_id', 'recipient_code', name='uq_deliveries_document_recipient'),
    sa.UniqueConstraint('recipient_code', 'inbox_sequence', name='uq_deliveries_inbox_sequence')
    )
    op.create_index('ix_deliveries_document_id', 'deliveries', ['document_id'], unique=False)
    op.create_table('status_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('document_id', sa.String(length=36), nullable=False),
    sa.Column('recipient_code', sa.String(length=64), nullable=False),
    sa.Column('code', sa.String(length=4), nullable=False),
    sa.Column('state', sa.String(length=30), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('actor_code', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_status_entries_document_id', 'status_entries', ['document_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_status_entries_document_id', table_name='status_entries')
    op.drop_table('status_entries')
    op.drop_index('ix_deliveries_document_id', table_name='deliveries')
    op.drop_table('deliveries')
    op.drop_table('processed_events')
    op.drop_table('outbox')
    op.drop_index('ix_documents_sender_code', table_name='documents')
    op.drop_table('documents')
