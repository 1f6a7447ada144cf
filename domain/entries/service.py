"""Revenue and expense entries: drafts, edits under optimistic locking, and reading within one's visibility.

Submitting and deciding are the approval commands' (domain/approvals/commands.py); this module holds the rules of
an entry itself: what it may hold, who may see and change it, and when.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from core.authz import Authorizer
from core.db import Tx
from core.sql import Sql
from domain import delta_sync
from domain.approvals import repository as requests
from domain.attachments import repository as attachments
from domain.audit import queries as audit_queries
from domain.audit.service import AuditContext, diff, record
from domain.budgets import checks as budget_checks
from domain.duplicates import queries as duplicates
from domain.entries import repository as entries
from domain.entries.repository import ListQuery, NewEntry
from domain.entries.schemas import EntryCreate, EntryFilters, EntryOut, EntryPage, EntrySort, EntryUpdate, SortOrder
from domain.errors import Forbidden, InvalidState, NotFound, PreconditionFailed, PreconditionRequired, ValidationFailed
from domain.fx import rates as fx_rates
from domain.fx.rates import Terms
from domain.idempotency.once import Replayed, once
from domain.models import EntryKind, EntryStatus, User
from domain.models.rows import EntryRow
from domain.money import fits, is_currency, minor_units, plain_str
from domain.pagination import Cursor, Pager
from domain.users.visibility import visibility_for

EDITABLE = frozenset({EntryStatus.DRAFT, EntryStatus.CHANGES_REQUESTED})
_AUDITED = ("amount", "currency", "category", "description", "entry_date", "source", "vendor", "status")
_PARTY = {EntryKind.REVENUE: "source", EntryKind.EXPENSE: "vendor"}
PATHS = {EntryKind.REVENUE: "revenue", EntryKind.EXPENSE: "expenses"}  # the collections of the API


def noun(kind: EntryKind | str) -> str:
    return "revenue entry" if kind == EntryKind.REVENUE else "expense"


def _snapshot(entry: EntryRow) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in _AUDITED}


def _check_kind_fields(kind: EntryKind, fields: dict[str, Any]) -> None:
    other = "vendor" if kind == EntryKind.REVENUE else "source"
    if fields.get(other) is not None:
        raise ValidationFailed(f"{other} does not apply to {kind.value} entries; use {_PARTY[kind]}", field=other)


def _check_amount(terms: Terms, fields: dict[str, Any], entry: EntryRow | None = None) -> None:
    """The currency is ISO 4217's and the amount fits its minor units (JPY none, BHD three); an amount in the base
    currency is capped here, one in another currency at submit, on its base amount (domain/fx/rates.lock)."""
    currency = fields.get("currency") or (entry.currency if entry is not None else terms.base)
    amount = fields.get("amount", entry.amount if entry is not None else None)
    if "currency" in fields and not is_currency(currency):
        raise ValidationFailed(f"{currency} is not an ISO 4217 currency with minor units", field="currency")
    if amount is None:
        return
    if not fits(amount, currency):
        units = minor_units(currency)
        raise ValidationFailed(
            f"{currency} amounts have {units} decimal place{'' if units == 1 else 's'}; {plain_str(amount)} has more",
            field="amount",
            currency=currency,
            minor_units=units,
        )
    if currency == terms.base and amount > terms.max_base_amount:
        raise ValidationFailed(
            f"amount must not exceed {terms.max_base_amount}", field="amount", maximum=str(terms.max_base_amount)
        )


def owned(entry: EntryRow, user: User, verb: str) -> None:
    """Only the entry's owner may `verb` it (submit, change, withdraw, delete)."""
    if entry.owner_id != user.id:
        raise Forbidden(f"only the entry's owner may {verb} it")


async def create_entry(
    tx: Tx, terms: Terms, owner: User, kind: EntryKind, body: EntryCreate, context: AuditContext
) -> EntryRow:
    fields = dict(body)  # raw values (model_dump would turn money into strings)
    if fields.get("currency") is None:
        fields["currency"] = terms.base
    _check_kind_fields(kind, fields)
    _check_amount(terms, fields)
    new = NewEntry(
        kind=kind.value,
        owner_id=owner.id,
        amount=fields["amount"],
        currency=fields["currency"],
        category=fields["category"],
        description=fields.get("description") or "",
        entry_date=fields["entry_date"],
        source=fields.get("source"),
        vendor=fields.get("vendor"),
    )
    entry = await entries.insert(tx.sql, new)
    await record(tx.sql, context, "entry.created", "entry", entry.id, diff({}, _snapshot(entry)))
    return entry


async def create(
    tx: Tx,
    terms: Terms,
    owner: User,
    kind: EntryKind,
    body: EntryCreate,
    key: str | None,
    context: AuditContext,
) -> EntryOut | Replayed:
    """A new draft, once per Idempotency-Key."""
    scope = f"POST /{PATHS[kind]}"
    return await once(tx, owner.id, key, scope, body.model_dump(mode="json"), 201, _create_out, tx, terms, owner,
                      kind, body, context)  # fmt: skip


async def _create_out(
    tx: Tx, terms: Terms, owner: User, kind: EntryKind, body: EntryCreate, context: AuditContext
) -> EntryOut:
    row = await create_entry(tx, terms, owner, kind, body, context)
    out = (await present(tx.sql, terms, [row]))[0]
    if kind == EntryKind.EXPENSE:
        # Told early, not refused: what the budgets this draft falls in would say if it were submitted now.
        base = row.amount if row.currency == terms.base else out.indicative_base_amount
        out.budget_check = await budget_checks.preview(tx.sql, row, base, terms.base)
    return out


async def present(sql: Sql, terms: Terms, rows: list[EntryRow]) -> list[EntryOut]:
    """Entries as the API shows them. A draft in another currency shows an indicative base amount: what a submit
    would lock now (one rates query for the lot; None when no rate is fresh enough)."""
    asked = {(row.currency, terms.base, row.entry_date) for row in rows if row.status == EntryStatus.DRAFT}
    rates = await fx_rates.rates_on(sql, asked, terms.max_stale_days) if asked else {}
    out = []
    for row in rows:
        entry = EntryOut.model_validate(row)
        rate = rates.get((row.currency, terms.base, row.entry_date)) if row.status == EntryStatus.DRAFT else None
        if rate is not None:
            entry.indicative_base_amount = rate.convert(row.amount)
            entry.indicative_rate = rate.rate
        out.append(entry)
    return out


async def present_one(sql: Sql, terms: Terms, entry: EntryRow) -> EntryOut:
    """One entry as its own page shows it: an expense with its possible duplicates (one more read, so lists leave
    them out)."""
    out = (await present(sql, terms, [entry]))[0]
    if entry.kind == EntryKind.EXPENSE:
        out.possible_duplicates = await duplicates.of_entry(sql, entry.id)
    return out


async def visible_entry(
    tx: Tx, authorizer: Authorizer, viewer: User, kind: EntryKind, entry_id: int, *, lock: bool = False
) -> EntryRow:
    """An entry of this kind that the viewer may see; anything else (another kind, another team) is 404."""
    entry = await entries.get(tx.sql, entry_id, kind.value, lock=lock)
    if entry is None:
        raise NotFound(f"{kind.value} entry not found", id=entry_id)
    await check_visible(tx, authorizer, viewer, entry)
    return entry


async def check_visible(tx: Tx, authorizer: Authorizer, viewer: User, entry: EntryRow) -> None:
    """404 unless the viewer sees the owner, or is asked (or was asked) to decide on the entry: approvers and their
    delegates outside the owner's tree still see what they are asked to decide."""
    visibility = await visibility_for(tx.sql, authorizer, viewer)
    if visibility.can_see(entry.owner_id):
        return
    if entry.approval_request_id is not None and await requests.is_participant(
        tx.sql, entry.approval_request_id, viewer.id, datetime.now(UTC)
    ):
        return
    raise NotFound(f"{entry.kind} entry not found", id=entry.id)


async def list_entries(
    tx: Tx,
    authorizer: Authorizer,
    terms: Terms,
    viewer: User,
    kind: EntryKind,
    filters: EntryFilters,
    cursor: Cursor | None = None,
) -> EntryPage:
    """A page of the entries the viewer sees: by offset, or after a cursor (keyset); with `updated_since`, only those
    changed since (a delta sync), with the drafts deleted since and the time to send next."""
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise ValidationFailed("date_from must not be after date_to")
    if filters.amount_min is not None and filters.amount_max is not None and filters.amount_min > filters.amount_max:
        raise ValidationFailed("amount_min must not exceed amount_max")
    pager = Pager(filters.limit, filters.offset, cursor)
    visibility = await visibility_for(tx.sql, authorizer, viewer)
    # Taken before the rows are read (domain/delta_sync.py): a change committed meanwhile is in the next sync.
    synced = await delta_sync.watermark(tx.sql) if filters.updated_since is not None else None
    query = ListQuery(
        kind=kind.value,
        owners=visibility.owner_list(),
        status=filters.status,
        category=filters.category,
        owner_id=filters.owner_id,
        date_from=filters.date_from,
        date_to=filters.date_to,
        amount_min=filters.amount_min,
        amount_max=filters.amount_max,
        sort_column="entry_date" if filters.sort == EntrySort.DATE else "amount",
        descending=filters.order == SortOrder.DESC,
        limit=pager.fetch,
        offset=filters.offset,
        updated_since=filters.updated_since,
    )
    query = replace(query, after=pager.key(query.keyset))
    rows, total = await entries.page(tx.sql, query)
    rows, next_cursor = pager.cut(query.keyset, rows, lambda row: entries.sort_key(row, query))
    deleted = None
    if filters.updated_since is not None:
        # Only the owner deletes (a draft): the deletions of the owners the viewer sees.
        found = await audit_queries.deleted_since(tx.sql, "entry.deleted", filters.updated_since, query.owners)
        deleted = [int(entry_id) for entry_id in found]
    return EntryPage(
        items=await present(tx.sql, terms, rows),
        total=min(total, entries.LIST_COUNT_CAP),
        total_exact=total <= entries.LIST_COUNT_CAP,
        limit=filters.limit,
        offset=pager.page_offset,
        next_cursor=next_cursor,
        next_updated_since=synced,
        deleted_ids=deleted,
    )


def parse_if_match(value: str | None) -> int:
    """The entry version from If-Match (`3`, `"3"` or `W/"3"`, or a read's ETag `"3.<digest>"`: the version before
    the dot, api/etags.py). Missing is 428, unreadable 412."""
    if value is None or not value.strip():
        raise PreconditionRequired("send If-Match with the entry's version (its ETag) to change it")
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"').partition(".")[0]
    if not text.isdigit():
        raise PreconditionFailed("If-Match must be the entry's version, as given in its ETag")
    return int(text)


async def update_entry(
    tx: Tx,
    authorizer: Authorizer,
    terms: Terms,
    user: User,
    kind: EntryKind,
    entry_id: int,
    body: EntryUpdate,
    if_match: str | None,
    context: AuditContext,
) -> EntryRow:
    """Change the fields sent, under the entry's row lock. The version moves on with any change."""
    entry = await visible_entry(tx, authorizer, user, kind, entry_id, lock=True)
    owned(entry, user, "change")
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
    _check_kind_fields(kind, fields)
    _check_amount(terms, fields, entry)
    changed = {name: value for name, value in fields.items() if getattr(entry, name) != value}
    if not changed:
        return entry  # nothing to write: the version stays
    updated = await entries.update_fields(tx.sql, entry.id, changed)
    await record(tx.sql, context, "entry.updated", "entry", entry.id, diff(_snapshot(entry), _snapshot(updated)))
    return updated


async def delete_entry(
    tx: Tx, authorizer: Authorizer, user: User, kind: EntryKind, entry_id: int, context: AuditContext
) -> list[str]:
    """Delete a draft; answers the storage keys of its receipts, whose rows go with it: the caller deletes the
    objects once this has committed."""
    entry = await visible_entry(tx, authorizer, user, kind, entry_id, lock=True)
    owned(entry, user, "delete")
    if entry.status != EntryStatus.DRAFT:
        raise InvalidState(f"only a draft can be deleted; this entry is {entry.status}")
    files = await attachments.storage_keys_of(tx.sql, entry.id)
    await entries.delete(tx.sql, entry.id)
    # The audit row comes last, as in every other transaction: its chain lock is always the last one taken.
    await record(tx.sql, context, "entry.deleted", "entry", entry.id, diff(_snapshot(entry), {}))
    return files


def check_submittable(entry: EntryRow, user: User) -> None:
    """Only the owner submits, only a draft (its rate is locked by the submit: domain/fx/rates.lock)."""
    owned(entry, user, "submit")
    if entry.status != EntryStatus.DRAFT:
        raise InvalidState(f"only a draft can be submitted; this entry is {entry.status}", status=entry.status)
