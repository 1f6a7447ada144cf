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


async def active_ids_in_roles(sql: Sql, roles: tuple[str, ...]) -> list[int]:
    """The ids of the active users holding one of `roles`, in id order (who an operational alert goes to)."""
    rows = await sql.all("SELECT id FROM users WHERE role = ANY(%s) AND is_active ORDER BY id", (list(roles),))
    return [int(values[0]) for values in rows]


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

    def know(self, *known: Person) -> None:
        """People read elsewhere (a manager chain), so they are not read again."""
        self.known |= {person.id: person for person in known}

    async def names(self, user_ids: set[int]) -> dict[int, str]:
        await self.load(*user_ids)
        return {user_id: self.known[user_id].full_name for user_id in user_ids if user_id in self.known}


# Each step up is one primary-key lookup (the LATERAL ... LIMIT 1 keeps the planner from hashing the whole users
# table for every level: half the time at a thousand users, and flat as the company grows).
_LINE = (
    "WITH RECURSIVE up(id, full_name, email, role, is_active, manager_id, depth, seen) AS ("
    "SELECT id, full_name, email, role, is_active, manager_id, 0, ARRAY[id] FROM users WHERE id = %s "
    "UNION ALL SELECT m.id, m.full_name, m.email, m.role, m.is_active, m.manager_id, up.depth + 1, up.seen || m.id "
    "FROM up CROSS JOIN LATERAL (SELECT * FROM users u WHERE u.id = up.manager_id LIMIT 1) m "
    "WHERE m.id <> ALL(up.seen)) "
    "SELECT id, full_name, email, role, is_active, manager_id FROM up ORDER BY depth"
)


async def line_from(sql: Sql, user_id: int) -> list[Person]:
    """The user and their managers above them, nearest first, in one query (it stops at a cycle, which the users
    service forbids anyway)."""
    return [Person(*row) for row in await sql.all(_LINE, (user_id,))]


async def manager_chain(sql: Sql, user_id: int) -> list[Person]:
    """The user's managers from the nearest upwards."""
    return (await line_from(sql, user_id))[1:]


_SUBTREE = (
    "WITH RECURSIVE tree(id) AS (SELECT id FROM users WHERE id = %s "
    "UNION SELECT u.id FROM users u JOIN tree ON u.manager_id = tree.id) SELECT id FROM tree"
)


async def subtree_ids(sql: Sql, root_id: int) -> set[int]:
    """The user and everyone below them in the manager tree (recursive; UNION makes it cycle-safe)."""
    return {row[0] for row in await sql.all(_SUBTREE, (root_id,))}
