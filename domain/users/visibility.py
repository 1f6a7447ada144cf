"""Who sees whose records: employees their own, managers their subtree, accountants and admins everyone.

The rule reads the Casbin policy (`entry read_all`, `user read_team`) so ops can change it in `policies/`.
Records outside one's visibility answer 404, never 403, so their existence does not leak.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, literal

from core.authz import Authorizer
from core.sql import Sql
from domain.models import User
from domain.users.directory import subtree_ids


@dataclass(frozen=True)
class Visibility:
    viewer_id: int
    everyone: bool
    owner_ids: frozenset[int]  # when not everyone: the viewer and, for managers, their whole subtree

    def can_see(self, owner_id: int) -> bool:
        return self.everyone or owner_id in self.owner_ids

    def owner_list(self) -> list[int] | None:
        """The owners as a list for a plain statement's `= ANY(%s)`; None when the viewer sees everyone."""
        return None if self.everyone else sorted(self.owner_ids)

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


async def visibility_for(sql: Sql, authorizer: Authorizer, user: User, resource: str = "entry") -> Visibility:
    if authorizer.allows(user.role, resource, "read_all"):
        return Visibility(user.id, True, frozenset())
    if authorizer.allows(user.role, "user", "read_team"):
        return Visibility(user.id, False, frozenset(await subtree_ids(sql, user.id)))
    return Visibility(user.id, False, frozenset({user.id}))
