"""Who may decide a step: the rule, written once, that the commands check early and the transitions enforce."""

from __future__ import annotations

from datetime import datetime

from core.sql import Sql
from domain.approvals import repository as requests
from domain.errors import Forbidden
from domain.models.rows import StepRow


async def acting_for(sql: Sql, step: StepRow, actor_id: int, requester_id: int, at: datetime) -> int | None:
    """Whether `actor_id` may decide `step` at `at`: None when they are its approver, the approver's id when they
    decide as the approver's delegate in force. Forbidden otherwise (one's own request included, superadmin too)."""
    if actor_id == requester_id:
        raise Forbidden("nobody decides on their own request")
    if actor_id == step.approver_id:
        return None
    delegation = await requests.delegation_in_force_for(sql, step.approver_id, at)
    if delegation is not None and delegation.delegate_id == actor_id:
        return step.approver_id
    raise Forbidden("this step waits on another approver")
