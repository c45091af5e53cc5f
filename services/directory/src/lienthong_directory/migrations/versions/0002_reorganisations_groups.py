"""groups, credential rotation and mTLS binding, certificate binding periods, exchanges

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("credentials") as batch:
        batch.add_column(sa.Column("previous_secret_hash", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("previous_valid_until", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("client_cert_fingerprint", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column(
                "client_cert_required", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch.create_index(
            "ix_credentials_client_cert_fingerprint", ["client_cert_fingerprint"], unique=False
        )
    with op.batch_alter_table("agency_certificates") as batch:
        batch.add_column(sa.Column("valid_from", sa.Date(), nullable=True))
        batch.add_column(sa.Column("valid_to", sa.Date(), nullable=True))
    op.create_table(
        "agency_groups",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("rule", sa.String(length=30), nullable=False),
        sa.Column("base_code", sa.String(length=20), nullable=False),
        sa.Column("members", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "agency_exchanges",
        sa.Column("agency_code", sa.String(length=20), nullable=False),
        sa.Column("last_exchange_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agency_code"),
    )


def downgrade() -> None:
    op.drop_table("agency_exchanges")
    op.drop_table("agency_groups")
    with op.batch_alter_table("agency_certificates") as batch:
        batch.drop_column("valid_to")
        batch.drop_column("valid_from")
    with op.batch_alter_table("credentials") as batch:
        batch.drop_index("ix_credentials_client_cert_fingerprint")
        batch.drop_column("client_cert_required")
        batch.drop_column("client_cert_fingerprint")
        batch.drop_column("previous_valid_until")
        batch.drop_column("previous_secret_hash")
