"""Alembic environment of the docstore database."""

from lienthong_common.migrations import run
from lienthong_docstore.models import Base

run(Base.metadata)
