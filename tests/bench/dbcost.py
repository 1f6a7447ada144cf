"""What one database operation costs the API and the worker in CPU: the engine and sessions they use
(core/db.py, SQLAlchemy's async ORM over psycopg) against bare psycopg, in this process, serially.

With the approval path at about 63 statements in 9 transactions, these unit costs add up to most of what an
approval costs beyond the floor (docs/benchmarks.md), which is why they are measured in every run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import psycopg
from sqlalchemy import Executable, select, text

from core.db import create_engine, session_factory
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
    settings = DatabaseSettings(url=database_url, pool_size=2)
    engine = create_engine(settings, pre_ping=False)
    sessions = session_factory(engine)
    async with sessions() as session:
        user_id = await session.scalar(select(User.id).order_by(User.id).limit(1))
    if user_id is None:
        raise RuntimeError("the bench database has no user to read")

    async def empty_transaction() -> None:
        async with sessions() as session:
            await session.execute(text("SELECT 1"))
            await session.commit()

    users = User.__table__

    def orm_read() -> Executable:
        return select(User).where(User.id == user_id).execution_options(populate_existing=True)

    def core_read() -> Executable:
        return select(users).where(users.c.id == user_id)

    async def reads(statement: Callable[[], Executable], count: int) -> None:
        async with sessions() as session:
            for _ in range(count):  # built anew each time, as the application's code does
                (await session.execute(statement())).one()
            await session.commit()

    async def one_more_read_ms(statement: Callable[[], Executable]) -> float:
        """What one read adds to a transaction: the slope between transactions with one read and with six."""
        one = await _cpu_ms_per_call(lambda: reads(statement, 1), calls)
        six = await _cpu_ms_per_call(lambda: reads(statement, 6), calls // 2)
        return (six - one) / 5

    figures: dict[str, float] = {}
    try:
        figures["transaction"] = await _cpu_ms_per_call(empty_transaction, calls)
        figures["ORM read"] = await one_more_read_ms(orm_read)
        figures["Core read"] = await one_more_read_ms(core_read)
    finally:
        await engine.dispose()

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
    """CPU milliseconds: an empty transaction (session, checkout, BEGIN, one trivial statement, COMMIT), one more ORM
    or Core read of a user row inside it, and bare psycopg doing a whole transaction with one read."""
    return asyncio.run(_measure(database_url, calls))
