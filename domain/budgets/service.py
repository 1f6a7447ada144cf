"""Budgets as people keep them: create, revise (a new version each time, the old ones readable), read within one's
visibility, and the budget side of an expense as its requester and approvers see it.

Who sees a budget: whoever may read every budget (`budget read_all`: accountants and admins), its owner, and a
manager whose subtree holds the budget's team. Anything else is 404, so a budget's existence does not leak.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from core.authz import Authorizer
from core.db import Tx
from core.sql import Sql
from domain.audit.service import AuditContext, diff, record
from domain.budgets import thresholds
from domain.budgets.periods import grid
from domain.budgets.progress import share_percent
from domain.budgets.schemas import (
    BudgetCreate,
    BudgetOut,
    BudgetPage,
    BudgetPeriodOut,
    BudgetRevision,
    BudgetVersionOut,
)
from domain.entries.service import parse_if_match
from domain.errors import InvalidState, NotFound, PreconditionFailed, ValidationFailed
from domain.models import User
from domain.money import fits, in_minor_units, money_str, plain_str
from domain.pagination import Cursor, Keyset, Pager
from domain.users.visibility import visibility_for

RESOURCE = "budget"
_COLUMNS = (
    "b.id, b.name, b.team_manager_id, b.category, b.period_kind, b.starts_on, b.policy, b.thresholds, b.owner_id, "
    "b.version, b.created_by_id, b.created_at, b.updated_at, b.currency"
)


@dataclass(frozen=True)
class Scope:
    """The budgets a viewer may see: all (`everyone`), else those they own or whose team is in `team_ids`."""

    viewer_id: int
    everyone: bool
    team_ids: tuple[int, ...]

    def where(self, alias: str = "b") -> tuple[str, tuple[Any, ...]]:
        """A WHERE condition and its parameters."""
        if self.everyone:
            return "TRUE", ()
        return f"({alias}.owner_id = %s OR {alias}.team_manager_id = ANY(%s))", (self.viewer_id, list(self.team_ids))


async def scope_for(
    sql: Sql, authorizer: Authorizer, viewer: User, visible_owners: Collection[int] | None = None
) -> Scope:
    """`visible_owners`: the viewer and their subtree (the `user read_team` rule) when the caller has read them
    already (the dashboard): no second walk of the manager tree."""
    if authorizer.allows(viewer.role, RESOURCE, "read_all"):
        return Scope(viewer.id, True, ())
    if visible_owners is None:
        visible_owners = (await visibility_for(sql, authorizer, viewer, RESOURCE)).owner_ids
    return Scope(viewer.id, False, tuple(sorted(visible_owners)))


# --- reading ----------------------------------------------------------------------------------------------------


async def _periods(sql: Sql, budget_ids: list[int]) -> dict[int, list[tuple[Any, ...]]]:
    rows = await sql.all(
        "SELECT budget_id, starts_on, ends_on, amount, committed, actual FROM budget_periods "
        "WHERE budget_id = ANY(%s) ORDER BY budget_id, starts_on",
        (budget_ids,),
    )
    found: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows:
        found.setdefault(row[0], []).append(row[1:])
    return found


def _out(row: tuple[Any, ...], periods: list[tuple[Any, ...]]) -> BudgetOut:
    kind, currency = row[4], row[13]
    labels = {period.starts_on: period.label(kind) for period in grid(kind, row[5], len(periods))}

    def money(value: Decimal) -> Decimal:
        return in_minor_units(value, currency)

    shown = [
        BudgetPeriodOut(
            starts_on=starts_on,
            ends_on=ends_on,
            label=labels.get(starts_on, starts_on.isoformat()),
            amount=money(amount),
            committed=money(committed),
            actual=money(actual),
            available=money(amount - committed - actual),
            used_percent=float(share_percent(committed + actual, amount)),
        )
        for starts_on, ends_on, amount, committed, actual in periods
    ]
    return BudgetOut(
        id=row[0], name=row[1], team_manager_id=row[2], category=row[3], period=kind, starts_on=row[5],
        policy=row[6], thresholds=list(row[7]), owner_id=row[8], version=row[9], currency=currency,
        created_by_id=row[10], created_at=row[11], updated_at=row[12], periods=shown,
    )  # fmt: skip


async def _read(sql: Sql, budget_id: int, scope: Scope, *, lock: bool = False) -> tuple[Any, ...]:
    condition, params = scope.where()
    row = await sql.one(
        f"SELECT {_COLUMNS} FROM budgets b WHERE b.id = %s AND {condition}" + (" FOR UPDATE" if lock else ""),
        (budget_id, *params),
    )
    if row is None:
        raise NotFound("budget not found", id=budget_id)
    return row


async def get(tx: Tx, authorizer: Authorizer, viewer: User, budget_id: int) -> BudgetOut:
    row = await _read(tx.sql, budget_id, await scope_for(tx.sql, authorizer, viewer))
    return _out(row, (await _periods(tx.sql, [budget_id])).get(budget_id, []))


# Oldest first, by id (the primary key serves a cursor's `b.id > %s` as a range).
KEYSET = Keyset("budgets", ("b.id",), (int,), descending=False)


async def list_budgets(
    tx: Tx, authorizer: Authorizer, viewer: User, limit: int, offset: int, cursor: Cursor | None = None
) -> BudgetPage:
    pager = Pager(limit, offset, cursor)
    scope = await scope_for(tx.sql, authorizer, viewer)
    condition, params = scope.where()
    total = int(await tx.sql.scalar(f"SELECT count(*) FROM budgets b WHERE {condition}", params))
    after = pager.key(KEYSET)
    if after is not None:
        keyset, values = KEYSET.after_positional(after)
        condition, params = f"{condition} AND {keyset}", (*params, *values)
    rows = await tx.sql.all(
        f"SELECT {_COLUMNS} FROM budgets b WHERE {condition} ORDER BY {KEYSET.order_by()} LIMIT %s OFFSET %s",
        (*params, pager.fetch, offset),
    )
    rows, next_cursor = pager.cut(KEYSET, rows, lambda row: (row[0],))
    periods = await _periods(tx.sql, [row[0] for row in rows])
    items = [_out(row, periods.get(row[0], [])) for row in rows]
    return BudgetPage(items=items, total=total, limit=limit, offset=pager.page_offset, next_cursor=next_cursor)


async def versions(tx: Tx, authorizer: Authorizer, viewer: User, budget_id: int) -> list[BudgetVersionOut]:
    await _read(tx.sql, budget_id, await scope_for(tx.sql, authorizer, viewer))
    rows = await tx.sql.all(
        "SELECT budget_id, version, created_by_id, created_at, snapshot FROM budget_versions WHERE budget_id = %s "
        "ORDER BY version",
        (budget_id,),
    )
    return [
        BudgetVersionOut(budget_id=r[0], version=r[1], created_by_id=r[2], created_at=r[3], budget=r[4]) for r in rows
    ]


def _below_use(starts_on: date, committed: Decimal, actual: Decimal, currency: str) -> InvalidState:
    return InvalidState(
        f"the period from {starts_on.isoformat()} has {money_str(committed + actual, currency)} {currency} "
        "committed or spent already; its amount cannot be less",
        period_start=starts_on.isoformat(),
        committed=plain_str(committed),
        actual=plain_str(actual),
    )


# --- writing ----------------------------------------------------------------------------------------------------


async def _user_exists(sql: Sql, user_id: int, field: str) -> None:
    if not await sql.scalar("SELECT is_active FROM users WHERE id = %s", (user_id,)):
        raise ValidationFailed(f"{field}: no active user {user_id}", field=field)


def _check_amounts(amounts: list[Decimal], currency: str) -> None:
    for index, amount in enumerate(amounts):
        if not fits(amount, currency):
            raise ValidationFailed(
                f"amounts[{index}]: {amount} has more decimal places than {currency} allows", field="amounts"
            )


def _snapshot(row: tuple[Any, ...], amounts: list[Decimal]) -> dict[str, Any]:
    return {
        "name": row[1],
        "team_manager_id": row[2],
        "category": row[3],
        "period": row[4],
        "starts_on": row[5].isoformat(),
        "policy": row[6],
        "thresholds": list(row[7]),
        "owner_id": row[8],
        "amounts": [money_str(amount, row[13]) for amount in amounts],
    }


async def _save_version(sql: Sql, row: tuple[Any, ...], amounts: list[Decimal], user: User) -> dict[str, Any]:
    snapshot = _snapshot(row, amounts)
    await sql.run(
        "INSERT INTO budget_versions (budget_id, version, snapshot, created_by_id) VALUES (%s, %s, %s, %s)",
        (row[0], row[9], Jsonb(snapshot), user.id),
    )
    return snapshot


async def create(tx: Tx, currency: str, user: User, body: BudgetCreate, context: AuditContext) -> BudgetOut:
    sql = tx.sql
    _check_amounts(body.amounts, currency)
    if body.team_manager_id is not None:
        await _user_exists(sql, body.team_manager_id, "team_manager_id")
    owner_id = body.owner_id or body.team_manager_id or user.id
    await _user_exists(sql, owner_id, "owner_id")
    row = await sql.one(
        "INSERT INTO budgets (name, team_manager_id, category, period_kind, starts_on, policy, thresholds, owner_id, "
        "created_by_id, currency) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING "
        + _COLUMNS.replace("b.", ""),
        (body.name, body.team_manager_id, body.category, body.period, body.starts_on, body.policy, body.thresholds,
         owner_id, user.id, currency),
    )  # fmt: skip
    assert row is not None
    for period, amount in zip(grid(body.period, body.starts_on, len(body.amounts)), body.amounts, strict=True):
        await sql.run(
            "INSERT INTO budget_periods (budget_id, starts_on, ends_on, amount) VALUES (%s, %s, %s, %s)",
            (row[0], period.starts_on, period.ends_on, amount),
        )
    snapshot = await _save_version(sql, row, body.amounts, user)
    await record(sql, context, "budget.created", RESOURCE, row[0], {"version": 1, **snapshot})
    return _out(row, (await _periods(sql, [row[0]]))[row[0]])


async def revise(
    tx: Tx,
    authorizer: Authorizer,
    user: User,
    budget_id: int,
    body: BudgetRevision,
    if_match: str | None,
    context: AuditContext,
) -> BudgetOut:
    """A new version, under the budget's lock. No period may end up below what is already committed and spent in it
    (409, naming the period): checked as read, and again as each period is written, in the statement that takes its
    row lock, after the audit row (the order domain/budgets/ledger.py keeps). Thresholds are checked again at once (a
    lower amount can cross one)."""
    sql = tx.sql
    row = await _read(sql, budget_id, await scope_for(sql, authorizer, user), lock=True)
    currency = row[13]
    sent = parse_if_match(if_match)
    if sent != row[9]:
        raise PreconditionFailed(
            "the budget changed since you read it; read it again", current_version=row[9], sent=sent
        )
    periods = await sql.all(
        "SELECT starts_on, ends_on, amount, committed, actual FROM budget_periods WHERE budget_id = %s "
        "ORDER BY starts_on",
        (budget_id,),
    )
    old_amounts = [period[2] for period in periods]
    amounts = body.amounts if body.amounts is not None else old_amounts
    _check_amounts(amounts, currency)
    if len(amounts) < len(periods):
        raise ValidationFailed(
            f"amounts must list every period ({len(periods)}), and may add more at the end", field="amounts"
        )
    for (starts_on, _, _, committed, actual), amount in zip(periods, amounts, strict=False):
        if amount < committed + actual:
            raise _below_use(starts_on, committed, actual, currency)
    if body.owner_id is not None:
        await _user_exists(sql, body.owner_id, "owner_id")
    changes = body.model_dump(exclude_unset=True, exclude={"amounts"})
    new = await sql.one(
        "UPDATE budgets SET name = %s, policy = %s, thresholds = %s, owner_id = %s, version = version + 1 "
        "WHERE id = %s RETURNING " + _COLUMNS.replace("b.", ""),
        (changes.get("name", row[1]), changes.get("policy", row[6]), changes.get("thresholds", list(row[7])),
         changes.get("owner_id", row[8]), budget_id),
    )  # fmt: skip
    assert new is not None
    before = _snapshot(row, old_amounts)
    after = await _save_version(sql, new, amounts, user)
    await record(
        sql, context, "budget.revised", RESOURCE, budget_id, {"version": [row[9], new[9]], **diff(before, after)}
    )
    grid_now = grid(row[4], row[5], len(amounts))
    for period, amount in zip(grid_now, amounts, strict=True):
        written = await sql.one(
            "INSERT INTO budget_periods AS p (budget_id, starts_on, ends_on, amount) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (budget_id, starts_on) DO UPDATE SET amount = excluded.amount "
            "WHERE excluded.amount >= p.committed + p.actual RETURNING 1",
            (budget_id, period.starts_on, period.ends_on, amount),
        )
        if written is None:  # charged meanwhile past the new amount: the whole revision rolls back
            now = await sql.one(
                "SELECT committed, actual FROM budget_periods WHERE budget_id = %s AND starts_on = %s",
                (budget_id, period.starts_on),
            )
            assert now is not None
            raise _below_use(period.starts_on, now[0], now[1], currency)
    await sql.run(
        "DELETE FROM budget_thresholds WHERE budget_id = %s AND NOT threshold = ANY(%s)", (budget_id, list(new[7]))
    )
    await thresholds.watch(sql, {(budget_id, period.starts_on) for period in grid_now})
    return _out(new, (await _periods(sql, [budget_id]))[budget_id])
