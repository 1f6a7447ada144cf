"""Who sees whose records: employees their own, managers their subtree, accountants and admins everyone.

The rule reads the Casbin policy (`entry read_all`, `user read_team`) so ops can change it in `policies/`.
Records outside one's visibility answer 404, never 403, so their existence does not leak.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, literal

from core.authz import Authorizer
from core.sql import Db, sql_of
from domain.models import User


@dataclass(frozen=True)
class Visibility:
    viewer_id: int
    everyone: bool
    owner_ids: frozenset[int]  # when not everyone: the viewer and, for managers, their whole subtree

    def can_see(self, owner_id: int) -> bool:
        return self.everyone or owner_id in self.owner_ids

    def owner_filter(self, column: ColumnElement[int]) -> ColumnElement[bool]:
        """A WHERE clause restricting `column` (an owner id) to what the viewer may see."""
        if self.everyone:
            return literal(True)
        return column.in_(sorted(self.owner_ids))

    def as_scope(self) -> dict[str, object]:
        """A JSON form to carry into workflows (reports)."""
        if self.everyone:
            return {"kind": "all", "viewer_id": self.viewer_id}
        return {"kind": "owners", "viewer_id": self.viewer_id, "owner_ids": sorted(self.owner_ids)}


async def subtree_ids(session: Db, root_id: int) -> set[int]:
    """The user and everyone below them in the manager tree (recursive; UNION makes it cycle-safe)."""
    rows = await (await sql_of(session)).all(_SUBTREE, (root_id,))
    return {row[0] for row in rows}


_SUBTREE = (
    "WITH RECURSIVE tree(id) AS (SELECT id FROM users WHERE id = %s "
    "UNION SELECT u.id FROM users u JOIN tree ON u.manager_id = tree.id) SELECT id FROM tree"
)


async def visibility_for(session: Db, authorizer: Authorizer, user: User, resource: str = "entry") -> Visibility:
    if authorizer.allows(user.role, resource, "read_all"):
        return Visibility(user.id, True, frozenset())
    if authorizer.allows(user.role, "user", "read_team"):
        return Visibility(user.id, False, frozenset(await subtree_ids(session, user.id)))
    return Visibility(user.id, False, frozenset({user.id}))


@dataclass(frozen=True)
class Manager:
    id: int
    role: str
    is_active: bool


async def manager_chain(session: Db, user_id: int) -> list[Manager]:
    """The user's managers from the nearest upwards, in one query (stops at a cycle, which the user service forbids
    anyway)."""
    rows = await (await sql_of(session)).all(_MANAGERS, (user_id,))
    return [Manager(*row) for row in rows]


_MANAGERS = (
    "WITH RECURSIVE up(id, manager_id, role, is_active, depth, seen) AS ("
    "SELECT id, manager_id, role, is_active, 0, ARRAY[id] FROM users WHERE id = %s "
    "UNION ALL SELECT u.id, u.manager_id, u.role, u.is_active, up.depth + 1, up.seen || u.id "
    "FROM users u JOIN up ON u.id = up.manager_id WHERE u.id <> ALL(up.seen)) "
    "SELECT id, role, is_active FROM up WHERE depth > 0 ORDER BY depth"
)
