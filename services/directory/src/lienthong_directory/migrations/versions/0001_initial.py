"""initial directory schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('agencies',
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('credentials',
    sa.Column('client_id', sa.String(length=100), nullable=False),
    sa.Column('secret_hash', sa.Text(), nullable=False),
    sa.Column('roles', sa.String(length=200), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('client_id')
    )
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
    op.create_table('agency_certificates',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('agency_code', sa.String(length=20), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('certificate_der', sa.LargeBinary(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agency_code'], ['agencies.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('agency_code', 'fingerprint')
    )
    with op.batch_alter_table('agency_certificates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agency_certificates_fingerprint'), ['fingerprint'], unique=False)

    op.create_table('agency_versions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('tier', sa.Integer(), nullable=False),
    sa.Column('parent_code', sa.String(length=20), nullable=False),
    sa.Column('province_code', sa.String(length=3), nullable=False),
    sa.Column('kind', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('successor_code', sa.String(length=20), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('telephone', sa.String(length=100), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('website', sa.String(length=500), nullable=False),
    sa.Column('illustrative', sa.Boolean(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['code'], ['agencies.code'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('agency_versions', schema=None) as batch_op:
        batch_op.create_index('ix_agency_versions_code_valid_from', ['code', 'valid_from'], unique=False)
        batch_op.create_index('ix_agency_versions_province_code', ['province_code'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('agency_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_agency_versions_province_code')
        batch_op.drop_index('ix_agency_versions_code_valid_from')

    op.drop_table('agency_versions')
    with op.batch_alter_table('agency_certificates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agency_certificates_fingerprint'))

    op.drop_table('agency_certificates')
    op.drop_table('processed_events')
    op.drop_table('outbox')
    op.drop_table('credentials')
    op.drop_table('agencies')
