"""A throw-away database on the shared PostgreSQL server, for the component benchmarks.

The server is the test one (`LIENTHONG_BENCH_PGPORT`, else `LIENTHONG_TEST_PGPORT`, else 55432);
when it is not reachable the benchmark says so and goes on with SQLite alone.
"""

from __future__ import annotations

import os
import sys

PGPORT = int(os.environ.get("LIENTHONG_BENCH_PGPORT", os.environ.get("LIENTHONG_TEST_PGPORT", "55432")))
ADMIN_URL = f"postgresql://lienthong:lienthong@127.0.0.1:{PGPORT}/postgres"


def fresh_postgres(prefix: str) -> str | None:
    """A new empty database `<prefix>_<pid>`; its SQLAlchemy URL, or None when unreachable."""
    try:
        import psycopg

        name = f"{prefix}_{os.getpid()}"
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://lienthong:lienthong@127.0.0.1:{PGPORT}/{name}"
    except Exception as error:  # noqa: BLE001 - reported, the run goes on with SQLite
        print(f"PostgreSQL on {PGPORT} not reachable ({error}); skipping it", file=sys.stderr)
        return None


def drop_postgres(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
