"""Alembic environment for routing's database."""

from lienthong_common.migrations import run
from lienthong_routing.models import Base

run(Base.metadata)
