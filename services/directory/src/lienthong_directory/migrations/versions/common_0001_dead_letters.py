"""The consumer's dead-letter table, on lienthong_common's own Alembic branch.

Shared infrastructure tables get their own branch (base revision, label `lienthong_common`)
in every service, independent of the service's own revisions, so they never collide with a
service's next revision; `lienthong-<svc> migrate` upgrades to all heads. See docs/adr/0011-dead-letters.md.

Revision ID: common_0001
Revises:
Create Date: 2026-11-26 07:10:00
"""

from collections.abc import Sequence

from lienthong_common.outbox import create_dead_letters_table, drop_dead_letters_table

revision: str = "common_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("lienthong_common",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_dead_letters_table()


def downgrade() -> None:
    drop_dead_letters_table()
