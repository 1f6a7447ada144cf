"""The approval outbox: what the workflow engine must hear of a committed change, kept with the change.

A submission writes "start this workflow" in the transaction that opens the request; a re-routed step writes "tell
its workflow". The API delivers right after its commit; whatever is left (the API killed between its commit and the
start, an engine that was away for a signal) the worker's relay delivers a few seconds later (`deliver_due`). So
nothing the database has committed is lost on its way to the engine, and nothing is delivered that was not
committed. Delivery is at least once: a start is idempotent by its workflow id, a `step_changed` signal by what it
does (the workflow reads the step again).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg.types.json import Jsonb

from core.db import Database
from core.engine import EngineUnavailable, UserMetadata, WorkflowEngine, WorkflowGone
from core.sql import Sql
from workflows.contracts import (
    AMOUNT_CENTS,
    APPROVAL_STATUS,
    CURRENT_APPROVER,
    ENTRY_ID,
    ENTRY_KIND,
    INVOICE_WORKFLOW,
    RECURRING_INVOICE_SETUP_WORKFLOW,
    ApprovalInput,
    Contract,
    InvoiceInput,
    RecurringInvoiceInput,
    StepChanged,
    amount_cents,
)

log = logging.getLogger(__name__)

APPROVAL_WORKFLOW = "EntryApprovalWorkflow"
START = "start"
SIGNAL = "signal"
# The workflows an outbox row may start, with their input's type (all run on the approvals queue).
_INPUTS: dict[str, type[Contract]] = {
    APPROVAL_WORKFLOW: ApprovalInput,
    INVOICE_WORKFLOW: InvoiceInput,
    RECURRING_INVOICE_SETUP_WORKFLOW: RecurringInvoiceInput,
}


@dataclass(frozen=True)
class Message:
    id: int
    request_id: int
    workflow_id: str
    kind: str
    name: str
    payload: dict[str, Any]
    attempts: int


def search_attributes(start: ApprovalInput, status: str) -> dict[str, str | int]:
    """What the Temporal UI finds a new approval by (ids and amounts only, never personal data); the workflow
    keeps them current from there."""
    values: dict[str, str | int] = {
        ENTRY_KIND.name: start.subject_kind,
        ENTRY_ID.name: str(start.subject_id),
        APPROVAL_STATUS.name: status,
    }
    if start.first_step is not None:
        values[CURRENT_APPROVER.name] = str(start.first_step.delegate_id or start.first_step.approver_id)
    if start.amount is not None:
        values[AMOUNT_CENTS.name] = amount_cents(start.amount)
    return values


_NEW_COLUMNS = "request_id, workflow_id, kind, name, payload"
_ADD = f"INSERT INTO approval_outbox ({_NEW_COLUMNS}) VALUES (%s, %s, %s, %s, %s) RETURNING id"


def _metadata_json(metadata: UserMetadata | None) -> dict[str, str]:
    # Rows written before the workflows had user metadata carry none: they start without it.
    return {"summary": metadata.summary, "details": metadata.details} if metadata is not None else {}


def _metadata_of(payload: dict[str, Any]) -> UserMetadata | None:
    summary = payload.get("summary")
    return UserMetadata(str(summary), str(payload.get("details") or "")) if summary else None


async def add_start(
    sql: Sql,
    request_id: int,
    workflow_id: str,
    start: ApprovalInput,
    attributes: dict[str, str | int],
    replace: bool,
    metadata: UserMetadata | None = None,
) -> int:
    """The workflow to start once this transaction commits (`metadata`: what the Temporal UI shows of it)."""
    payload = {
        "input": start.model_dump(mode="json"),
        "attributes": attributes,
        "replace": replace,
        **_metadata_json(metadata),
    }
    return int(await sql.scalar(_ADD, (request_id, workflow_id, START, APPROVAL_WORKFLOW, Jsonb(payload))))


async def add_workflow_start(
    sql: Sql,
    request_id: int,
    workflow_id: str,
    argument: Contract,
    attributes: dict[str, str | int],
    metadata: UserMetadata | None = None,
) -> int:
    """Another workflow a committed change starts (an issued invoice's), kept like an approval's start."""
    name = next(name for name, kind in _INPUTS.items() if isinstance(argument, kind))
    payload = {
        "input": argument.model_dump(mode="json"),
        "attributes": attributes,
        "replace": False,
        **_metadata_json(metadata),
    }
    return int(await sql.scalar(_ADD, (request_id, workflow_id, START, name, Jsonb(payload))))


async def add_step_changed(sql: Sql, request_id: int, workflow_id: str, change: StepChanged) -> int:
    """The workflow to tell, once this transaction commits, that its open step was re-routed."""
    payload = change.model_dump(mode="json")
    return int(await sql.scalar(_ADD, (request_id, workflow_id, SIGNAL, "step_changed", Jsonb(payload))))


_COLUMNS = "id, request_id, workflow_id, kind, name, payload, attempts"
_BY_IDS = f"SELECT {_COLUMNS} FROM approval_outbox WHERE id = ANY(%s) AND delivered_at IS NULL ORDER BY id"
# Older than `grace`: the API that wrote it had its chance to deliver. SKIP LOCKED: relays in several workers
# never deliver the same message at the same time.
_DUE = (
    f"SELECT {_COLUMNS} FROM approval_outbox WHERE delivered_at IS NULL AND created_at < now() - %s "
    "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
)
_DELIVERED = "UPDATE approval_outbox SET delivered_at = now(), attempts = attempts + 1, last_error = %s WHERE id = %s"
_FAILED = "UPDATE approval_outbox SET attempts = attempts + 1, last_error = %s WHERE id = %s"


async def delivered(sql: Sql, message_id: int, note: str | None = None) -> None:
    """The caller delivered it itself (the API, right after its commit)."""
    await sql.run(_DELIVERED, (note, message_id))


# The start whose run announced `first_step`: the run itself confirms it, in the transaction of its first activity,
# so the API spends no commit of its own on the mark.
_STARTED = (
    "UPDATE approval_outbox SET delivered_at = now(), attempts = attempts + 1 WHERE request_id = %s "
    "AND kind = 'start' AND delivered_at IS NULL AND (payload->'input'->'first_step'->>'step_id')::bigint = %s"
)


async def started(sql: Sql, request_id: int, first_step_id: int) -> None:
    """The run started for `first_step_id` is running: its start was delivered, whoever delivered it."""
    await sql.run(_STARTED, (request_id, first_step_id))


async def cancel(sql: Sql, request_id: int) -> None:
    """Nothing left to start for this request (its submission was undone)."""
    await sql.run(
        "UPDATE approval_outbox SET delivered_at = now(), last_error = 'cancelled: the submission was undone' "
        "WHERE request_id = %s AND kind = 'start' AND delivered_at IS NULL",
        (request_id,),
    )


async def _send(engine: WorkflowEngine, message: Message) -> str | None:
    """Deliver one message; a note for the record (None: delivered as asked). EngineUnavailable: try again later."""
    if message.kind == START:
        started = await engine.start(
            message.name,
            _INPUTS[message.name].model_validate(message.payload["input"]),
            workflow_id=message.workflow_id,
            task_queue=engine.queues.approvals,
            attributes=message.payload["attributes"],
            on_running="replace" if message.payload["replace"] else "keep",
            metadata=_metadata_of(message.payload),
        )
        return None if started else "already running"
    try:
        await engine.signal(message.workflow_id, message.name, StepChanged.model_validate(message.payload))
    except WorkflowGone:
        return "the workflow had ended"  # nothing left to tell
    return None


async def deliver(sql: Sql, engine: WorkflowEngine, ids: list[int]) -> list[str]:
    """Deliver these messages now (the API, right after the commit that wrote them; `sql` records it); the workflow
    ids of those the engine could not take (the relay delivers them later)."""
    undelivered: list[str] = []
    for message in [Message(*values) for values in await sql.all(_BY_IDS, (ids,))] if ids else []:
        try:
            note = await _send(engine, message)
        except EngineUnavailable as error:
            await sql.run(_FAILED, (str(error)[:500], message.id))
            undelivered.append(message.workflow_id)
            continue
        await sql.run(_DELIVERED, (note, message.id))
    return undelivered


_UNDELIVERED_STARTS = (
    "SELECT id FROM approval_outbox WHERE request_id = %s AND kind = 'start' AND name <> %s AND delivered_at IS NULL"
)


async def deliver_follow_ups(sql: Sql, engine: WorkflowEngine, request_id: int) -> None:
    """Deliver now what a committed decision on `request_id` started besides its own workflow (an issued invoice's),
    so the invoice goes out without waiting for the relay (which delivers whatever this cannot)."""
    ids = [row[0] for row in await sql.all(_UNDELIVERED_STARTS, (request_id, APPROVAL_WORKFLOW))]
    if ids:
        await deliver(sql, engine, ids)


async def deliver_due(db: Database, engine: WorkflowEngine, *, grace: timedelta, batch: int = 50) -> int:
    """Deliver what is still undelivered after `grace` (the relay); how many were delivered. Each message under its
    row's lock, so a message is delivered once however many relays run."""
    delivered = 0
    async with db.transaction() as tx:
        for values in await tx.sql.all(_DUE, (grace, batch)):
            message = Message(*values)
            try:
                note = await _send(engine, message)
            except EngineUnavailable as error:
                await tx.sql.run(_FAILED, (str(error)[:500], message.id))
                break  # the engine is away: the rest wait for the next round
            await tx.sql.run(_DELIVERED, (note, message.id))
            delivered += 1
            log.info("outbox: delivered %s %s to %s late", message.kind, message.name, message.workflow_id)
    return delivered
