"""Support for the test suites: a throw-away database on the repository's local PostgreSQL.

Not used by the services. The server is the one `infra/postgres.sh` runs (started if it is not,
idempotently) on `PGPORT` (default 55432), the same one the end-to-end tests use.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[4]


@contextmanager
def throwaway_postgres(prefix: str, *, root: Path = REPOSITORY) -> Iterator[str]:
    """A new empty database `<prefix>_<random>`: its SQLAlchemy URL; dropped afterwards."""
    import psycopg

    port = os.environ.get("PGPORT", "55432")
    started = subprocess.run(
        ["bash", str(root / "infra" / "postgres.sh"), "start"],
        env={**os.environ, "PGPORT": port},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert started.returncode == 0, f"infra/postgres.sh start failed:\n{started.stderr[-2000:]}"
    admin = f"postgresql://lienthong:lienthong@127.0.0.1:{port}/postgres"
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://lienthong:lienthong@127.0.0.1:{port}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
