"""Approval requests, their steps and the people they name: the SQL the approval path reads and writes with.

Every function works in the caller's transaction (`sql_of(session)`) and answers with rows (domain/models/rows.py).
A write returns the row as it now is, so a transition never works on a stale copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from core.sql import Sql, columns, row_of, width
from domain.errors import NotFound
from domain.models.rows import DelegationRow, EntryRow, RequestRow, StepRow

REQUEST = columns(RequestRow, "r")
STEP = columns(StepRow, "s")
ENTRY = columns(EntryRow, "e")
STEP_COLUMNS = columns(StepRow)
REQUEST_COLUMNS = columns(RequestRow)
ENTRY_COLUMNS = columns(EntryRow)


def pending_step_of(request_id: str) -> str:
    """The query of a request's open step (its newest pending one); `request_id` is SQL: a parameter or a column."""
    return (
        f"SELECT * FROM approval_steps WHERE request_id = {request_id} AND status = 'pending' "
        "ORDER BY sequence DESC LIMIT 1"
    )


# --- requests ----------------------------------------------------------------------------------------

_REQUEST = f"SELECT {REQUEST} FROM approval_requests r WHERE r.id = %s"
_REQUEST_LOCKED = _REQUEST + " FOR UPDATE"


async def request(sql: Sql, request_id: int, *, lock: bool = False) -> RequestRow:
    values = await sql.one(_REQUEST_LOCKED if lock else _REQUEST, (request_id,))
    if values is None:
        raise NotFound("approval request not found", id=request_id)
    return RequestRow(*values)


_WITH_OPEN_STEP = (
    f"SELECT {REQUEST}, {STEP}, {ENTRY} FROM approval_requests r "
    f"LEFT JOIN LATERAL ({pending_step_of('r.id')}) s ON true "
    "LEFT JOIN entries e ON e.id = r.entry_id WHERE r.id = %s"
)


async def request_with_open_step(sql: Sql, request_id: int) -> tuple[RequestRow, StepRow | None, EntryRow | None]:
    """The request, its pending step and its entry: one read, not three."""
    values = await sql.one(_WITH_OPEN_STEP, (request_id,))
    if values is None:
        raise NotFound("approval request not found", id=request_id)
    request_row = RequestRow(*values[: width(RequestRow)])
    return (
        request_row,
        row_of(StepRow, values, width(RequestRow)),
        row_of(EntryRow, values, width(RequestRow) + width(StepRow)),
    )


_NEW_REQUEST_ID = "SELECT nextval(pg_get_serial_sequence('approval_requests', 'id'))"


async def new_request_id(sql: Sql) -> int:
    return int(await sql.scalar(_NEW_REQUEST_ID))


_OPEN_FIELDS = ("title", "justification", "amount", "policy_version", "chain", "round", "submitted_at")
_INSERT_REQUEST = (
    "INSERT INTO approval_requests (id, subject_kind, entry_id, requester_id, workflow_id, status, decided_at, "
    f"{', '.join(_OPEN_FIELDS)}) VALUES (coalesce(%s, nextval(pg_get_serial_sequence('approval_requests', 'id'))), "
    f"%s, %s, %s, %s, 'pending', NULL, {', '.join(['%s'] * len(_OPEN_FIELDS))}) RETURNING {REQUEST_COLUMNS}"
)
_REOPEN_REQUEST = (
    "UPDATE approval_requests SET status = 'pending', decided_at = NULL, updated_at = now(), "
    f"{', '.join(f'{name} = %s' for name in _OPEN_FIELDS)} WHERE id = %s RETURNING {REQUEST_COLUMNS}"
)


@dataclass(frozen=True)
class Opening:
    """What a (re)opened request pins: its title, amount, the policy version, the chain and when it was submitted."""

    title: str
    justification: str
    amount: Decimal | None
    policy_version: str
    chain: list[dict[str, Any]]
    round: int
    submitted_at: datetime

    def values(self) -> tuple[Any, ...]:
        return (
            self.title[:200],
            self.justification,
            self.amount,
            self.policy_version,
            Jsonb(self.chain),
            self.round,
            self.submitted_at,
        )


async def insert_request(
    sql: Sql,
    *,
    request_id: int | None,
    subject_kind: str,
    entry_id: int | None,
    requester_id: int,
    workflow_id: str,
    opening: Opening,
) -> RequestRow:
    """A new pending request (`request_id` None: the INSERT draws it)."""
    params = (request_id, subject_kind, entry_id, requester_id, workflow_id, *opening.values())
    return await sql.written(RequestRow, _INSERT_REQUEST, params)


async def reopen_request(sql: Sql, request_id: int, opening: Opening) -> RequestRow:
    """The request pending again, in a new round (a resubmission, or a submission whose start was undone)."""
    return await sql.written(RequestRow, _REOPEN_REQUEST, (*opening.values(), request_id))


_SET_REQUEST_STATUS = (
    "UPDATE approval_requests SET status = %s, decided_at = CASE WHEN %s THEN %s ELSE decided_at END, "
    f"updated_at = now() WHERE id = %s RETURNING {REQUEST_COLUMNS}"
)


async def set_request_status(sql: Sql, request_id: int, status: str, decided_at: datetime | None) -> RequestRow:
    """The request's new status; `decided_at` is set when given (a final status), else left as it was."""
    return await sql.written(RequestRow, _SET_REQUEST_STATUS, (status, decided_at is not None, decided_at, request_id))


# --- steps -------------------------------------------------------------------------------------------

_STEP = f"SELECT {STEP} FROM approval_steps s WHERE s.id = %s"
_PENDING_STEP = f"SELECT {STEP} FROM ({pending_step_of('%s')}) s"
_STEPS = f"SELECT {STEP} FROM approval_steps s WHERE s.request_id = %s ORDER BY s.sequence"


async def step(sql: Sql, step_id: int) -> StepRow | None:
    return await sql.row(StepRow, _STEP, (step_id,))


async def pending_step(sql: Sql, request_id: int) -> StepRow | None:
    return await sql.row(StepRow, _PENDING_STEP, (request_id,))


async def steps_of(sql: Sql, request_id: int) -> list[StepRow]:
    return [StepRow(*values) for values in await sql.all(_STEPS, (request_id,))]


_STEP_WITH_ENTRY = f"SELECT {STEP}, {ENTRY} FROM approval_steps s LEFT JOIN entries e ON e.id = %s WHERE s.id = %s"


async def step_with_entry(sql: Sql, step_id: int, entry_id: int | None) -> tuple[StepRow | None, EntryRow | None]:
    """A step and the request's entry, in one read."""
    values = await sql.one(_STEP_WITH_ENTRY, (entry_id, step_id))
    if values is None:
        return None, None
    return StepRow(*values[: width(StepRow)]), row_of(EntryRow, values, width(StepRow))


_LAST_SEQUENCE = "SELECT max(sequence) FROM approval_steps WHERE request_id = %s"
_INSERT_STEP = (
    "INSERT INTO approval_steps (request_id, sequence, round, level, approver_id, delegate_id, status, rule, "
    f"remind_at, escalate_at) VALUES (%s, %s, %s, %s, %s, %s, 'pending', %s, %s, %s) RETURNING {STEP_COLUMNS}"
)


async def last_sequence(sql: Sql, request_id: int) -> int:
    return int(await sql.scalar(_LAST_SEQUENCE, (request_id,)) or 0)


async def insert_step(
    sql: Sql,
    *,
    request_id: int,
    sequence: int,
    round_number: int,
    level: int,
    approver_id: int,
    delegate_id: int | None,
    rule: str,
    remind_at: datetime,
    escalate_at: datetime,
) -> StepRow:
    params = (request_id, sequence, round_number, level, approver_id, delegate_id, rule, remind_at, escalate_at)
    return await sql.written(StepRow, _INSERT_STEP, params)


_DECIDE_STEP = (
    "UPDATE approval_steps SET status = %s, decided_by_id = %s, decided_at = %s, comment = %s, "
    "delegate_id = coalesce(delegate_id, %s), updated_at = now() WHERE id = %s "
    f"RETURNING {STEP_COLUMNS}"
)


async def decide_step(
    sql: Sql, step_id: int, status: str, decided_by_id: int, at: datetime, comment: str | None, delegate_id: int | None
) -> StepRow:
    """Close a step with a decision; `delegate_id` is recorded when the step had none (a delegate decided)."""
    return await sql.written(StepRow, _DECIDE_STEP, (status, decided_by_id, at, comment, delegate_id, step_id))


_CLOSE_STEP = (
    "UPDATE approval_steps SET status = %s, decided_at = coalesce(%s, decided_at), updated_at = now() "
    f"WHERE id = %s RETURNING {STEP_COLUMNS}"
)
_CLOSE_PENDING_STEPS = (
    "UPDATE approval_steps SET status = %s, decided_at = coalesce(%s, decided_at), updated_at = now() "
    "WHERE request_id = %s AND status = 'pending'"
)


async def close_step(sql: Sql, step_id: int, status: str, at: datetime | None) -> StepRow:
    """A step closed without a decision (escalated); `at` None leaves decided_at as it was."""
    return await sql.written(StepRow, _CLOSE_STEP, (status, at, step_id))


async def close_pending_steps(sql: Sql, request_id: int, status: str, at: datetime | None) -> None:
    """Every pending step of the request closed (withdrawn, expired, undone)."""
    await sql.run(_CLOSE_PENDING_STEPS, (status, at, request_id))


_SET_STEP_REMINDED = (
    f"UPDATE approval_steps SET reminded_at = %s, updated_at = now() WHERE id = %s RETURNING {STEP_COLUMNS}"
)
_SET_STEP_DELEGATE = (
    f"UPDATE approval_steps SET delegate_id = %s, updated_at = now() WHERE id = %s RETURNING {STEP_COLUMNS}"
)


async def set_step_reminded(sql: Sql, step_id: int, at: datetime) -> StepRow:
    return await sql.written(StepRow, _SET_STEP_REMINDED, (at, step_id))


async def set_step_delegate(sql: Sql, step_id: int, delegate_id: int | None) -> StepRow:
    return await sql.written(StepRow, _SET_STEP_DELEGATE, (delegate_id, step_id))


# --- delegations ---------------------------------------------------------------------------------------

DELEGATION = columns(DelegationRow, "d")
_ACTIVE_DELEGATION = (
    f"SELECT {DELEGATION} FROM delegations d WHERE d.user_id = %s AND d.revoked_at IS NULL AND d.starts <= %s "
    "AND d.ends > %s ORDER BY d.id DESC LIMIT 1"
)
_DELEGATION_TO = (
    f"SELECT {DELEGATION} FROM delegations d WHERE d.user_id = %s AND d.delegate_id = %s AND d.revoked_at IS NULL "
    "AND d.ends > %s ORDER BY d.id DESC LIMIT 1"
)


async def active_delegation(sql: Sql, user_id: int, at: datetime) -> DelegationRow | None:
    """The delegation in force for `user_id` at `at` (the newest one, should windows overlap)."""
    return await sql.row(DelegationRow, _ACTIVE_DELEGATION, (user_id, at, at))


async def delegation_to(sql: Sql, user_id: int, delegate_id: int, at: datetime) -> DelegationRow | None:
    """The newest delegation from `user_id` to `delegate_id` not yet over at `at` (it may start later)."""
    return await sql.row(DelegationRow, _DELEGATION_TO, (user_id, delegate_id, at))


# --- entries ---------------------------------------------------------------------------------------------

_SET_ENTRY_STATUS = (
    "UPDATE entries SET status = %s, decided_at = CASE WHEN %s THEN %s ELSE decided_at END, "
    "submitted_at = CASE WHEN %s THEN %s ELSE submitted_at END, version = version + 1, updated_at = now() "
    f"WHERE id = %s RETURNING {ENTRY_COLUMNS}"
)
_SUBMIT_ENTRY = (
    "UPDATE entries SET status = 'pending', approval_request_id = %s, workflow_id = %s, submitted_at = %s, "
    f"decided_at = NULL, version = version + 1, updated_at = now() WHERE id = %s RETURNING {ENTRY_COLUMNS}"
)


async def set_entry_status(
    sql: Sql, entry_id: int, status: str, *, decided_at: datetime | None = None, submitted_at: datetime | None = None
) -> EntryRow:
    """The entry's new status (its version moves on, as every change's does); the times are set when given."""
    params = (status, decided_at is not None, decided_at, submitted_at is not None, submitted_at, entry_id)
    return await sql.written(EntryRow, _SET_ENTRY_STATUS, params)


async def submit_entry(sql: Sql, entry_id: int, request: RequestRow, at: datetime) -> EntryRow:
    """The entry pending under `request` (its decision time cleared, its submission time `at`)."""
    return await sql.written(EntryRow, _SUBMIT_ENTRY, (request.id, request.workflow_id, at, entry_id))


_UNSUBMIT_ENTRY = (
    "UPDATE entries SET status = 'draft', submitted_at = NULL, version = version + 1, updated_at = now() "
    f"WHERE id = %s RETURNING {ENTRY_COLUMNS}"
)


async def unsubmit_entry(sql: Sql, entry_id: int) -> EntryRow:
    """The entry back to a draft (its submission was undone)."""
    return await sql.written(EntryRow, _UNSUBMIT_ENTRY, (entry_id,))


# --- people ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    id: int
    full_name: str
    email: str
    role: str
    is_active: bool


_PEOPLE = "SELECT id, full_name, email, role, is_active FROM users WHERE id = ANY(%s)"


class People:
    """The users a transition names or notifies (requester, approvers, delegates, decider), each read once: the
    ones named up front in one query, any other on first use."""

    def __init__(self, sql: Sql) -> None:
        self.sql = sql
        self.known: dict[int, Person] = {}

    async def load(self, *user_ids: int | None) -> None:
        missing = sorted({user_id for user_id in user_ids if user_id is not None and user_id not in self.known})
        if missing:
            for values in await self.sql.all(_PEOPLE, (missing,)):
                self.known[values[0]] = Person(*values)

    async def get(self, user_id: int | None) -> Person | None:
        if user_id is None:
            return None
        await self.load(user_id)
        return self.known.get(user_id)

    async def name(self, user_id: int | None) -> str:
        person = await self.get(user_id)
        return person.full_name if person is not None else ""

    async def role(self, user_id: int) -> str:
        person = await self.get(user_id)
        return person.role if person is not None else ""
