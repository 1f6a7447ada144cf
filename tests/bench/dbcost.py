"""What one database operation costs the API and the worker in CPU: their unit of work (core/db.py's
Database.transaction(), plain statements and the ORM on it) against bare psycopg, in this process, serially.

With the approval path at about 63 statements in 9 transactions, these unit costs add up to most of what an
approval costs beyond the floor (docs/benchmarks.md), which is why they are measured in every run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import psycopg
from sqlalchemy import Executable, select

from core.db import Database
from core.settings import DatabaseSettings
from domain.models import User


async def _cpu_ms_per_call(operation: Callable[[], Awaitable[object]], calls: int, repeats: int = 5) -> float:
    """The least CPU per call over a few repeats: the machine is shared and noisy, and noise only ever adds."""
    for _ in range(max(calls // 10, 10)):  # warm-up: pooled connections, prepared statements, compiled cache
        await operation()
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(calls):
            await operation()
        best = min(best, (time.process_time() - started) * 1000 / calls)
    return best


async def _measure(database_url: str, calls: int) -> dict[str, float]:
    db = Database.connect(DatabaseSettings(url=database_url, pool_size=2), pre_ping=False)
    async with db.transaction() as tx:
        user_id = await tx.sql.scalar("SELECT id FROM users ORDER BY id LIMIT 1")
    if user_id is None:
        raise RuntimeError("the bench database has no user to read")

    async def empty_transaction() -> None:
        async with db.transaction() as tx:
            await tx.sql.one("SELECT 1")

    def orm_read() -> Executable:
        return select(User).where(User.id == user_id).execution_options(populate_existing=True)

    async def orm_reads(count: int) -> None:
        async with db.transaction() as tx:
            for _ in range(count):  # built anew each time, as the application's code does
                (await tx.session.execute(orm_read())).one()

    async def plain_reads(count: int) -> None:
        async with db.transaction() as tx:
            for _ in range(count):
                await tx.sql.one("SELECT * FROM users WHERE id = %s", (user_id,))

    async def one_more_read_ms(reads: Callable[[int], Awaitable[None]]) -> float:
        """What one read adds to a transaction: the slope between transactions with one read and with six."""
        one = await _cpu_ms_per_call(lambda: reads(1), calls)
        six = await _cpu_ms_per_call(lambda: reads(6), calls // 2)
        return (six - one) / 5

    figures: dict[str, float] = {}
    try:
        figures["transaction"] = await _cpu_ms_per_call(empty_transaction, calls)
        figures["ORM read"] = await one_more_read_ms(orm_reads)
        figures["plain read"] = await one_more_read_ms(plain_reads)
    finally:
        await db.dispose()

    connection = await psycopg.AsyncConnection.connect(database_url, prepare_threshold=0)
    try:

        async def bare_transaction() -> None:
            async with connection.transaction():
                cursor = await connection.execute("SELECT * FROM users WHERE id = %s", (user_id,))
                await cursor.fetchone()

        figures["bare psycopg transaction with one read"] = await _cpu_ms_per_call(bare_transaction, calls)
    finally:
        await connection.close()
    return {name: round(value, 3) for name, value in figures.items()}


def database_costs(database_url: str, calls: int = 300) -> dict[str, float]:
    """CPU milliseconds: an empty transaction (checkout, BEGIN, one trivial statement, COMMIT), one more ORM or
    plain read of a user row inside it, and bare psycopg doing a whole transaction with one read."""
    return asyncio.run(_measure(database_url, calls))
