"""Who sees whose records: employees their own, managers their subtree, accountants and admins everyone.

The rule reads the Casbin policy (`entry read_all`, `user read_team`) so ops can change it in `policies/`.
Records outside one's visibility answer 404, never 403, so their existence does not leak.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.authz import Authorizer
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


async def subtree_ids(session: AsyncSession, root_id: int) -> set[int]:
    """The user and everyone below them in the manager tree (recursive, cycle-safe)."""
    tree = select(User.id).where(User.id == root_id).cte("tree", recursive=True)
    tree = tree.union(select(User.id).join(tree, User.manager_id == tree.c.id))
    return set((await session.scalars(select(tree.c.id))).all())


async def visibility_for(
    session: AsyncSession, authorizer: Authorizer, user: User, resource: str = "entry"
) -> Visibility:
    if authorizer.allows(user.role, resource, "read_all"):
        return Visibility(user.id, True, frozenset())
    if authorizer.allows(user.role, "user", "read_team"):
        return Visibility(user.id, False, frozenset(await subtree_ids(session, user.id)))
    return Visibility(user.id, False, frozenset({user.id}))


async def manager_chain(session: AsyncSession, user_id: int) -> list[User]:
    """The user's managers from the nearest upwards (stops at a cycle, which the user service forbids anyway)."""
    chain: list[User] = []
    seen = {user_id}
    current = await session.get(User, user_id)
    while current is not None and current.manager_id is not None and current.manager_id not in seen:
        manager = await session.get(User, current.manager_id)
        if manager is None:
            break
        chain.append(manager)
        seen.add(manager.id)
        current = manager
    return chain
