"""CPU-bound work in a process of its own, so it never holds the worker's event loop.

A thread is not enough for pure-Python work such as WeasyPrint's layout: it holds the GIL, and while a burst of
invoice PDFs renders in threads, the event loop that runs approval activities and workflow tasks gets a sliver of
it (20 approvals of invoices at once took longer than the 10 s an approver's request waits). One spawned process
renders instead (spawned, not forked: the worker's process runs Temporal's threads, which a fork would copy
half-way); it starts on first use, keeps its imports warm, and exits with the worker: `in_process`.

Work whose cost someone else decides (an admin's report layout: a template's loops) also needs a hard limit, and
gets a spawned process of its own per call instead: `run_limited`. Not the shared one, for two reasons. The
kernel's CPU limit (RLIMIT_CPU) counts a process's whole life, so in a process that stays warm it would run out in
the middle of some innocent invoice after enough of them; and a limit ends a process with a signal, which breaks a
ProcessPoolExecutor for good (BrokenProcessPool: every queued and later invoice would fail until the worker
restarts). A process per call starts in about a second (spawn and imports, outside the limit) and dies alone.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import pickle
import resource
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TypeVar, cast

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


class LimitExceeded(Exception):
    """Work run by `run_limited` went past one of its limits and was stopped; the message says which."""


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int  # CPU time (user and system) the work may use, counted from when it starts: RLIMIT_CPU
    memory_bytes: int | None = None  # the process's whole address space, imports included: RLIMIT_AS
    wall_seconds: float | None = None  # how long to wait for the answer before killing it (None: 2 x CPU + 30 s)

    @property
    def deadline(self) -> float:
        # CPU seconds are not wall seconds on a busy host: the wait allows twice the CPU, plus the process's start.
        return self.wall_seconds if self.wall_seconds is not None else 2 * self.cpu_seconds + 30


def run_limited(function: Callable[..., T], *arguments: Any, limits: Limits) -> T:
    """`function(*arguments)` in a spawned process of its own under `limits` (see the module's docstring): its
    result, the exception it raised, or LimitExceeded. Blocks until then: call it in a thread. `function` must be
    a module-level function, and the arguments and the result must pickle."""
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(target=_run_within, args=(sending, limits, function, arguments), daemon=True)
    process.start()
    sending.close()  # ours; the child holds its own: its end closing (an exit) wakes the poll below
    answer: tuple[str, Any] | None = None
    waited_out = False
    try:
        if receiving.poll(limits.deadline):
            try:
                answer = receiving.recv()
            except EOFError:  # it ended without answering: the exit code says how
                answer = None
            except Exception as error:  # an exception that pickles but does not unpickle
                answer = ("raised", RuntimeError(f"the answer could not be read: {error}"))
        else:
            waited_out = True
    finally:
        if not waited_out:  # it answered or ended: let it exit, so that its exit code is its own, never our kill
            process.join(5)
        if process.is_alive():
            process.kill()
        process.join()
        receiving.close()
    if answer is not None:
        outcome, value = answer
        if outcome == "returned":
            return cast(T, value)
        if isinstance(value, MemoryError) and limits.memory_bytes is not None:
            raise LimitExceeded(f"ran out of memory (at {limits.memory_bytes // 2**20} MiB)") from value
        raise value
    if waited_out:
        raise LimitExceeded(f"did not finish within {limits.deadline:.0f} s")
    code = process.exitcode
    if code == -signal.SIGXCPU:
        raise LimitExceeded(f"used more than {limits.cpu_seconds} s of CPU")
    if code is not None and code < 0:  # a library that could not allocate may abort, or the system's OOM killer
        raise LimitExceeded(f"ended without an answer ({signal.Signals(-code).name}), over its memory limit perhaps")
    raise LimitExceeded(f"ended without an answer (exit code {code})")


def _run_within(
    connection: Connection, limits: Limits, function: Callable[..., Any], arguments: tuple[Any, ...]
) -> None:
    """The child's side: limit this process, run, send back ("returned", result) or ("raised", exception)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    # The limit counts from here: starting Python and importing `function`'s module are not the work's doing.
    soft = math.ceil(used.ru_utime + used.ru_stime) + limits.cpu_seconds
    resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1))  # SIGXCPU at the soft limit, SIGKILL a second later
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGXCPU would dump core: no file left behind
    if limits.memory_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    answer: tuple[str, Any]
    try:
        answer = ("returned", function(*arguments))
    except Exception as error:
        # Without its traceback and chain (the parent reads neither): they hold the work's frames, and after a
        # MemoryError all the memory, which pickling the answer then needs.
        error.__traceback__ = error.__cause__ = error.__context__ = None
        answer = ("raised", error)
    try:
        message = pickle.dumps(answer)
    except Exception as error:  # an answer that does not pickle: say what it was
        message = pickle.dumps(("raised", RuntimeError(f"{answer[0]} {type(answer[1]).__name__}: {error}")))
    connection.send_bytes(message)
    connection.close()
