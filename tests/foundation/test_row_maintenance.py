"""Row maintenance lives in the database (migration 0007), so every writer gets it: a statement of the approval
path, the ORM of the other features, an operator at a psql prompt."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

from activities.deps import ActivityDeps
from domain.entries.repository import NewEntry, insert
from domain.models import User
from tests.conftest import MakeUser


async def test_any_update_of_an_entry_moves_its_version_and_updated_at(
    activity_deps: ActivityDeps, make_user: MakeUser
) -> None:
    owner = await make_user("employee")
    new = NewEntry("expense", owner.id, Decimal("12.50"), "USD", "travel", "", date(2026, 1, 5), None, "Cabs")
    async with activity_deps.db.transaction() as tx:
        entry = await insert(tx.sql, new)
    assert entry.version == 1
    await asyncio.sleep(0.01)
    async with activity_deps.db.transaction() as tx:  # as an operator would, outside the repository
        await tx.sql.run("UPDATE entries SET description = 'by hand' WHERE id = %s", (entry.id,))
        version, updated_at = await tx.sql.one("SELECT version, updated_at FROM entries WHERE id = %s", (entry.id,))
    assert version == 2 and updated_at > entry.updated_at


async def test_an_orm_change_gets_updated_at_from_the_database_and_reads_it_back(
    activity_deps: ActivityDeps, make_user: MakeUser
) -> None:
    made = await make_user("employee")
    async with activity_deps.db.transaction() as tx:
        user = await tx.session.get(User, made.id)
        assert user is not None
        before = user.updated_at
        await asyncio.sleep(0.01)
        user.full_name = "Renamed"
        await tx.session.flush()
        assert user.updated_at > before  # loaded from the UPDATE's RETURNING, no lazy load needed
