"""One publishing outbox relay per SQLite database: an flock on `<database>.relay.lock`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import MetaData

from lienthong_common.db import make_engine, make_session_factory
from lienthong_common.kafka import OutboxRelay
from lienthong_common.outbox import Outbox
from lienthong_common.settings import KafkaSettings


def _relay(database: Path) -> OutboxRelay:
    metadata = MetaData()
    outbox = Outbox.for_metadata(metadata)
    engine = make_engine(f"sqlite:///{database}")
    return OutboxRelay(
        service="test",
        settings=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        sessions=make_session_factory(engine),
        outbox=outbox,
    )


def test_one_relay_leads_and_a_standby_takes_over_when_it_stops(tmp_path: Path) -> None:
    first, second = _relay(tmp_path / "svc.db"), _relay(tmp_path / "svc.db")
    assert first.is_leader()
    assert not second.is_leader()
    assert first.is_leader()  # still held
    assert not second.is_leader()  # standbys keep trying, without success while it is held
    assert (tmp_path / "svc.db.relay.lock").exists()
    first.stop()
    assert second.is_leader()
    third = _relay(tmp_path / "svc.db")
    assert not third.is_leader()
    second.stop()
    third.stop()


def test_relays_of_different_databases_both_lead(tmp_path: Path) -> None:
    a, b = _relay(tmp_path / "a.db"), _relay(tmp_path / "b.db")
    assert a.is_leader() and b.is_leader()
    a.stop()
    b.stop()


def test_a_crashed_leaders_lock_is_released_by_the_kernel(tmp_path: Path) -> None:
    lock = tmp_path / "svc.db.relay.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        relay = _relay(tmp_path / "svc.db")
        assert not relay.is_leader()
        holder.kill()  # SIGKILL: no chance to unlock
        holder.wait(10)
        assert relay.is_leader()
        relay.stop()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def test_in_memory_sqlite_always_leads() -> None:
    metadata = MetaData()
    relay = OutboxRelay(
        service="test",
        settings=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        sessions=make_session_factory(make_engine("sqlite://")),
        outbox=Outbox.for_metadata(metadata),
    )
    assert relay.is_leader()
    relay.stop()
