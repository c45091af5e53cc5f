"""directory revision counter (cache invalidation of resolutions), index for children lookups

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
    table = op.create_table(
        "directory_revision",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # Existing data counts as revision 1 (any value works: caches start empty).
    op.bulk_insert(table, [{"id": 1, "revision": 1}])
    with op.batch_alter_table("agency_versions") as batch:
        batch.create_index("ix_agency_versions_parent_code", ["parent_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("agency_versions") as batch:
        batch.drop_index("ix_agency_versions_parent_code")
    op.drop_table("directory_revision")
