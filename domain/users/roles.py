"""Who may grant or manage which role: strictly below one's own rank; and who may have people reporting to them.

Managers and accountants are siblings (the same rank): neither may manage the other. Nobody outranks a
superadmin, so no superadmin is ever created or changed through the API (the CLI creates the first one).
"""

from __future__ import annotations

from domain.models import Role

RANK: dict[str, int] = {
    Role.SUPERADMIN: 4,
    Role.ADMIN: 3,
    Role.MANAGER: 2,
    Role.ACCOUNTANT: 2,
    Role.EMPLOYEE: 1,
}


def outranks(actor_role: str, other_role: str) -> bool:
    """True when `actor_role` is strictly above `other_role` (unknown roles outrank nothing)."""
    return RANK.get(actor_role, 0) > RANK.get(other_role, 99)


# Who may be someone's manager in the tree: the approval chain climbs it, so an employee or an accountant at a
# node would put someone without approval authority (and without a team view) above a team.
MANAGER_ROLES: frozenset[str] = frozenset({Role.SUPERADMIN, Role.ADMIN, Role.MANAGER})


def may_have_reports(role: str) -> bool:
    return role in MANAGER_ROLES
