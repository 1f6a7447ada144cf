"""`make bench ARGS='--only auditchain'`: how many audited writes a second the audit chain's single writer allows.

Every audit row chains to the one committed before it (domain/audit/service.py): `audit_chain_claim` takes a
transaction-scoped advisory lock, and the writer holds it until its transaction commits, so audited transactions
commit one at a time, whatever the number of API and worker processes. The lock is held from the claim's answer
through the row's INSERT, whatever the transaction does after the row, and the COMMIT (its WAL flush included).

Measured on a scratch database of its own, with the application's own `record()` in `Database.transaction()`:
- writers 1 (serial), 2, 8 and 32 at once, each transaction the audit row alone, then the audit row followed by
  four more statements (a decision's transaction: the budget booking and the outcome's reads come after its row);
- against the same transactions writing the same row without the chain (its id from a sequence, no lock): what the
  same client and server do when nothing serialises them.
For each: writes per second, the lock's hold per write (from the claim's answer to the commit's, client side), and
the share of the wall time the lock was held (1.0: the lock is the limit).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from psycopg.types.json import Jsonb

from core.db import Database, Tx
from core.settings import DatabaseSettings, audit_key
from core.sql import Sql
from domain.audit import service as audit
from domain.audit.service import SYSTEM, chained_row, record
from tests.services import admin_database_url, migrate, scratch_database

Row = tuple[str, str, str, str, str]
WRITERS = (1, 2, 8, 32)
TRAILING_STATEMENTS = 4  # after the audit row, in a decision's transaction (domain/approvals/transitions.py)
_UNCHAINED = "audit_unchained"


@dataclass(frozen=True)
class Level:
    """One measured stretch: `writers` at once for about `seconds`."""

    kind: str  # "chained" or "unchained"
    shape: str  # "row" or "decision"
    writers: int
    writes: int
    seconds: float
    hold_ms: float  # median, claim answered -> commit answered
    wait_ms: float  # median, claim sent -> claim answered
    client_cpu_ms: float  # this process's CPU per write

    @property
    def per_second(self) -> float:
        return self.writes / self.seconds

    @property
    def lock_busy(self) -> float:
        """The share of the wall time some writer held the lock (medians times count: an estimate)."""
        return self.hold_ms * self.writes / 1000 / self.seconds


class _ClaimClock:
    """`tx.sql` for record(), noting when the chain's claim was answered (the lock is held from there)."""

    def __init__(self, sql: Sql) -> None:
        self._sql = sql
        self.connection = sql.connection
        self.sent = 0.0
        self.claimed = 0.0

    async def one(self, query: str, params: Any = None) -> tuple[Any, ...] | None:
        self.sent = time.perf_counter()
        result = await self._sql.one(query, params)
        if query == audit.CLAIM:
            self.claimed = time.perf_counter()
        return result

    async def run(self, query: str, params: Any = None) -> int:
        return await self._sql.run(query, params)


async def _trailing(tx: Tx, row_id: int, shape: str) -> None:
    if shape == "decision":
        for _ in range(TRAILING_STATEMENTS):
            await tx.sql.one("SELECT id FROM audit_log WHERE id = %s", (row_id,))


async def _chained(db: Database, n: int, shape: str) -> tuple[float, float]:
    async with db.transaction() as tx:
        clock = _ClaimClock(tx.sql)
        row = await record(cast(Sql, clock), SYSTEM, "bench.audited_write", "bench", n, {"n": [None, n]})
        await _trailing(tx, row.id, shape)
    done = time.perf_counter()
    return done - clock.claimed, clock.claimed - clock.sent


async def _unchained(db: Database, n: int, shape: str) -> tuple[float, float]:
    """The same transaction and row without the chain: an id from a sequence, no lock, no previous hash read."""
    async with db.transaction() as tx:
        sent = time.perf_counter()
        row_id = await tx.sql.scalar(f"SELECT nextval('{_UNCHAINED}_id')")
        claimed = time.perf_counter()
        row = chained_row(
            int(row_id), audit.GENESIS_HASH, SYSTEM, "bench.write", "bench", n, {"n": [None, n]}, audit_key()
        )
        values = [getattr(row, name) for name in audit._COLUMNS]
        values[audit._COLUMNS.index("changes")] = Jsonb(row.changes)
        await tx.sql.run(audit._INSERT.replace("INSERT INTO audit_log", f"INSERT INTO {_UNCHAINED}", 1), values)
        await _trailing(tx, row.id, shape)
    return time.perf_counter() - claimed, claimed - sent


async def _level(
    db: Database, write: Callable[[Database, int, str], Awaitable[tuple[float, float]]], shape: str, writers: int,
    seconds: float,
) -> tuple[int, float, list[float], list[float], float]:  # fmt: skip
    holds: list[float] = []
    waits: list[float] = []
    counter = iter(range(10**9))
    for _ in range(3 * writers):  # warm-up: every pooled connection opened, statements prepared
        await write(db, next(counter), shape)
    deadline = time.perf_counter() + seconds
    cpu_before = time.process_time()
    started = time.perf_counter()

    async def writer() -> None:
        while time.perf_counter() < deadline:
            hold, wait = await write(db, next(counter), shape)
            holds.append(hold)
            waits.append(wait)

    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - started
    return len(holds), elapsed, holds, waits, time.process_time() - cpu_before


async def _measure(database_url: str, seconds: float) -> list[Level]:
    db = Database.connect(DatabaseSettings(url=database_url, pool_size=max(WRITERS), max_overflow=0), pre_ping=False)
    levels: list[Level] = []
    try:
        async with db.transaction() as tx:
            await tx.sql.run(f"CREATE TABLE {_UNCHAINED} (LIKE audit_log INCLUDING DEFAULTS)")
            await tx.sql.run(f"CREATE SEQUENCE {_UNCHAINED}_id")
        for shape in ("row", "decision"):
            for writers in WRITERS:
                for kind, write in (("chained", _chained), ("unchained", _unchained)):
                    count, elapsed, holds, waits, cpu = await _level(db, write, shape, writers, seconds)
                    levels.append(
                        Level(
                            kind,
                            shape,
                            writers,
                            count,
                            elapsed,
                            hold_ms=statistics.median(holds) * 1000,
                            wait_ms=statistics.median(waits) * 1000,
                            client_cpu_ms=cpu * 1000 / max(count, 1),
                        )
                    )
                    print(
                        f"  {kind} {shape} x{writers}: {levels[-1].per_second:.0f}/s, hold "
                        f"{levels[-1].hold_ms:.2f} ms, busy {levels[-1].lock_busy:.2f}",
                        flush=True,
                    )
        async with db.transaction() as tx:  # what was measured is a chain that holds: check it as an auditor would
            verdict = await audit.verify_chain(tx)
        written = sum(level.writes for level in levels if level.kind == "chained")
        if not verdict.ok or verdict.rows_checked < written:
            raise RuntimeError(f"the chain the benchmark wrote does not verify: {verdict}")
    finally:
        await db.dispose()
    return levels


def audit_chain_levels(seconds: float) -> list[Level]:
    """Every level, on a scratch database migrated to the head (dropped afterwards)."""
    with scratch_database(admin_database_url(), "finance_bench_audit") as url:
        migrate(url)
        return asyncio.run(_measure(url, seconds))


def bench_auditchain(args: argparse.Namespace, work: Path, rows: list[Row], notes: list[str]) -> None:
    levels = audit_chain_levels(args.audit_seconds)
    found = {(level.kind, level.shape, level.writers): level for level in levels}
    for shape, label in (
        ("row", "the audit row alone"),
        ("decision", f"the audit row, then {TRAILING_STATEMENTS} statements, as in a decision"),
    ):
        serial = found["chained", shape, 1]
        most = max((found["chained", shape, w] for w in WRITERS), key=lambda level: level.per_second)
        control = found["unchained", shape, most.writers]
        rows.append(
            (
                f"Audited writes per second through the chain's lock, {label}: serial / most at once "
                f"({most.writers} writers)",
                f"{serial.per_second:.0f} / {most.per_second:.0f} per s (lock held {most.hold_ms:.2f} ms a write, "
                f"{most.lock_busy:.0%} of the time)",
                f"same transactions without the chain, {most.writers} writers: {control.per_second:.0f} per s",
                f"{most.per_second / control.per_second:.2f}",
                "report (the ceiling docs/scaling.md plans with)",
            )
        )
    notes.append(
        "Audit chain, each level (writers: chained / unchained writes per s, lock hold and claim wait medians in ms, "
        "lock busy share, client CPU per write in ms): "
        + "; ".join(
            f"{shape} x{w}: {found['chained', shape, w].per_second:.0f} / {found['unchained', shape, w].per_second:.0f}"
            f", hold {found['chained', shape, w].hold_ms:.2f}, wait {found['chained', shape, w].wait_ms:.2f}"
            f", busy {found['chained', shape, w].lock_busy:.2f}, client {found['chained', shape, w].client_cpu_ms:.2f}"
            for shape in ("row", "decision")
            for w in WRITERS
        )
    )
