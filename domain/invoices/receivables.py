"""Receivables: what customers owe on the invoices a viewer may see, as of a day.

Open receivables are the invoices `sent` or `partially_paid` (never a template) with something still due. Each one's
balance due (total - amount paid - amount credited) counts in the base currency at the rate its submit locked
(`invoices.fx_rate`), rounded once per invoice to the base currency's minor units, half-up: the rule of
`domain.money.in_minor_units`, written in SQL as `round()`, which is half-up on a non-negative numeric. Totals add
those per-invoice amounts, so they equal the sum of what the receivables report lists.

- aging: by days past the due date on the day: `current` (not yet due; due that day included), `1-30`, `31-60`,
  `61-90`, `over_90`;
- days sales outstanding: open receivables / credit sales of the last N days x N, the credit sales being the base
  totals (locked at submit) of the invoices issued (sent, partly or wholly paid; not void) with an issue date in those
  N days, the day itself included; None when there were no such sales;
- expected cash in: the open balances by the ISO week (Monday first) of their due date, for 13 weeks from the week
  holding the day; balances already past due are `overdue` (late, not expected in any given week), those due after
  the 13 weeks `later`;
- realized FX gains and losses: the payments' `fx_difference` (the base amount at the payment's own rate less the
  amount booked at the invoice's locked rate: positive a gain, negative a loss) by payment date.

Each figure is one SQL aggregate over the viewer's invoices, never a Python loop over them. Who sees which invoices is
the invoices' own rule (`domain.invoices.service`): nobody without `invoice read`; everyone's with `invoice read_all`
(accountants, admins); otherwise those owned by the viewer or their subtree (managers).

The statements use `ix_invoices_status_due_date` for the open invoices and `ix_invoices_owner_id_issue_date` for a
subtree's credit sales; the organisation's credit sales and realized FX read by date, through
`ix_invoices_issue_date` and `ix_invoice_payments_paid_on` (migration 0013).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from core.authz import Authorizer
from core.sql import Sql
from domain.invoices import issuing
from domain.models import User
from domain.money import in_minor_units, minor_units
from domain.users.visibility import visibility_for

RESOURCE = "invoice"
ISSUED = (issuing.SENT, issuing.PARTIALLY_PAID, issuing.PAID)  # went out to the customer and was not voided

CURRENT = "current"
OVER_90 = "over_90"
# Each bucket and the most days past due it holds; anything later is OVER_90.
_BUCKET_LIMITS = ((CURRENT, 0), ("1-30", 30), ("31-60", 60), ("61-90", 90))
BUCKETS = (*(name for name, _ in _BUCKET_LIMITS), OVER_90)
FORECAST_WEEKS = 13
DSO_PLACES = Decimal("0.01")


def dso_formula(days: int) -> str:
    return f"open receivables / credit sales of the last {days} days x {days}"


# --- scope ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivablesScope:
    """The invoices a viewer may see: everyone's, or those of a fixed set of owners."""

    viewer_id: int
    everyone: bool
    owner_ids: tuple[int, ...] = ()

    def condition(self) -> str:
        """An SQL condition on the invoices `i` (bind parameter `owners`)."""
        return "TRUE" if self.everyone else "i.owner_id = ANY(%(owners)s)"

    def params(self) -> dict[str, Any]:
        return {} if self.everyone else {"owners": list(self.owner_ids)}

    def narrowed(self, wanted: Sequence[int]) -> ReceivablesScope:
        """Only the `wanted` owners among those in scope (a report's `owner_ids` filter); itself when none named."""
        if not wanted:
            return self
        allowed = set(wanted) if self.everyone else set(wanted) & set(self.owner_ids)
        return ReceivablesScope(self.viewer_id, False, tuple(sorted(allowed)))

    def as_scope(self) -> dict[str, object]:
        """The JSON form a report keeps (the shape of `Visibility.as_scope`)."""
        if self.everyone:
            return {"kind": "all", "viewer_id": self.viewer_id}
        return {"kind": "owners", "viewer_id": self.viewer_id, "owner_ids": list(self.owner_ids)}


def may_read(authorizer: Authorizer, viewer: User) -> bool:
    return authorizer.allows(viewer.role, RESOURCE, "read")


async def scope_for(
    sql: Sql, authorizer: Authorizer, viewer: User, visible_owners: Collection[int] | None = None
) -> ReceivablesScope | None:
    """The viewer's invoices, or None when they may not read invoices at all. `visible_owners`: the viewer and their
    subtree (the `user read_team` rule) when the caller has read them already (the dashboard): no second walk of the
    manager tree."""
    if not may_read(authorizer, viewer):
        return None
    if authorizer.allows(viewer.role, RESOURCE, "read_all"):
        return ReceivablesScope(viewer.id, True)
    if visible_owners is None:
        visible_owners = (await visibility_for(sql, authorizer, viewer, RESOURCE)).owner_ids
    return ReceivablesScope(viewer.id, False, tuple(sorted(visible_owners)))


# --- SQL pieces: one place for the open set, the balance in base and the buckets --------------------------------

_BALANCE = "(i.total - i.amount_paid - i.amount_credited)"
_OPEN = f"i.status IN {issuing.OPEN!r} AND NOT i.is_template AND {_BALANCE} > 0"
_BASE_DUE = f"round({_BALANCE} * i.fx_rate, %(places)s::int)"
_DAYS_PAST_DUE = "(%(as_of)s::date - i.due_date)"
_BUCKET = (
    "CASE "
    + " ".join(f"WHEN {_DAYS_PAST_DUE} <= {limit} THEN '{name}'" for name, limit in _BUCKET_LIMITS)
    + f" ELSE '{OVER_90}' END"
)


def _places(base: str) -> int:
    units = minor_units(base)
    if units is None:
        raise ValueError(f"{base} is not a currency money can be kept in")
    return units


def _money(value: Any, currency: str) -> Decimal:
    return in_minor_units(Decimal(value or 0), currency)


# --- aging ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BucketFigure:
    bucket: str
    amount: Decimal  # base currency
    invoices: int


@dataclass(frozen=True)
class Aging:
    as_of: date
    base_currency: str
    buckets: tuple[BucketFigure, ...]  # in BUCKETS order, every bucket (zero when empty)

    @property
    def total(self) -> Decimal:
        return sum((b.amount for b in self.buckets), _money(0, self.base_currency))

    @property
    def invoices(self) -> int:
        return sum(b.invoices for b in self.buckets)

    @property
    def overdue(self) -> Decimal:
        return sum((b.amount for b in self.buckets if b.bucket != CURRENT), _money(0, self.base_currency))

    @property
    def overdue_invoices(self) -> int:
        return sum(b.invoices for b in self.buckets if b.bucket != CURRENT)


def _aging(as_of: date, base: str, found: dict[str, tuple[int, Any]]) -> Aging:
    buckets = tuple(
        BucketFigure(name, _money(found.get(name, (0, 0))[1], base), int(found.get(name, (0, 0))[0]))
        for name in BUCKETS
    )
    return Aging(as_of, base, buckets)


async def aging(sql: Sql, scope: ReceivablesScope, base: str, as_of: date) -> Aging:
    """Open balances by days past due on `as_of`: one GROUP BY."""
    rows = await sql.all(
        f"SELECT {_BUCKET} AS bucket, count(*), sum({_BASE_DUE}) FROM invoices i "
        f"WHERE {_OPEN} AND {scope.condition()} GROUP BY bucket",
        {"as_of": as_of, "places": _places(base), **scope.params()},
        prepare=False,  # a team of one or of hundreds: plan for this list
    )
    return _aging(as_of, base, {bucket: (count, amount) for bucket, count, amount in rows})


# --- days sales outstanding -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dso:
    days: int  # the window, N
    window_start: date
    window_end: date  # inclusive: the day the figure is for
    receivables: Decimal
    credit_sales: Decimal
    value: Decimal | None  # in days, two places; None when there were no credit sales in the window
    formula: str


async def credit_sales(sql: Sql, scope: ReceivablesScope, base: str, start: date, end: date) -> Decimal:
    """The base totals of the invoices issued with an issue date in [start, end]."""
    rows = await sql.all(
        f"SELECT sum(i.base_total) FROM invoices i WHERE i.status IN {ISSUED!r} AND NOT i.is_template "
        f"AND i.issue_date >= %(start)s AND i.issue_date <= %(end)s AND {scope.condition()}",
        {"start": start, "end": end, **scope.params()},
        prepare=False,
    )
    return _money(rows[0][0], base)


async def days_sales_outstanding(
    sql: Sql, scope: ReceivablesScope, base: str, as_of: date, days: int, receivables: Decimal
) -> Dso:
    """`receivables` (the open balances, from `aging`) / credit sales of the `days` days up to `as_of` x `days`,
    half-up to two places."""
    start = as_of - timedelta(days=days - 1)
    sales = await credit_sales(sql, scope, base, start, as_of)
    value = None if not sales else (receivables * days / sales).quantize(DSO_PLACES, rounding=ROUND_HALF_UP)
    return Dso(days, start, as_of, receivables, sales, value, dso_formula(days))


# --- expected cash in -------------------------------------------------------------------------------------------


def week_start(day: date) -> date:
    """The Monday of the day's ISO week."""
    return day - timedelta(days=day.isoweekday() - 1)


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class WeekCash:
    starts_on: date  # a Monday
    week: str  # ISO: 2026-W50
    amount: Decimal
    invoices: int


@dataclass(frozen=True)
class CashForecast:
    as_of: date
    overdue: Decimal  # past due on `as_of`: not placed in any week
    overdue_invoices: int
    weeks: tuple[WeekCash, ...]  # FORECAST_WEEKS of them, from the week holding `as_of`
    later: Decimal  # due after the last week
    later_invoices: int


async def expected_cash(
    sql: Sql, scope: ReceivablesScope, base: str, as_of: date, weeks: int = FORECAST_WEEKS
) -> CashForecast:
    """Open balances by the ISO week of their due date (one GROUP BY); past due ones apart, as `overdue`."""
    first = week_start(as_of)
    horizon = first + timedelta(weeks=weeks)
    rows = await sql.all(
        "SELECT CASE WHEN i.due_date < %(as_of)s THEN 'overdue' WHEN i.due_date >= %(horizon)s THEN 'later' "
        "ELSE 'week' END AS slot, "
        # The Monday of the due date's ISO week (isodow: Monday 1 .. Sunday 7).
        "CASE WHEN i.due_date >= %(as_of)s AND i.due_date < %(horizon)s "
        "THEN i.due_date - (extract(isodow FROM i.due_date)::int - 1) END AS monday, "
        f"count(*), sum({_BASE_DUE}) FROM invoices i WHERE {_OPEN} AND {scope.condition()} GROUP BY slot, monday",
        {"as_of": as_of, "horizon": horizon, "places": _places(base), **scope.params()},
        prepare=False,
    )
    by_week: dict[date, tuple[int, Any]] = {}
    apart: dict[str, tuple[int, Any]] = {}
    for slot, monday, count, amount in rows:
        if slot == "week":
            by_week[monday] = (count, amount)
        else:
            apart[slot] = (count, amount)
    shown = []
    for index in range(weeks):
        monday = first + timedelta(weeks=index)
        count, amount = by_week.get(monday, (0, 0))
        shown.append(WeekCash(monday, iso_week(monday), _money(amount, base), int(count)))
    overdue, later = apart.get("overdue", (0, 0)), apart.get("later", (0, 0))
    return CashForecast(
        as_of, _money(overdue[1], base), int(overdue[0]), tuple(shown), _money(later[1], base), int(later[0])
    )


# --- realized FX gains and losses -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FxRealized:
    start: date
    end: date  # inclusive
    gains: Decimal  # positive differences, added
    losses: Decimal  # negative differences, added (a negative amount, or zero)
    gain_payments: int
    loss_payments: int

    @property
    def net(self) -> Decimal:
        return self.gains + self.losses


async def fx_realized(sql: Sql, scope: ReceivablesScope, base: str, start: date, end: date) -> FxRealized:
    """The payments' realized FX differences with a payment date in [start, end], gains and losses apart."""
    # The invoice is joined only to know its owner: everyone's payments are read alone.
    source = "invoice_payments p" + ("" if scope.everyone else " JOIN invoices i ON i.id = p.invoice_id")
    rows = await sql.all(
        "SELECT sum(p.fx_difference) FILTER (WHERE p.fx_difference > 0), count(*) FILTER (WHERE p.fx_difference > 0), "
        "sum(p.fx_difference) FILTER (WHERE p.fx_difference < 0), count(*) FILTER (WHERE p.fx_difference < 0) "
        f"FROM {source} WHERE p.paid_on >= %(start)s AND p.paid_on <= %(end)s AND {scope.condition()}",
        {"start": start, "end": end, **scope.params()},
        prepare=False,
    )
    gains, gained, losses, lost = rows[0]  # an aggregate without GROUP BY: always one row
    return FxRealized(start, end, _money(gains, base), _money(losses, base), int(gained), int(lost))


# --- the open invoices, one by one (the receivables report) -----------------------------------------------------


@dataclass(frozen=True)
class OpenInvoice:
    invoice_id: int
    number: str | None
    customer: str
    issue_date: date
    due_date: date
    days_overdue: int
    bucket: str
    currency: str
    balance: Decimal  # in `currency`, to its minor units
    base_balance: Decimal  # in the base currency, rounded once


@dataclass(frozen=True)
class CurrencyBalance:
    currency: str
    invoices: int
    balance: Decimal  # in `currency`
    base_balance: Decimal  # the invoices' base balances, added


_LISTING = f"""
WITH open AS (
    SELECT i.id, i.number, c.name AS customer, i.issue_date, i.due_date, greatest({_DAYS_PAST_DUE}, 0) AS days,
           {_BUCKET} AS bucket, i.currency, {_BALANCE} AS balance, {_BASE_DUE} AS base_due
    FROM invoices i JOIN customers c ON c.id = i.customer_id
    WHERE {_OPEN} AND {{scope}}
)
SELECT GROUPING(o.id, o.bucket), o.id, o.number, o.customer, o.issue_date, o.due_date, o.days, o.bucket, o.currency,
       count(*), sum(o.balance), sum(o.base_due)
FROM open o
GROUP BY GROUPING SETS ((o.id, o.number, o.customer, o.issue_date, o.due_date, o.days, o.bucket, o.currency),
                        (o.bucket), (o.currency))
ORDER BY GROUPING(o.id, o.bucket), o.due_date, o.number, o.id, o.bucket, o.currency
"""
# GROUPING(o.id, o.bucket): 0 an invoice, 2 a bucket's total, 3 a currency's total.
_INVOICE, _BUCKET_TOTAL = 0, 2


@dataclass
class OpenInvoices:
    """The open invoices of a scope, the longest overdue first, streamed from a server-side cursor. The same statement
    adds them up by bucket and by currency (GROUPING SETS: one snapshot, so the totals are exactly the rows');
    `aging` and `by_currency` hold those totals once the last batch has been read. A server-side cursor lives in a
    transaction: read it in one, not in autocommit."""

    scope: ReceivablesScope
    base: str
    as_of: date
    aging: Aging | None = field(default=None, init=False)
    by_currency: tuple[CurrencyBalance, ...] = field(default=(), init=False)

    async def batches(self, sql: Sql, batch_size: int = 2000) -> AsyncIterator[list[OpenInvoice]]:
        params = {"as_of": self.as_of, "places": _places(self.base), **self.scope.params()}
        buckets: dict[str, tuple[int, Any]] = {}
        currencies: list[CurrencyBalance] = []
        async with sql.connection.cursor(name="open_receivables") as cursor:
            await cursor.execute(_LISTING.format(scope=self.scope.condition()), params)
            while rows := await cursor.fetchmany(batch_size):
                batch = []
                for (
                    grouped,
                    invoice_id,
                    number,
                    customer,
                    issued,
                    due,
                    days,
                    bucket,
                    currency,
                    n,
                    balance,
                    base,
                ) in rows:
                    if grouped == _INVOICE:
                        batch.append(OpenInvoice(invoice_id, number, customer, issued, due, int(days), bucket,
                                                 currency, in_minor_units(balance, currency),
                                                 _money(base, self.base)))  # fmt: skip
                    elif grouped == _BUCKET_TOTAL:
                        buckets[bucket] = (n, base)
                    else:
                        currencies.append(CurrencyBalance(currency, int(n), in_minor_units(balance, currency),
                                                          _money(base, self.base)))  # fmt: skip
                if batch:
                    yield batch
        self.aging = _aging(self.as_of, self.base, buckets)
        self.by_currency = tuple(currencies)
