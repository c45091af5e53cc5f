"""document_attachments.package_offset/package_length: an attachment kept inside its package

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("document_attachments") as batch:
        batch.add_column(sa.Column("package_offset", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("package_length", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("document_attachments") as batch:
        batch.drop_column("package_length")
        batch.drop_column("package_offset")
