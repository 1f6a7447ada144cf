"""Revenue and expense entries: drafts, edits under optimistic locking, listing within one's visibility,
submission into an approval request, and the approval history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.authz import Authorizer
from core.settings import ApprovalSettings
from core.sql import columns, row_of, sql_of, width
from domain.approvals import service as approvals
from domain.approvals.service import StepTimers, Submission
from domain.approvals.store import pending_step_of
from domain.audit.service import AuditContext, diff, record
from domain.dashboard.aggregates import entry_status_changed
from domain.entries.schemas import (
    ApprovalHistory,
    EntryCreate,
    EntryFilters,
    EntryOut,
    EntryPage,
    EntrySort,
    EntryUpdate,
    HistoryEvent,
    HistoryStep,
    SortOrder,
)
from domain.errors import Forbidden, InvalidState, NotFound, PreconditionFailed, PreconditionRequired, ValidationFailed
from domain.models import AuditLog, Entry, EntryKind, EntryStatus, User
from domain.models.rows import EntryRow, RequestRow, StepRow
from domain.users.visibility import visibility_for

EDITABLE = frozenset({EntryStatus.DRAFT, EntryStatus.CHANGES_REQUESTED})
_AUDITED = ("amount", "currency", "category", "description", "entry_date", "source", "vendor", "status")
_PARTY = {EntryKind.REVENUE: "source", EntryKind.EXPENSE: "vendor"}


def _snapshot(entry: EntryRow) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in _AUDITED}


def _check_kind_fields(kind: EntryKind, fields: dict[str, Any]) -> None:
    other = "vendor" if kind == EntryKind.REVENUE else "source"
    if fields.get(other) is not None:
        raise ValidationFailed(f"{other} does not apply to {kind.value} entries; use {_PARTY[kind]}", field=other)


def _check_amount(settings: ApprovalSettings, fields: dict[str, Any]) -> None:
    currency = fields.get("currency")
    if currency is not None and currency != settings.base_currency:
        raise ValidationFailed(
            f"only the base currency {settings.base_currency} is accepted for now",
            field="currency",
            base_currency=settings.base_currency,
        )
    amount = fields.get("amount")
    if amount is not None and amount > settings.max_entry_amount:
        raise ValidationFailed(
            f"amount must not exceed {settings.max_entry_amount}",
            field="amount",
            maximum=str(settings.max_entry_amount),
        )


async def create_entry(
    session: AsyncSession,
    settings: ApprovalSettings,
    owner: User,
    kind: EntryKind,
    body: EntryCreate,
    context: AuditContext,
) -> EntryRow:
    fields = dict(body)  # raw values (model_dump would turn money into strings)
    if fields.get("currency") is None:
        fields["currency"] = settings.base_currency
    _check_kind_fields(kind, fields)
    _check_amount(settings, fields)
    entry = await (await sql_of(session)).written(
        EntryRow,
        _INSERT,
        (
            kind.value,
            owner.id,
            fields["amount"],
            fields["currency"],
            fields["category"],
            fields.get("description") or "",
            fields["entry_date"],
            fields.get("source"),
            fields.get("vendor"),
        ),
    )
    await entry_status_changed(session, entry, None)
    await record(session, context, "entry.created", "entry", entry.id, diff({}, _snapshot(entry)))
    return entry


_INSERT = (
    "INSERT INTO entries (kind, owner_id, amount, currency, category, description, entry_date, source, vendor, "
    f"status, version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'draft', 1) RETURNING {columns(EntryRow)}"
)
_ENTRY = f"SELECT {columns(EntryRow, 'e')} FROM entries e WHERE e.id = %s AND e.kind = %s"
_ENTRY_LOCKED = _ENTRY + " FOR UPDATE"


async def reread(session: AsyncSession, entry: EntryRow) -> EntryRow:
    """The entry as committed now."""
    values = await (await sql_of(session)).one(_ENTRY, (entry.id, entry.kind))
    if values is None:
        raise NotFound(f"{entry.kind} entry not found", id=entry.id)
    return EntryRow(*values)


async def get_visible(
    session: AsyncSession, authorizer: Authorizer, viewer: User, kind: EntryKind, entry_id: int, *, lock: bool = False
) -> EntryRow:
    """An entry of this kind that the viewer may see; anything else (another kind, another team) is 404."""
    values = await (await sql_of(session)).one(_ENTRY_LOCKED if lock else _ENTRY, (entry_id, kind.value))
    if values is None:
        raise NotFound(f"{kind.value} entry not found", id=entry_id)
    entry = EntryRow(*values)
    await _check_visible(session, authorizer, viewer, entry)
    return entry


_FOR_DECISION = (
    f"SELECT {columns(EntryRow, 'e')}, {columns(RequestRow, 'r')}, {columns(StepRow, 's')} FROM entries e "
    "LEFT JOIN approval_requests r ON r.id = e.approval_request_id "
    f"LEFT JOIN LATERAL ({pending_step_of('e.approval_request_id')}) s ON true WHERE e.id = %s AND e.kind = %s"
)


async def get_for_decision(
    session: AsyncSession, authorizer: Authorizer, viewer: User, kind: EntryKind, entry_id: int
) -> tuple[EntryRow, RequestRow | None, StepRow | None]:
    """An entry the viewer may see (as `get_visible`), with its approval request and pending step, in one read.
    The pending step's own approver or delegate sees the entry by that alone (what `_decides_on` would find), so a
    decision by them costs no visibility query."""
    values = await (await sql_of(session)).one(_FOR_DECISION, (entry_id, kind.value))
    if values is None:
        raise NotFound(f"{kind.value} entry not found", id=entry_id)
    entry = EntryRow(*values[: width(EntryRow)])
    request = row_of(RequestRow, values, width(EntryRow))
    step = row_of(StepRow, values, width(EntryRow) + width(RequestRow))
    if step is None or viewer.id not in (step.approver_id, step.delegate_id):
        await _check_visible(session, authorizer, viewer, entry)
    return entry, request, step


async def _check_visible(session: AsyncSession, authorizer: Authorizer, viewer: User, entry: EntryRow) -> None:
    visibility = await visibility_for(session, authorizer, viewer)
    if not visibility.can_see(entry.owner_id) and not await _decides_on(session, entry, viewer):
        raise NotFound(f"{entry.kind} entry not found", id=entry.id)


async def _decides_on(session: AsyncSession, entry: EntryRow, viewer: User) -> bool:
    """Approvers (and delegates) outside the owner's tree still see what they are asked to decide."""
    if entry.approval_request_id is None:
        return False
    return await approvals.is_participant(session, entry.approval_request_id, viewer.id, datetime.now().astimezone())


LIST_COUNT_CAP = 1_000


def _filtered(statement: Select[Any], filters: EntryFilters) -> Select[Any]:
    if filters.status is not None:
        statement = statement.where(Entry.status == filters.status.value)
    if filters.category is not None:
        statement = statement.where(func.lower(Entry.category) == filters.category.strip().lower())
    if filters.owner_id is not None:
        statement = statement.where(Entry.owner_id == filters.owner_id)
    if filters.date_from is not None:
        statement = statement.where(Entry.entry_date >= filters.date_from)
    if filters.date_to is not None:
        statement = statement.where(Entry.entry_date <= filters.date_to)
    if filters.amount_min is not None:
        statement = statement.where(Entry.amount >= filters.amount_min)
    if filters.amount_max is not None:
        statement = statement.where(Entry.amount <= filters.amount_max)
    return statement


async def list_entries(
    session: AsyncSession, authorizer: Authorizer, viewer: User, kind: EntryKind, filters: EntryFilters
) -> EntryPage:
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise ValidationFailed("date_from must not be after date_to")
    if filters.amount_min is not None and filters.amount_max is not None and filters.amount_min > filters.amount_max:
        raise ValidationFailed("amount_min must not exceed amount_max")
    visibility = await visibility_for(session, authorizer, viewer)
    conditions = [Entry.kind == kind.value, visibility.owner_filter(Entry.__table__.c.owner_id)]
    # Counting every match of a broad filter over a million rows costs more than the page itself: count up to a cap.
    matching = _filtered(select(Entry.id).where(*conditions), filters).limit(LIST_COUNT_CAP + 1).subquery()
    counted = select(func.count()).select_from(matching)
    column = Entry.entry_date if filters.sort == EntrySort.DATE else Entry.amount
    ordering = [column.desc(), Entry.id.desc()] if filters.order == SortOrder.DESC else [column.asc(), Entry.id.asc()]
    # The page's ids first, from the list indexes alone (they cover every filter column: no heap fetch for the rows
    # a filter skips), then only those rows, each carrying the capped count: one round trip for page and total.
    page = (
        _filtered(select(Entry.id).where(*conditions), filters)
        .order_by(*ordering)
        .limit(filters.limit)
        .offset(filters.offset)
        .subquery()
    )
    rows = (
        await session.execute(
            select(Entry, counted.scalar_subquery().label("total"))
            .join(page, Entry.id == page.c.id)
            .order_by(*ordering)
        )
    ).all()
    if rows:
        total = int(rows[0].total)
    elif filters.offset == 0:
        total = 0  # an empty first page: nothing matches
    else:
        total = int(await session.scalar(counted) or 0)  # a page past the end still reports how many there are
    return EntryPage(
        items=[EntryOut.model_validate(row.Entry) for row in rows],
        total=min(total, LIST_COUNT_CAP),
        total_exact=total <= LIST_COUNT_CAP,
        limit=filters.limit,
        offset=filters.offset,
    )


def parse_if_match(value: str | None) -> int:
    """The entry version from If-Match (`3`, `"3"` or `W/"3"`). Missing is 428, unreadable 412."""
    if value is None or not value.strip():
        raise PreconditionRequired("send If-Match with the entry's version (its ETag) to change it")
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit():
        raise PreconditionFailed("If-Match must be the entry's version, as given in its ETag")
    return int(text)


def _owned(entry: EntryRow, user: User, verb: str) -> None:
    if entry.owner_id != user.id:
        raise Forbidden(f"only the entry's owner may {verb} it")


async def update_entry(
    session: AsyncSession,
    settings: ApprovalSettings,
    entry: EntryRow,
    user: User,
    body: EntryUpdate,
    if_match: str | None,
    context: AuditContext,
) -> EntryRow:
    """Change the fields sent (the caller holds the entry's row lock). The version moves on with any change."""
    _owned(entry, user, "change")
    version = parse_if_match(if_match)
    if entry.status not in EDITABLE:
        raise InvalidState(f"only a draft or an entry returned for changes can be edited; this one is {entry.status}")
    if version != entry.version:
        raise PreconditionFailed(
            "the entry changed since you read it; read it again", current_version=entry.version, sent=version
        )
    fields = {name: getattr(body, name) for name in body.model_fields_set}
    for name in ("amount", "currency", "category", "entry_date", "description"):
        if name in fields and fields[name] is None:
            raise ValidationFailed(f"{name} cannot be empty", field=name)
    _check_kind_fields(EntryKind(entry.kind), fields)
    _check_amount(settings, fields)
    changed = {name: value for name, value in fields.items() if getattr(entry, name) != value}
    if not changed:
        return entry  # nothing to write: the version stays
    assignments = ", ".join(f"{_EDITABLE_COLUMNS[name]} = %s" for name in changed)
    updated = await (await sql_of(session)).written(
        EntryRow,
        f"UPDATE entries SET {assignments}, version = version + 1, updated_at = now() WHERE id = %s "
        f"RETURNING {columns(EntryRow)}",
        (*changed.values(), entry.id),
    )
    await record(session, context, "entry.updated", "entry", entry.id, diff(_snapshot(entry), _snapshot(updated)))
    return updated


# The columns an edit may set, by field name (the SQL names only these, whatever a body holds).
_EDITABLE_COLUMNS = {
    name: name for name in ("amount", "currency", "category", "description", "entry_date", "source", "vendor")
}


async def delete_entry(session: AsyncSession, entry: EntryRow, user: User, context: AuditContext) -> None:
    _owned(entry, user, "delete")
    if entry.status != EntryStatus.DRAFT:
        raise InvalidState(f"only a draft can be deleted; this entry is {entry.status}")
    await entry_status_changed(session, entry, EntryStatus.DRAFT)
    await (await sql_of(session)).run("DELETE FROM entries WHERE id = %s", (entry.id,))
    # The audit row comes last, as in every other transaction: its chain lock is always the last one taken.
    await record(session, context, "entry.deleted", "entry", entry.id, diff(_snapshot(entry), {}))


async def submit_entry(
    session: AsyncSession,
    authorizer: Authorizer,
    settings: ApprovalSettings,
    entry: EntryRow,
    user: User,
    workflow_id_for: Any,
    now: datetime,
    context: AuditContext,
) -> Submission:
    """Pin the chain and policy version and make the entry pending (the caller commits, then starts the workflow)."""
    _owned(entry, user, "submit")
    if entry.status != EntryStatus.DRAFT:
        raise InvalidState(f"only a draft can be submitted; this entry is {entry.status}", status=entry.status)
    if entry.currency != settings.base_currency:
        raise ValidationFailed(f"only the base currency {settings.base_currency} is accepted for now")
    return await approvals.open_request(
        session,
        subject_kind=entry.kind,
        entry=entry,
        requester=user,  # the owner: only they submit
        title=entry.approval_title,
        justification=entry.description,
        amount=entry.amount,
        limits=authorizer.limits_snapshot(),
        policy_version=authorizer.version,
        workflow_id_for=workflow_id_for,
        now=now,
        timers=StepTimers(settings.reminder_hours * 3600, settings.escalation_hours * 3600),
        context=context,
    )


# --- history ----------------------------------------------------------------------------------------


async def _names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(select(User.id, User.full_name).where(User.id.in_(ids)))
    return {user_id: name for user_id, name in rows.tuples()}


def _step_summary(step: StepRow, names: dict[int, str]) -> str:
    approver = names.get(step.approver_id, f"user {step.approver_id}")
    if step.status == "pending":
        target = f"{names.get(step.delegate_id, '')} on behalf of {approver}" if step.delegate_id else approver
        return f"waiting on {target}"
    if step.decided_by_id is None:
        return f"{step.status} (was waiting on {approver})"
    decider = names.get(step.decided_by_id, f"user {step.decided_by_id}")
    verb = step.status.replace("_", " ")
    if step.decided_by_id != step.approver_id:
        return f"{verb} by {decider} on behalf of {approver}"
    return f"{verb} by {decider}"


async def approval_history(
    session: AsyncSession, request_id: int | None, resource_type: str, resource_id: int, workflow_url: str | None
) -> ApprovalHistory:
    """Every step and decision (actor, time, comment), the audit trail of the subject, and the workflow link."""
    request = await approvals.get_request(session, request_id) if request_id is not None else None
    steps = await approvals.steps_of(session, request_id) if request_id is not None else []
    audit_rows = list(
        await session.scalars(
            select(AuditLog)
            .where(AuditLog.resource_type == resource_type, AuditLog.resource_id == str(resource_id))
            .order_by(AuditLog.id)
        )
    )
    ids = {row.actor_id for row in audit_rows if row.actor_id is not None}
    for step in steps:
        ids |= {i for i in (step.approver_id, step.delegate_id, step.decided_by_id) if i is not None}
    names = await _names(session, ids)
    history_steps = [
        HistoryStep(
            sequence=step.sequence,
            round=step.round,
            level=step.level,
            status=step.status,
            approver_id=step.approver_id,
            approver_name=names.get(step.approver_id),
            delegate_id=step.delegate_id,
            decided_by_id=step.decided_by_id,
            decided_by_name=names.get(step.decided_by_id) if step.decided_by_id else None,
            on_behalf_of_id=step.approver_id
            if step.decided_by_id is not None and step.decided_by_id != step.approver_id
            else None,
            comment=step.comment,
            rule=step.rule,
            opened_at=step.created_at,
            remind_at=step.remind_at,
            escalate_at=step.escalate_at,
            decided_at=step.decided_at,
            summary=_step_summary(step, names),
        )
        for step in steps
    ]
    events = []
    for row in audit_rows:
        changes = row.changes or {}
        actor = names.get(row.actor_id) if row.actor_id else None
        summary = row.action
        if changes.get("on_behalf_of") is not None:
            summary += f" by {actor} on behalf of {names.get(int(changes['on_behalf_of']), changes['on_behalf_of'])}"
        elif actor:
            summary += f" by {actor}"
        step_no = changes.get("step")
        events.append(
            HistoryEvent(
                at=row.occurred_at,
                action=row.action,
                actor_id=row.actor_id,
                actor_name=actor,
                summary=summary,
                comment=changes.get("comment") or changes.get("reason"),
                step=step_no if isinstance(step_no, int) else None,
            )
        )
    return ApprovalHistory(
        request_id=request.id if request else None,
        status=request.status if request else "draft",
        round=request.round if request else None,
        workflow_id=request.workflow_id if request else None,
        workflow_url=workflow_url if request else None,
        policy_version=request.policy_version if request else None,
        chain=list(request.chain) if request else [],
        steps=history_steps,
        events=events,
    )
