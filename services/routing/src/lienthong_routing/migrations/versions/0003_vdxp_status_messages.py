"""VDXP pull: status messages per addressee, and the indexes the pending and sent lists read.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNTAKEN = "state = 'delivered'"
NOT_DONE = "state != 'done'"


def upgrade() -> None:
    op.create_table('status_messages',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('document_id', sa.String(length=36), nullable=False),
    sa.Column('status_id', sa.String(length=36), nullable=False),
    sa.Column('status_package_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('from_code', sa.String(length=64), nullable=False),
    sa.Column('to_code', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.String(length=4), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], ),
    sa.ForeignKeyConstraint(['status_package_id'], ['status_packages.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('status_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_status_messages_document_id'), ['document_id'], unique=False)
        batch_op.create_index(
            'ix_status_messages_pending',
            ['to_code', 'created_at'],
            unique=False,
            sqlite_where=sa.text(NOT_DONE),
            postgresql_where=sa.text(NOT_DONE),
        )

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index(
            'ix_deliveries_untaken',
            ['recipient_code', 'delivered_at'],
            unique=False,
            sqlite_where=sa.text(UNTAKEN),
            postgresql_where=sa.text(UNTAKEN),
        )

    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index('ix_documents_sender_code')
        batch_op.create_index('ix_documents_sender_created', ['sender_code', 'created_at'], unique=False)
        batch_op.create_index('ix_documents_edxml_document_id', ['edxml_document_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index('ix_documents_edxml_document_id')
        batch_op.drop_index('ix_documents_sender_created')
        batch_op.create_index('ix_documents_sender_code', ['sender_code'], unique=False)

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_untaken')

    with op.batch_alter_table('status_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_status_messages_pending')
        batch_op.drop_index(batch_op.f('ix_status_messages_document_id'))

    op.drop_table('status_messages')
