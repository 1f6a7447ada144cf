"""Budget alerts: the owner is told when a period's use (committed + actual) reaches one of its thresholds.

Once per crossing: `budget_thresholds` remembers, per period and threshold, whether the use is at or above it and
how many times it got there. A drop below (a release, a raised amount) arms it again, so a later rise alerts again.
A charge or a release says where the use was and where it is (`moved`: no read unless a threshold is passed); a
revision, which may change the amounts and the thresholds themselves, checks them all (`watch`).
Each crossing creates the in-app notification (its key names the crossing) and a `budget_alerts` row whose email
the budget upkeep sends (workflows/budgets.py): the transaction that crossed it never waits on a mail server.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from core.sql import Sql
from domain.budgets.periods import Period
from domain.money import in_minor_units
from domain.notifications.service import notify
from workflows.contracts import EmailJob

EVENT = "budget_threshold"

_PERIOD = (
    "SELECT b.name, b.owner_id, b.thresholds, b.period_kind, p.ends_on, p.amount, p.committed, p.actual, b.currency "
    "FROM budgets b JOIN budget_periods p ON p.budget_id = b.id WHERE p.budget_id = %s AND p.starts_on = %s"
)
_STATES = "SELECT threshold, above, crossings FROM budget_thresholds WHERE budget_id = %s AND period_starts_on = %s"
_SET = (
    "INSERT INTO budget_thresholds (budget_id, period_starts_on, threshold, above, crossings) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (budget_id, period_starts_on, threshold) "
    "DO UPDATE SET above = excluded.above, crossings = excluded.crossings"
)
_ALERT = (
    "INSERT INTO budget_alerts (budget_id, period_starts_on, threshold, crossing, user_id, key, email) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING"
)


_UP = (
    "INSERT INTO budget_thresholds (budget_id, period_starts_on, threshold, above, crossings) "
    "VALUES (%s, %s, %s, true, 1) ON CONFLICT (budget_id, period_starts_on, threshold) "
    "DO UPDATE SET above = true, crossings = budget_thresholds.crossings + 1 WHERE NOT budget_thresholds.above "
    "RETURNING crossings"
)
_DOWN = (
    "UPDATE budget_thresholds SET above = false "
    "WHERE budget_id = %s AND period_starts_on = %s AND threshold = %s AND above"
)


async def moved(
    sql: Sql, budget_id: int, starts_on: date, limits: list[int], amount: Decimal, used: Decimal, before: Decimal
) -> None:
    """A charge or a release moved the period's use from `before` to `used`: record each threshold it passed, and
    alert the owner for each one reached."""
    was = {threshold: (before * 100 >= amount * threshold, 0) for threshold in limits}
    for threshold, now_above, _ in crossings(limits, was, used, amount):
        if not now_above:
            await sql.run(_DOWN, (budget_id, starts_on, threshold))
            continue
        count = await sql.scalar(_UP, (budget_id, starts_on, threshold))
        if count is not None:  # None: it was recorded above already (nothing to tell again)
            await _tell(sql, budget_id, starts_on, threshold, int(count))


async def _tell(sql: Sql, budget_id: int, starts_on: date, threshold: int, crossing: int) -> None:
    row = await sql.one(_PERIOD, (budget_id, starts_on))
    assert row is not None
    await _tell_from(sql, row, budget_id, starts_on, threshold, crossing)


async def _tell_from(
    sql: Sql, row: tuple[Any, ...], budget_id: int, starts_on: date, threshold: int, crossing: int
) -> None:
    """Alert the owner, from the period as `_PERIOD` read it."""
    name, owner_id, _, kind, ends_on, amount, committed, actual, currency = row
    figures = _figures(amount, committed, actual, currency)
    label = Period(starts_on, ends_on).label(kind)
    await _alert(sql, budget_id, name, owner_id, label, starts_on, threshold, crossing, figures)


async def watch(sql: Sql, periods: set[tuple[int, date]]) -> None:
    """Check the thresholds of each changed period (budget id, period start), in a fixed order."""
    for budget_id, starts_on in sorted(periods):
        await _check(sql, budget_id, starts_on)


def crossings(
    limits: list[int], states: dict[int, tuple[bool, int]], used: Decimal, amount: Decimal
) -> list[tuple[int, bool, int]]:
    """The thresholds whose state `used` of `amount` changes: (threshold, now at or above it, crossings so far). A
    threshold is crossed when the use reaches it from below; `states` holds (above, crossings) per threshold."""
    changed = []
    for threshold in sorted(limits):
        above, count = states.get(threshold, (False, 0))
        now_above = used * 100 >= amount * threshold
        if now_above != above:
            changed.append((threshold, now_above, count + 1 if now_above else count))
    return changed


async def _check(sql: Sql, budget_id: int, starts_on: date) -> None:
    row = await sql.one(_PERIOD, (budget_id, starts_on))
    if row is None:
        return
    limits, amount, committed, actual = row[2], row[5], row[6], row[7]
    rows = await sql.all(_STATES, (budget_id, starts_on))
    states = {threshold: (above, count) for threshold, above, count in rows}
    for threshold, now_above, count in crossings(limits, states, committed + actual, amount):
        await sql.run(_SET, (budget_id, starts_on, threshold, now_above, count))
        if now_above:
            await _tell_from(sql, row, budget_id, starts_on, threshold, count)


def _figures(amount: Decimal, committed: Decimal, actual: Decimal, currency: str) -> dict[str, str]:
    def shown(value: Decimal) -> str:
        return str(in_minor_units(value, currency))

    return {
        "amount": shown(amount),
        "committed": shown(committed),
        "actual": shown(actual),
        "available": shown(amount - committed - actual),
        "currency": currency,
        "used_percent": str(int((committed + actual) * 100 / amount)),
    }


async def _alert(
    sql: Sql,
    budget_id: int,
    name: str,
    owner_id: int,
    label: str,
    starts_on: date,
    threshold: int,
    crossing: int,
    figures: dict[str, str],
) -> None:
    key = f"budget:{budget_id}:{starts_on.isoformat()}:{threshold}:{crossing}"
    title = f"Budget \u201c{name}\u201d reached {threshold}% for {label}"
    body = (
        f"{figures['used_percent']}% of the budget is committed or spent: {figures['available']} "
        f"{figures['currency']} of {figures['amount']} {figures['currency']} is available."
    )
    link = f"/api/v1/budgets/{budget_id}"
    data = {"budget_id": budget_id, "period_start": starts_on.isoformat(), "threshold": threshold, **figures}
    await notify(sql, user_id=owner_id, event_type=EVENT, title=title, body=body, link=link, data=data, dedup_key=key)
    email = EmailJob(
        message_key=key,
        template=EVENT,
        to_user_ids=[owner_id],
        context={"title": title, "body": body, "link": link, "budget_name": name, "period": label, **figures},
        event_type=EVENT,
    )
    await sql.run(_ALERT, (budget_id, starts_on, threshold, crossing, owner_id, key, Jsonb(email.model_dump())))
