"""The currency the books are kept in: BASE_CURRENCY, remembered by the database (`app_state`) once entries exist.

Every base amount, approval limit and total is in the base currency. Changing BASE_CURRENCY under a database that
holds entries would silently mix currencies in every sum, so the API and the worker refuse to start instead, and
say what to do. With no entries yet, the configured currency simply becomes the books' currency.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
import sqlalchemy.exc

from core.db import Database
from core.sql import Sql
from domain.money import is_currency

log = logging.getLogger(__name__)

_KEPT = "SELECT value FROM app_state WHERE key = 'base_currency' FOR UPDATE"
_HAS_ENTRIES = "SELECT count(*) FROM (SELECT 1 FROM entries LIMIT 1000) AS found"
_KEEP = (
    "INSERT INTO app_state (key, value) VALUES ('base_currency', %s) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()"
)
_MIGRATED = "SELECT to_regclass('app_state') IS NOT NULL"


class BooksMismatch(RuntimeError):
    """The configured base currency cannot be used with this database."""


async def check_base_currency(sql: Sql, configured: str) -> bool:
    """Refuse (BooksMismatch) a BASE_CURRENCY that is no currency, or that differs from the one the books hold
    entries in; take it as the books' currency when there are none. False: the database is not migrated yet (the
    caller checks again later)."""
    if not is_currency(configured):
        raise BooksMismatch(f"BASE_CURRENCY={configured!r} is not an ISO 4217 currency with minor units")
    if not await sql.scalar(_MIGRATED):
        return False
    kept = await sql.scalar(_KEPT)
    if kept == configured:
        return True
    entries = int(await sql.scalar(_HAS_ENTRIES))
    if kept is not None and entries:
        shown = "1,000 or more" if entries >= 1000 else str(entries)
        raise BooksMismatch(
            f"BASE_CURRENCY={configured} but the books are kept in {kept} and hold {shown} entries: their base "
            f"amounts, approval limits and totals are in {kept}, and would be mixed with {configured}. Set "
            f"BASE_CURRENCY={kept} again (re-basing existing books is not supported)."
        )
    await sql.run(_KEEP, (configured,))
    if kept is not None:
        log.info("the books' base currency is now %s (was %s, with no entries)", configured, kept)
    return True


async def check_until_done(db: Database, configured: str) -> None:
    """check_base_currency before the API serves, retried while the database is unreachable or not migrated yet
    (compose may start the API beside it). Raises BooksMismatch. The worker checks in its schedule set-up instead,
    serving its queues meanwhile (worker.check_books)."""
    delay = 1.0
    while True:
        try:
            async with db.transaction() as tx:
                if await check_base_currency(tx.sql, configured):
                    return
            reason = "the database is not migrated yet"
        except (
            OSError,
            psycopg.OperationalError,
            sqlalchemy.exc.OperationalError,
            sqlalchemy.exc.InterfaceError,
        ) as error:
            # unreachable (a refused statement is a bug, and stops the start instead of retrying for ever)
            reason = f"the database is unreachable ({error})"
        log.warning("cannot check the books' base currency: %s; retrying in %.0f s", reason, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)
