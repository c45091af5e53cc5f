"""Running pyHanko's coroutines from synchronous callers: one event loop per thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_local = threading.local()
_pool_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _loop() -> asyncio.AbstractEventLoop:
    # One event loop per thread, reused: asyncio.run() per document would cost a loop each time,
    # and asyncio.Runner.run() re-checks the SIGINT handler on every call (~3 % of a verify).
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    return loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on this thread's loop (or a worker thread's, inside a loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _loop().run_until_complete(coro)
    # Called from inside an event loop (not the expected use): run on a worker thread.
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="pades-verify")
    return _pool.submit(lambda: _loop().run_until_complete(coro)).result()
