"""Every statement on `approval_requests`, `approval_steps` and `delegations`, in plain SQL on the transaction's
connection; rows come back as the dataclasses of domain/models/rows.py.

A write answers with the row as it now is (RETURNING), so a transition never works on a stale copy; `updated_at`
follows every write by itself (trigger, migration 0007). A read that joins an entry lives here when it is about a
request (the entry's writes are domain.entries.repository's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from core.sql import Sql, columns, row_of, width
from domain.duplicates.repository import open_count_of
from domain.errors import NotFound
from domain.fx.rates import Locked
from domain.models.rows import DelegationRow, EntryRow, RequestRow, StepRow
from domain.pagination import Keyset

REQUEST = columns(RequestRow, "r")
STEP = columns(StepRow, "s")
DELEGATION = columns(DelegationRow, "d")
_ENTRY = columns(EntryRow, "e")


def pending_step_of(request_id: str) -> str:
    """The query of a request's open step (its newest pending one); `request_id` is SQL: a parameter or a column."""
    return (
        f"SELECT * FROM approval_steps WHERE request_id = {request_id} AND status = 'pending' "
        "ORDER BY sequence DESC LIMIT 1"
    )


def delegation_in_force(at: str, alias: str = "d") -> str:
    """THE rule of when a delegation is in force, as SQL: not revoked, started, not ended, at the instant `at` (SQL:
    a parameter). Every read of "who decides in the approver's stead" uses it."""
    return f"{alias}.revoked_at IS NULL AND {alias}.starts <= {at} AND {alias}.ends > {at}"


# --- requests ----------------------------------------------------------------------------------------------

_REQUEST = f"SELECT {REQUEST} FROM approval_requests r WHERE r.id = %s"
_REQUEST_LOCKED = _REQUEST + " FOR UPDATE"


async def request(sql: Sql, request_id: int, *, lock: bool = False) -> RequestRow:
    found = await sql.row(RequestRow, _REQUEST_LOCKED if lock else _REQUEST, (request_id,))
    if found is None:
        raise NotFound("approval request not found", id=request_id)
    return found


_WITH_OPEN_STEP = (
    f"SELECT {REQUEST}, {STEP}, {_ENTRY} FROM approval_requests r "
    f"LEFT JOIN LATERAL ({pending_step_of('r.id')}) s ON true "
    "LEFT JOIN entries e ON e.id = r.entry_id WHERE r.id = %s"
)


async def request_with_open_step(sql: Sql, request_id: int) -> tuple[RequestRow, StepRow | None, EntryRow | None]:
    """The request, its pending step and its entry: one read, not three."""
    values = await sql.one(_WITH_OPEN_STEP, (request_id,))
    if values is None:
        raise NotFound("approval request not found", id=request_id)
    return (
        RequestRow(*values[: width(RequestRow)]),
        row_of(StepRow, values, width(RequestRow)),
        row_of(EntryRow, values, width(RequestRow) + width(StepRow)),
    )


_SUBMITTED_SINCE = (
    f"SELECT {REQUEST} FROM approval_requests r WHERE r.submitted_at >= %s "
    "ORDER BY r.submitted_at DESC, r.id DESC LIMIT %s"
)


async def submitted_since(sql: Sql, since: datetime, limit: int) -> list[RequestRow]:
    """The requests submitted since `since`, newest first, at most `limit` (the policy preview's replay)."""
    return [RequestRow(*values) for values in await sql.all(_SUBMITTED_SINCE, (since, limit))]


_NEW_REQUEST_ID = "SELECT nextval(pg_get_serial_sequence('approval_requests', 'id'))"


async def new_request_id(sql: Sql) -> int:
    return int(await sql.scalar(_NEW_REQUEST_ID))


@dataclass(frozen=True)
class Opening:
    """What a (re)opened request pins: its title, amount (what limits compare: the base amount), the policy version,
    the chain, when it was submitted, and for an entry the rate its base amount was made with."""

    title: str
    justification: str
    amount: Decimal | None
    policy_version: str
    chain: list[dict[str, Any]]
    round: int
    submitted_at: datetime
    limits: Mapping[str, Any]
    fx: Locked | None = None

    def values(self) -> tuple[Any, ...]:
        fx = self.fx
        return (
            self.title[:200],
            self.justification,
            self.amount,
            self.policy_version,
            Jsonb(self.chain),
            self.round,
            self.submitted_at,
            Jsonb(dict(self.limits)),
            fx.currency if fx else None,
            fx.amount if fx else None,
            fx.rate.rate if fx else None,
            fx.rate.day if fx else None,
            fx.rate.source if fx else None,
        )


_OPEN_FIELDS = (
    "title",
    "justification",
    "amount",
    "policy_version",
    "chain",
    "round",
    "submitted_at",
    "limits",
    "currency",
    "original_amount",
    "fx_rate",
    "rate_date",
    "rate_source",
)


_INSERT_REQUEST = (
    "INSERT INTO approval_requests (id, subject_kind, entry_id, invoice_id, requester_id, workflow_id, status, "
    f"decided_at, {', '.join(_OPEN_FIELDS)}) VALUES (coalesce(%s, nextval(pg_get_serial_sequence('approval_requests', "
    f"'id'))), %s, %s, %s, %s, %s, 'pending', NULL, {', '.join(['%s'] * len(_OPEN_FIELDS))}) "
    f"RETURNING {columns(RequestRow)}"
)
_REOPEN_REQUEST = (
    "UPDATE approval_requests SET status = 'pending', decided_at = NULL, "
    f"{', '.join(f'{name} = %s' for name in _OPEN_FIELDS)} WHERE id = %s RETURNING {columns(RequestRow)}"
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
    invoice_id: int | None = None,
) -> RequestRow:
    """A new pending request (`request_id` None: the INSERT draws it)."""
    params = (request_id, subject_kind, entry_id, invoice_id, requester_id, workflow_id, *opening.values())
    return await sql.written(RequestRow, _INSERT_REQUEST, params)


async def reopen_request(sql: Sql, request_id: int, opening: Opening) -> RequestRow:
    """The request pending again, in a new round (a resubmission, or a submission whose start was undone)."""
    return await sql.written(RequestRow, _REOPEN_REQUEST, (*opening.values(), request_id))


_SET_REQUEST_STATUS = (
    "UPDATE approval_requests SET status = %s, decided_at = CASE WHEN %s THEN %s ELSE decided_at END "
    f"WHERE id = %s RETURNING {columns(RequestRow)}"
)


async def set_request_status(sql: Sql, request_id: int, status: str, decided_at: datetime | None) -> RequestRow:
    """The request's new status; `decided_at` is set when given (a final status), else left as it was."""
    return await sql.written(RequestRow, _SET_REQUEST_STATUS, (status, decided_at is not None, decided_at, request_id))


# --- steps -------------------------------------------------------------------------------------------------

_STEP = f"SELECT {STEP} FROM approval_steps s WHERE s.id = %s"
_PENDING_STEP = f"SELECT {STEP} FROM ({pending_step_of('%s')}) s"
_STEPS = f"SELECT {STEP} FROM approval_steps s WHERE s.request_id = %s ORDER BY s.sequence"


async def step(sql: Sql, step_id: int) -> StepRow | None:
    return await sql.row(StepRow, _STEP, (step_id,))


async def pending_step(sql: Sql, request_id: int) -> StepRow | None:
    return await sql.row(StepRow, _PENDING_STEP, (request_id,))


async def steps_of(sql: Sql, request_id: int) -> list[StepRow]:
    return [StepRow(*values) for values in await sql.all(_STEPS, (request_id,))]


_STEP_WITH_ENTRY = f"SELECT {STEP}, {_ENTRY} FROM approval_steps s LEFT JOIN entries e ON e.id = %s WHERE s.id = %s"


async def step_with_entry(sql: Sql, step_id: int, entry_id: int | None) -> tuple[StepRow | None, EntryRow | None]:
    """A step and the request's entry, in one read."""
    values = await sql.one(_STEP_WITH_ENTRY, (entry_id, step_id))
    if values is None:
        return None, None
    return StepRow(*values[: width(StepRow)]), row_of(EntryRow, values, width(StepRow))


_LAST_SEQUENCE = "SELECT max(sequence) FROM approval_steps WHERE request_id = %s"
_INSERT_STEP = (
    "INSERT INTO approval_steps (request_id, sequence, round, level, approver_id, delegate_id, status, rule, "
    f"remind_at, escalate_at, opened_at) VALUES (%s, %s, %s, %s, %s, %s, 'pending', %s, %s, %s, %s) "
    f"RETURNING {columns(StepRow)}"
)


async def last_sequence(sql: Sql, request_id: int) -> int:
    return int(await sql.scalar(_LAST_SEQUENCE, (request_id,)) or 0)


@dataclass(frozen=True)
class NewStep:
    request_id: int
    sequence: int
    round: int
    level: int
    approver_id: int
    delegate_id: int | None
    rule: str
    remind_at: datetime
    escalate_at: datetime
    opened_at: datetime  # the opener's clock (the workflow's for a timer's step): what its cycle time counts from


async def insert_step(sql: Sql, new: NewStep) -> StepRow:
    params = (
        new.request_id,
        new.sequence,
        new.round,
        new.level,
        new.approver_id,
        new.delegate_id,
        new.rule,
        new.remind_at,
        new.escalate_at,
        new.opened_at,
    )
    return await sql.written(StepRow, _INSERT_STEP, params)


_DECIDE_STEP = (
    "UPDATE approval_steps SET status = %s, decided_by_id = %s, decided_at = %s, comment = %s, "
    f"delegate_id = coalesce(delegate_id, %s) WHERE id = %s RETURNING {columns(StepRow)}"
)


async def decide_step(
    sql: Sql, step_id: int, status: str, decided_by_id: int, at: datetime, comment: str | None, delegate_id: int | None
) -> StepRow:
    """Close a step with a decision; `delegate_id` is recorded when the step had none (a delegate decided)."""
    return await sql.written(StepRow, _DECIDE_STEP, (status, decided_by_id, at, comment, delegate_id, step_id))


_CLOSE_STEP = (
    "UPDATE approval_steps SET status = %s, decided_at = coalesce(%s, decided_at) "
    f"WHERE id = %s RETURNING {columns(StepRow)}"
)
_CLOSE_PENDING_STEPS = (
    "UPDATE approval_steps SET status = %s, decided_at = coalesce(%s, decided_at) "
    "WHERE request_id = %s AND status = 'pending'"
)


async def close_step(sql: Sql, step_id: int, status: str, at: datetime | None) -> StepRow:
    """A step closed without a decision (escalated); `at` None leaves decided_at as it was."""
    return await sql.written(StepRow, _CLOSE_STEP, (status, at, step_id))


async def close_pending_steps(sql: Sql, request_id: int, status: str, at: datetime | None) -> None:
    """Every pending step of the request closed (withdrawn, expired, undone)."""
    await sql.run(_CLOSE_PENDING_STEPS, (status, at, request_id))


_SET_STEP_REMINDED = f"UPDATE approval_steps SET reminded_at = %s WHERE id = %s RETURNING {columns(StepRow)}"
_SET_STEP_DELEGATE = f"UPDATE approval_steps SET delegate_id = %s WHERE id = %s RETURNING {columns(StepRow)}"


async def set_step_reminded(sql: Sql, step_id: int, at: datetime) -> StepRow:
    return await sql.written(StepRow, _SET_STEP_REMINDED, (at, step_id))


async def set_step_delegate(sql: Sql, step_id: int, delegate_id: int | None) -> StepRow:
    return await sql.written(StepRow, _SET_STEP_DELEGATE, (delegate_id, step_id))


_APPROVERS_OF_ROUND = (
    "SELECT decided_by_id, approver_id FROM approval_steps WHERE request_id = %s AND round = %s AND status = 'approved'"
)


async def approvers_of_round(sql: Sql, request_id: int, round_number: int) -> set[int]:
    """Who approved a step of the round: the deciders, and the approvers a delegate decided for."""
    rows = await sql.all(_APPROVERS_OF_ROUND, (request_id, round_number))
    return {person for row in rows for person in row if person is not None}


_REASSIGN_STEP = (
    "UPDATE approval_steps SET approver_id = %s, delegate_id = %s, rule = %s WHERE id = %s AND status = 'pending' "
    f"RETURNING {columns(StepRow)}"
)


async def reassign_step(sql: Sql, step_id: int, approver_id: int, delegate_id: int | None, rule: str) -> StepRow | None:
    """The pending step now waits on another approver (or delegate); None when it is no longer pending."""
    return await sql.row(StepRow, _REASSIGN_STEP, (approver_id, delegate_id, rule, step_id))


@dataclass(frozen=True)
class WaitingStep:
    """A step waiting on a user, and the workflow to tell of a change."""

    workflow_id: str
    request_id: int
    step_id: int


_WAITING_ON = (
    "SELECT r.workflow_id, r.id, s.id FROM approval_steps s JOIN approval_requests r ON r.id = s.request_id "
    "WHERE s.approver_id = %s AND s.status = 'pending' AND r.status = 'pending' ORDER BY s.id"
)


async def steps_waiting_on(sql: Sql, approver_id: int) -> list[WaitingStep]:
    return [WaitingStep(*values) for values in await sql.all(_WAITING_ON, (approver_id,))]


_INVOLVING = (
    "SELECT r.id FROM approval_steps s JOIN approval_requests r ON r.id = s.request_id "
    "WHERE (s.approver_id = %(user)s OR s.delegate_id = %(user)s) AND s.status = 'pending' AND r.status = 'pending' "
    "UNION SELECT r.id FROM approval_requests r WHERE r.requester_id = %(user)s AND r.status = 'pending' ORDER BY 1"
)


async def pending_requests_involving(sql: Sql, user_id: int) -> list[int]:
    """The pending requests a change to this user may re-route: those waiting on them (as approver or delegate),
    and their own (their managers decide them)."""
    return [values[0] for values in await sql.all(_INVOLVING, {"user": user_id})]


# --- the inbox and who takes part ----------------------------------------------------------------------------

_DELEGATED_TO = (
    "EXISTS (SELECT 1 FROM delegations d WHERE d.user_id = s.approver_id AND d.delegate_id = %(user_id)s AND "
    f"{delegation_in_force('%(now)s')})"
)
_INBOX_FROM = (
    "FROM approval_steps s JOIN approval_requests r ON r.id = s.request_id "
    "WHERE s.status = 'pending' AND r.status = 'pending'"
)
_MINE = f" AND r.requester_id <> %(user_id)s AND (s.approver_id = %(user_id)s OR {_DELEGATED_TO})"


# Oldest waiting first; a cursor's page starts after its step. The pending steps of one approver are few (their
# index is ix_approval_steps_approver_status), so they are sorted in memory and the row comparison filters them.
INBOX_KEYSET = Keyset("approval-inbox", ("s.created_at", "s.id"), (datetime, int), descending=False)


async def inbox(
    sql: Sql, user_id: int | None, now: datetime, limit: int, offset: int, after: tuple[Any, ...] | None = None
) -> tuple[list[tuple[StepRow, RequestRow, int]], int]:
    """Pending steps waiting on `user_id` (as approver or as a delegate in force); every pending step when None.
    Each with its request and how many possible duplicates of the request's entry nobody has dismissed. `limit`
    rows from `offset`, or after the step keyed `after` ((created_at, id)); the total ignores `after`."""
    where = _INBOX_FROM + (_MINE if user_id is not None else "")
    params: dict[str, Any] = {"user_id": user_id, "now": now, "limit": limit, "offset": offset}
    total = await sql.scalar(f"SELECT count(*) {where}", params)
    page_where = where
    if after is not None:
        condition, after_params = INBOX_KEYSET.after(after)
        page_where, params = f"{where} AND {condition}", params | after_params
    rows = await sql.all(
        f"SELECT {STEP}, {REQUEST}, ({open_count_of('r.entry_id')}) {page_where} ORDER BY {INBOX_KEYSET.order_by()} "
        "LIMIT %(limit)s OFFSET %(offset)s",
        params,
    )
    split = width(StepRow)
    return [(StepRow(*row[:split]), RequestRow(*row[split:-1]), int(row[-1])) for row in rows], int(total or 0)


_PARTICIPANT = (
    "SELECT 1 FROM approval_steps s WHERE s.request_id = %(request_id)s AND (s.approver_id = %(user_id)s "
    f"OR s.delegate_id = %(user_id)s OR s.decided_by_id = %(user_id)s OR (s.status = 'pending' AND {_DELEGATED_TO})) "
    "LIMIT 1"
)


async def is_participant(sql: Sql, request_id: int, user_id: int, now: datetime) -> bool:
    """Whether the user is (or was) an approver or delegate of one of the request's steps."""
    return await sql.one(_PARTICIPANT, {"request_id": request_id, "user_id": user_id, "now": now}) is not None


# --- delegations ---------------------------------------------------------------------------------------------

_IN_FORCE = (
    f"SELECT {DELEGATION} FROM delegations d WHERE d.user_id = %(user_id)s AND {delegation_in_force('%(at)s')} "
    "ORDER BY d.id DESC LIMIT 1"
)


async def delegation_in_force_for(sql: Sql, user_id: int, at: datetime) -> DelegationRow | None:
    """The delegation in force for `user_id` at `at` (the newest one, should windows overlap)."""
    return await sql.row(DelegationRow, _IN_FORCE, {"user_id": user_id, "at": at})


_CURRENT = (
    f"SELECT {DELEGATION}, {delegation_in_force('%(at)s')} FROM delegations d WHERE d.user_id = %(user_id)s "
    "AND d.revoked_at IS NULL AND d.ends > %(at)s ORDER BY d.id DESC LIMIT 1"
)


async def current_delegation(sql: Sql, user_id: int, at: datetime) -> tuple[DelegationRow, bool] | None:
    """The user's delegation in force or still to come at `at` (not revoked, not ended), and whether it is in
    force."""
    values = await sql.one(_CURRENT, {"user_id": user_id, "at": at})
    if values is None:
        return None
    return DelegationRow(*values[:-1]), bool(values[-1])


_INSERT_DELEGATION = (
    f"INSERT INTO delegations (user_id, delegate_id, starts, ends) VALUES (%s, %s, %s, %s) "
    f"RETURNING {columns(DelegationRow)}"
)
_REVOKE = (
    "UPDATE delegations SET revoked_at = %(at)s WHERE user_id = %(user_id)s AND revoked_at IS NULL "
    "AND ends > %(at)s RETURNING id"
)


async def insert_delegation(
    sql: Sql, user_id: int, delegate_id: int, starts: datetime, ends: datetime
) -> DelegationRow:
    return await sql.written(DelegationRow, _INSERT_DELEGATION, (user_id, delegate_id, starts, ends))


async def revoke_delegations(sql: Sql, user_id: int, at: datetime) -> list[int]:
    """Revoke the user's delegations in force or still to come; their ids."""
    return [values[0] for values in await sql.all(_REVOKE, {"user_id": user_id, "at": at})]


# --- what the operators' metrics read (domain/metrics/gauges.py) --------------------------------------------------

# The pending steps only, through ix_approval_steps_status_remind (status leads): the cost follows the approvals
# waiting now, never the table's history. Ages are from the step's opening; `overdue` is past its escalation time.
_PENDING_BY_LEVEL_AND_AGE = (
    "SELECT LEAST(level + 1, %s) AS level, width_bucket(EXTRACT(EPOCH FROM (%s - created_at)), %s::float8[]) AS age, "
    "count(*), count(*) FILTER (WHERE escalate_at < %s) "
    "FROM approval_steps WHERE status = 'pending' GROUP BY 1, 2"
)


@dataclass(frozen=True)
class PendingCount:
    level: int  # 1 for a chain's first level; levels from `top_level` up are counted as `top_level`
    age_bucket: int  # index into the caller's age bounds: 0 below the first, len(bounds) at or past the last
    waiting: int
    overdue: int  # of those, waiting past their escalation time


async def pending_by_level_and_age(
    sql: Sql, now: datetime, age_bounds_seconds: list[float], top_level: int
) -> list[PendingCount]:
    rows = await sql.all(_PENDING_BY_LEVEL_AND_AGE, (top_level, now, age_bounds_seconds, now))
    return [PendingCount(int(level), int(age), int(waiting), int(overdue)) for level, age, waiting, overdue in rows]
