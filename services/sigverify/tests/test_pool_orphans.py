"""Verification workers leave with their service process, even when it is killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

# A stand-in for the sigverify process: it starts the real pool, makes sure every worker is up,
# prints their pids, then waits to be killed.
SERVICE = """
import os, sys, time
from lienthong_sigverify.verification import new_pool

pool = new_pool(2)
list(pool.map(abs, range(8)))  # the workers are up (spawned together, then initialized)
print(" ".join(str(pid) for pid in pool._processes), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_workers_exit_when_the_service_is_killed() -> None:
    service = subprocess.Popen([sys.executable, "-c", SERVICE], stdout=subprocess.PIPE, text=True)
    try:
        assert service.stdout is not None
        workers = [int(pid) for pid in service.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
        os.kill(service.pid, signal.SIGKILL)
        service.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in workers if _alive(pid)]
        assert not left, f"workers {left} outlived their killed service process"
    finally:
        if service.poll() is None:
            service.kill()
        for pid in workers if "workers" in locals() else []:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
