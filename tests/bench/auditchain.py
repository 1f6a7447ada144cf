"""`make bench ARGS='--only auditchain'`: how many audited writes a second the audit chain's single writer allows.

Every audit row chains to the one committed before it (domain/audit/service.py): `audit_chain_claim` takes a
transaction-scoped advisory lock, and the writer holds it until its transaction commits, so audited transactions
commit one at a time, whatever the number of API and worker processes. The lock is held from the claim's answer
through the row's INSERT, whatever the transaction does after the row, and the COMMIT (its WAL flush included).

Two levels, on a scratch database of its own migrated to the head (dropped afterwards):
- the engine's ceiling: pgbench (a C client: nothing of Python's cost) sending what the application sends (the
  claim, then the row's INSERT, then COMMIT), with 1, 2, 8 and 32 clients; against the same transactions writing
  the same row to a copy of the table (same indexes) with its id from a sequence and no lock: what the same server
  does when nothing serialises the writers. Each transaction either the audit row alone, or the row followed by
  four more statements, as in a decision's transaction (its budget booking and its outcome's reads come after the
  row, with the lock held).
- the application's own writer: `record()` in `Database.transaction()`, serially, and with 8 writers in one
  process (one event loop, as an API process serves its requests), timing how long the lock is held per write
  (from the claim's answer to the commit's, client side).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import psycopg

from core.db import Database, Tx
from core.settings import DatabaseSettings
from core.sql import Sql
from domain.audit import service as audit
from domain.audit.service import SYSTEM, record
from tests.bench.generate import plain_url
from tests.services import admin_database_url, migrate, scratch_database

Row = tuple[str, str, str, str, str]
CLIENTS = (1, 2, 8, 32)
APP_WRITERS = (1, 8)
TRAILING_STATEMENTS = 4  # after the audit row, in a decision's transaction (domain/approvals/transitions.py)
SHAPES = {"row": "the audit row alone", "decision": f"the audit row, then {TRAILING_STATEMENTS} statements"}
_UNCHAINED = "audit_unchained"


@dataclass(frozen=True)
class EngineLevel:
    chained: bool
    shape: str
    clients: int
    per_second: float
    latency_ms: float  # pgbench's average transaction latency


def _script(chained: bool, shape: str) -> str:
    """One pgbench transaction: the statements the application sends for an audit row (`-M prepared`: each
    `:name` is a bound parameter, as the application's are)."""
    if chained:
        claim = f"SELECT row_id, head FROM audit_chain_claim({audit.CHAIN_LOCK_KEY}) \\gset"
        table = "audit_log"
    else:
        claim = f"SELECT nextval('{_UNCHAINED}_id') AS row_id, repeat('0', 64) AS head \\gset"
        table = _UNCHAINED
    trailing = [f"SELECT id FROM {table} WHERE id = :row_id;"] * (TRAILING_STATEMENTS if shape == "decision" else 0)
    return "\n".join(
        [
            "BEGIN;",
            claim,
            f"INSERT INTO {table} (id, occurred_at, action, resource_type, resource_id, changes, prev_hash, hash) "
            "VALUES (:row_id, now(), 'bench.audited_write', 'bench', :row_id, '{\"n\": [null, 1]}', :head, "
            "md5(:row_id::text || 'a') || md5(:row_id::text || 'b'));",
            *trailing,
            "END;",
            "",
        ]
    )


def _pgbench(database_url: str, work: Path, chained: bool, shape: str, clients: int, seconds: float) -> EngineLevel:
    script = work / f"audit-{'chained' if chained else 'unchained'}-{shape}.sql"
    script.write_text(_script(chained, shape))
    output = subprocess.run(
        ["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 4)), "-T", str(int(seconds)),
         "-f", str(script), plain_url(database_url)],
        capture_output=True, text=True, check=True, timeout=seconds + 120,
    ).stdout  # fmt: skip
    tps = re.search(r"^tps = ([\d.]+)", output, flags=re.MULTILINE)
    latency = re.search(r"^latency average = ([\d.]+) ms", output, flags=re.MULTILINE)
    if tps is None or latency is None:
        raise RuntimeError(f"pgbench said nothing measurable:\n{output}")
    return EngineLevel(chained, shape, clients, float(tps.group(1)), float(latency.group(1)))


@dataclass(frozen=True)
class AppLevel:
    shape: str
    writers: int
    writes: int
    seconds: float
    hold_ms: float  # median, claim answered -> commit answered
    client_cpu_ms: float  # this process's CPU per write

    @property
    def per_second(self) -> float:
        return self.writes / self.seconds


class _ClaimClock:
    """`tx.sql` for record(), noting when the chain's claim was answered (the lock is held from there)."""

    def __init__(self, sql: Sql) -> None:
        self._sql = sql
        self.connection = sql.connection
        self.claimed = 0.0

    async def one(self, query: str, params: Any = None) -> tuple[Any, ...] | None:
        result = await self._sql.one(query, params)
        if query == audit.CLAIM:
            self.claimed = time.perf_counter()
        return result

    async def run(self, query: str, params: Any = None) -> int:
        return await self._sql.run(query, params)


async def _audited_write(db: Database, n: int, shape: str) -> float:
    """One audited transaction through the application's code; the seconds the chain's lock was held."""
    async with db.transaction() as tx:
        clock = _ClaimClock(tx.sql)
        row = await record(cast(Sql, clock), SYSTEM, "bench.audited_write", "bench", n, {"n": [None, n]})
        await _trailing(tx, row.id, shape)
    return time.perf_counter() - clock.claimed


async def _trailing(tx: Tx, row_id: int, shape: str) -> None:
    if shape == "decision":
        for _ in range(TRAILING_STATEMENTS):
            await tx.sql.one("SELECT id FROM audit_log WHERE id = %s", (row_id,))


async def _app_level(db: Database, shape: str, writers: int, seconds: float) -> AppLevel:
    holds: list[float] = []
    counter = iter(range(10**9))
    for _ in range(3 * writers):  # warm-up: every pooled connection opened, statements prepared
        await _audited_write(db, next(counter), shape)
    deadline = time.perf_counter() + seconds
    cpu_before = time.process_time()
    started = time.perf_counter()

    async def writer() -> None:
        while time.perf_counter() < deadline:
            holds.append(await _audited_write(db, next(counter), shape))

    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    return AppLevel(shape, writers, len(holds), elapsed, statistics.median(holds) * 1000, cpu * 1000 / len(holds))


async def _app_levels(database_url: str, seconds: float) -> list[AppLevel]:
    db = Database.connect(
        DatabaseSettings(url=database_url, pool_size=max(APP_WRITERS), max_overflow=0), pre_ping=False
    )
    try:
        levels = [
            await _app_level(db, shape, writers, seconds) for shape in SHAPES for writers in APP_WRITERS
        ]  # fmt: skip
        async with db.transaction() as tx:  # what was measured is a chain that holds: checked as an auditor would
            verdict = await audit.verify_chain(tx)
        if not verdict.ok or verdict.rows_checked < sum(level.writes for level in levels):
            raise RuntimeError(f"the chain the application's writer wrote does not verify: {verdict}")
    finally:
        await db.dispose()
    return levels


@dataclass(frozen=True)
class AuditChainFigures:
    engine: list[EngineLevel]
    app: list[AppLevel]

    def engine_at(self, chained: bool, shape: str, clients: int) -> EngineLevel:
        return next(e for e in self.engine if (e.chained, e.shape, e.clients) == (chained, shape, clients))

    def best(self, shape: str) -> EngineLevel:
        return max((e for e in self.engine if e.chained and e.shape == shape), key=lambda e: e.per_second)

    def app_at(self, shape: str, writers: int) -> AppLevel:
        return next(a for a in self.app if (a.shape, a.writers) == (shape, writers))


def measure(work: Path, seconds: float) -> AuditChainFigures:
    if shutil.which("pgbench") is None:
        raise RuntimeError("the auditchain section needs pgbench (Debian: the postgresql-15 package) on the PATH")
    with scratch_database(admin_database_url(), "finance_bench_audit") as url:
        migrate(url)
        app = asyncio.run(_app_levels(url, seconds))  # first: its chain is verified before pgbench's rows follow
        with psycopg.connect(plain_url(url), autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {_UNCHAINED} (LIKE audit_log INCLUDING DEFAULTS INCLUDING INDEXES)")
            conn.execute(f"CREATE SEQUENCE {_UNCHAINED}_id")
        engine = []
        for shape in SHAPES:
            for clients in CLIENTS:
                for chained in (True, False):
                    engine.append(_pgbench(url, work, chained, shape, clients, seconds))
                    level = engine[-1]
                    print(
                        f"  pgbench {'chained' if chained else 'unchained'} {shape} x{clients}: "
                        f"{level.per_second:.0f}/s, latency {level.latency_ms:.2f} ms",
                        flush=True,
                    )
    return AuditChainFigures(engine, app)


def bench_auditchain(args: argparse.Namespace, work: Path, rows: list[Row], notes: list[str]) -> None:
    figures = measure(work, args.audit_seconds)
    for shape, label in SHAPES.items():
        serial, best = figures.engine_at(True, shape, 1), figures.best(shape)
        control = figures.engine_at(False, shape, best.clients)
        rows.append(
            (
                f"Audited writes per second the chain's lock allows, {label} (pgbench, the application's statements): "
                f"serial / best of {', '.join(map(str, CLIENTS))} clients",
                f"{serial.per_second:.0f} / {best.per_second:.0f} per s ({best.clients} clients)",
                f"without the chain, {best.clients} clients: {control.per_second:.0f} per s",
                f"{best.per_second / control.per_second:.2f}",
                "report (docs/scaling.md plans with it)",
            )
        )
        app_serial, app_many = figures.app_at(shape, 1), figures.app_at(shape, max(APP_WRITERS))
        rows.append(
            (
                f"Audited writes per second through the application's record(), {label}: serial / "
                f"{app_many.writers} writers in one process",
                f"{app_serial.per_second:.0f} / {app_many.per_second:.0f} per s (lock held {app_serial.hold_ms:.2f} / "
                f"{app_many.hold_ms:.2f} ms a write)",
                f"pgbench serial {serial.per_second:.0f} per s",
                f"{app_serial.per_second / serial.per_second:.2f}",
                "report",
            )
        )
    notes.append(
        "Audit chain, pgbench per level (clients: chained / unchained transactions per s, chained average latency "
        "in ms): "
        + "; ".join(
            f"{shape} x{clients}: {figures.engine_at(True, shape, clients).per_second:.0f} / "
            f"{figures.engine_at(False, shape, clients).per_second:.0f}, "
            f"{figures.engine_at(True, shape, clients).latency_ms:.2f}"
            for shape in SHAPES
            for clients in CLIENTS
        )
    )
    notes.append(
        "Audit chain, the application's writer (writers: writes per s, lock held per write in ms, client CPU per "
        "write in ms): "
        + "; ".join(
            f"{app.shape} x{app.writers}: {app.per_second:.0f}, {app.hold_ms:.2f}, {app.client_cpu_ms:.2f}"
            for app in figures.app
        )
    )
