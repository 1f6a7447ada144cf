"""Where a section's CPU goes: seconds per process, read from /proc (Linux), around a measured stretch.

The approval benchmark is CPU-bound on small machines: its throughput is the machine's cores divided by the CPU
one approval costs in all processes together (API, worker, Temporal server, PostgreSQL, load client). This module
splits that cost by process, so a run says which side grew or shrank, and compares it with the floor's.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of one process; None when it is gone or not readable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _busy_and_total() -> tuple[int, int] | None:
    try:
        ticks = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = ticks[3] + ticks[4]  # idle and iowait
    return sum(ticks) - idle, sum(ticks)


def pids_with_arguments(*needles: str) -> list[int]:
    """Processes whose command line holds every needle (the Temporal dev server on a given port)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [word.decode(errors="replace") for word in arguments]
        if all(needle in words for needle in needles):
            found.append(int(entry.name))
    return found


def database_backends(database_url: str) -> list[int]:
    """The PostgreSQL backends serving a database (pooled connections persist, so they span the measurement)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(row[0]) for row in rows]


@dataclass
class CpuSplit:
    """CPU milliseconds per unit of work (one approval, one floor workflow), by process."""

    per_unit_ms: dict[str, float] = field(default_factory=dict)
    machine_busy: float | None = None  # the share of all cores in use over the stretch

    @property
    def total_ms(self) -> float:
        return round(sum(self.per_unit_ms.values()), 1)

    def describe(self) -> str:
        parts = ", ".join(f"{name} {ms}" for name, ms in self.per_unit_ms.items())
        busy = f"; machine {self.machine_busy:.0%} busy" if self.machine_busy is not None else ""
        return f"{parts}; total {self.total_ms} ms{busy}"


@contextmanager
def cpu_split(processes: dict[str, Callable[[], list[int]]], units: int) -> Iterator[CpuSplit]:
    """Measure the CPU of each named group of processes (re-listed at the end: backends may have been added), of
    this process (the load client) and of child processes reaped meanwhile (a floor script run to completion),
    per unit of the `units` the stretch does."""
    split = CpuSplit()
    before = {name: {pid: process_seconds(pid) or 0.0 for pid in lister()} for name, lister in processes.items()}
    own_before = time.process_time()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine_before = _busy_and_total()
    yield split
    count = max(units, 1)
    for name, lister in processes.items():
        seconds = 0.0
        for pid in set(lister()) | set(before[name]):
            now = process_seconds(pid)
            if now is not None:
                seconds += now - before[name].get(pid, 0.0)
        split.per_unit_ms[name] = round(seconds * 1000 / count, 1)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    reaped = (children.ru_utime + children.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    if reaped > 0:
        split.per_unit_ms["child processes"] = round(reaped * 1000 / count, 1)
    split.per_unit_ms["this process"] = round((time.process_time() - own_before) * 1000 / count, 1)
    machine_after = _busy_and_total()
    if machine_before and machine_after and machine_after[1] > machine_before[1]:
        split.machine_busy = (machine_after[0] - machine_before[0]) / (machine_after[1] - machine_before[1])
