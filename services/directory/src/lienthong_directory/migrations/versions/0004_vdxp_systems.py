"""VDXP systems: their agencies and their envelope-encrypted secrets

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "vdxp_systems",
        sa.Column("system_id", sa.String(length=64), nullable=False),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("system_id"),
    )
    op.create_table(
        "vdxp_system_agencies",
        sa.Column("system_id", sa.String(length=64), nullable=False),
        sa.Column("agency_code", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(["system_id"], ["vdxp_systems.system_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["agency_code"], ["agencies.code"]),
        sa.PrimaryKeyConstraint("system_id", "agency_code"),
    )
    with op.batch_alter_table("vdxp_system_agencies") as batch:
        batch.create_index("ix_vdxp_system_agencies_agency_code", ["agency_code"], unique=False)
    op.create_table(
        "vdxp_system_secrets",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("system_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("algorithm", sa.String(length=40), nullable=False),
        sa.Column("master_key_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["system_id"], ["vdxp_systems.system_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("vdxp_system_secrets") as batch:
        batch.create_index("ix_vdxp_system_secrets_system_id", ["system_id"], unique=False)
        batch.create_index("ix_vdxp_system_secrets_master_key_id", ["master_key_id"], unique=False)


def downgrade() -> None:
    op.drop_table("vdxp_system_secrets")
    op.drop_table("vdxp_system_agencies")
    op.drop_table("vdxp_systems")
