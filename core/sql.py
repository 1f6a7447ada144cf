"""Plain SQL on a transaction's psycopg connection (`tx.sql`, core/db.py), with rows as dataclasses.

The approval path (submit, decide, and the workflow's transitions) runs tens of statements per approval. Through
the async ORM each costs about five times what bare psycopg does (docs/benchmarks.md: the greenlet hand-off, the
statement cache, the unit of work and the result adaptation), which made up most of an approval's CPU. Entries,
approvals and the users directory read and write here instead; the Tx owns the transaction, so ORM and plain
statements mix in it.

Rows are frozen dataclasses whose fields are the table's columns: `columns(StepRow, "s")` lists them for a SELECT
and `row_of(StepRow, values)` builds one from a slice of a result row.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.types.numeric import Int8Dumper

R = TypeVar("R")
Params = Sequence[Any] | dict[str, Any] | None


# Distinct statements a connection keeps prepared (psycopg's default is 100; the ORM's and these together pass it).
PREPARED_MAX = 500


def configure_plain_statements(connection: psycopg.AsyncConnection[Any]) -> None:
    """Set up a new connection for plain statements: every Python int is sent as a bigint, so a value beyond 64 bits
    is the database's refusal (a DataError: 422 at the API), as SQLAlchemy's typed parameters make it, never a
    silent numeric comparison; and room for the statements of both paths to stay prepared."""
    connection.adapters.register_dumper(int, Int8Dumper)
    connection.prepared_max = PREPARED_MAX


class Sql:
    """Statements on one connection: `await sql.one(QUERY, (a, b))` -> a tuple or None."""

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.connection = connection

    async def one(self, query: str, params: Params = None) -> tuple[Any, ...] | None:
        cursor = await self.connection.execute(query, params)  # type: ignore[arg-type]
        return await cursor.fetchone()

    async def all(self, query: str, params: Params = None, *, prepare: bool | None = None) -> list[tuple[Any, ...]]:
        """Every row. `prepare=False`: plan it for these very values each time (a prepared statement's generic plan
        cannot know how many owners an `= ANY(%s)` list holds, and a team of hundreds wants another plan than one)."""
        cursor = await self.connection.execute(query, params, prepare=prepare)  # type: ignore[arg-type]
        return await cursor.fetchall()

    async def row(self, row_type: type[R], query: str, params: Params = None) -> R | None:
        """The first row as a row dataclass, or None."""
        values = await self.one(query, params)
        return row_type(*values) if values is not None else None

    async def written(self, row_type: type[R], query: str, params: Params = None) -> R:
        """The row a write's RETURNING gave, of a row known to exist (an INSERT, or an UPDATE by id under the
        transaction's lock)."""
        values = await self.one(query, params)
        assert values is not None
        return row_type(*values)

    async def scalar(self, query: str, params: Params = None) -> Any:
        row = await self.one(query, params)
        return row[0] if row is not None else None

    async def run(self, query: str, params: Params = None) -> int:
        """Execute; the number of rows it changed."""
        cursor = await self.connection.execute(query, params)  # type: ignore[arg-type]
        return cursor.rowcount


@functools.cache
def columns(row_type: type[Any], alias: str | None = None) -> str:
    """`alias.column, ...` (or bare names) for every field of a row dataclass, in field order."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{field.name}" for field in dataclasses.fields(row_type))


@functools.cache
def width(row_type: Any) -> int:
    return len(dataclasses.fields(row_type))


def row_of(row_type: type[R], values: Sequence[Any], start: int = 0) -> R | None:
    """The row dataclass from `values[start:]` (as listed by `columns`); None when its id (first field) is NULL,
    which is how an outer join says there is no such row."""
    if values[start] is None:
        return None
    return row_type(*values[start : start + width(row_type)])  # type: ignore[call-arg, arg-type]
