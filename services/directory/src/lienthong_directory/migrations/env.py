"""Alembic environment of the directory database."""

from lienthong_common.migrations import run
from lienthong_directory.models import Base

run(Base.metadata)
