"""Alembic environment for statistics' database."""

from lienthong_common.migrations import run
from lienthong_statistics.models import Base

run(Base.metadata)
