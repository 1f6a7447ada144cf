"""The people the approval path names: who someone is, the managers above them, the team below them.

Plain SQL on `users` for the reads every submission, decision and notice makes (account changes are the users
service's, through the ORM). Each read is one statement.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.sql import Sql


@dataclass(frozen=True)
class Person:
    id: int
    full_name: str
    email: str
    role: str
    is_active: bool
    manager_id: int | None


_PEOPLE = "SELECT id, full_name, email, role, is_active, manager_id FROM users WHERE id = ANY(%s)"


async def people(sql: Sql, user_ids: set[int]) -> dict[int, Person]:
    if not user_ids:
        return {}
    return {values[0]: Person(*values) for values in await sql.all(_PEOPLE, (sorted(user_ids),))}


async def person(sql: Sql, user_id: int) -> Person | None:
    return (await people(sql, {user_id})).get(user_id)


class People:
    """The users one piece of work names or notifies, each read once: those named up front in one query, any other
    on first use."""

    def __init__(self, sql: Sql) -> None:
        self.sql = sql
        self.known: dict[int, Person] = {}

    async def load(self, *user_ids: int | None) -> None:
        missing = {user_id for user_id in user_ids if user_id is not None and user_id not in self.known}
        self.known |= await people(self.sql, missing)

    async def get(self, user_id: int | None) -> Person | None:
        if user_id is None:
            return None
        await self.load(user_id)
        return self.known.get(user_id)

    async def name(self, user_id: int | None) -> str:
        found = await self.get(user_id)
        return found.full_name if found is not None else ""

    async def names(self, user_ids: set[int]) -> dict[int, str]:
        await self.load(*user_ids)
        return {user_id: self.known[user_id].full_name for user_id in user_ids if user_id in self.known}


@dataclass(frozen=True)
class Manager:
    id: int
    role: str
    is_active: bool


_MANAGERS = (
    "WITH RECURSIVE up(id, manager_id, role, is_active, depth, seen) AS ("
    "SELECT id, manager_id, role, is_active, 0, ARRAY[id] FROM users WHERE id = %s "
    "UNION ALL SELECT u.id, u.manager_id, u.role, u.is_active, up.depth + 1, up.seen || u.id "
    "FROM users u JOIN up ON u.id = up.manager_id WHERE u.id <> ALL(up.seen)) "
    "SELECT id, role, is_active FROM up WHERE depth > 0 ORDER BY depth"
)


async def manager_chain(sql: Sql, user_id: int) -> list[Manager]:
    """The user's managers from the nearest upwards, in one query (stops at a cycle, which the users service
    forbids anyway)."""
    return [Manager(*row) for row in await sql.all(_MANAGERS, (user_id,))]


_SUBTREE = (
    "WITH RECURSIVE tree(id) AS (SELECT id FROM users WHERE id = %s "
    "UNION SELECT u.id FROM users u JOIN tree ON u.manager_id = tree.id) SELECT id FROM tree"
)


async def subtree_ids(sql: Sql, root_id: int) -> set[int]:
    """The user and everyone below them in the manager tree (recursive; UNION makes it cycle-safe)."""
    return {row[0] for row in await sql.all(_SUBTREE, (root_id,))}
