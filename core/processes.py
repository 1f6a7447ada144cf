"""CPU-bound work in a process of its own, so it never holds the worker's event loop.

A thread is not enough for pure-Python work such as WeasyPrint's layout: it holds the GIL, and while a burst of
invoice PDFs renders in threads, the event loop that runs approval activities and workflow tasks gets a sliver of
it (20 approvals of invoices at once took longer than the 10 s an approver's request waits). One spawned process
renders instead (spawned, not forked: the worker's process runs Temporal's threads, which a fork would copy
half-way); it starts on first use, keeps its imports warm, and exits with the worker.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return _pool


async def in_process(function: Callable[..., T], *arguments: Any) -> T:
    """`function(*arguments)` in the CPU process (both must pickle: a module-level function, plain data)."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), function, *arguments)
