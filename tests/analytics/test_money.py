"""Budget burn, receivables aging and DSO, and the cash forecast equal SQL written here over a hand-built book; the
maintained aggregates equal a GROUP BY over their base rows; out-of-bounds parameters are 422."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
from sqlalchemy import text

from activities.deps import ActivityDeps
from domain.analytics.aggregates import analytics_mismatches
from domain.analytics.forecast import run_dates
from domain.dashboard.service import add_months
from domain.invoices import repository as invoices
from tests.analytics.conftest import BASE, get, rows, week_start, write_entries
from tests.dashboard.conftest import Org, insert_random_data

CENT = Decimal("0.01")


def money(value: Any) -> str:
    return format(Decimal(value or 0).quantize(CENT, rounding=ROUND_HALF_UP), "f")


# --- budgets ----------------------------------------------------------------------------------------------------


async def _budget(deps: ActivityDeps, org: Org, name: str, team: int | None, start: date, amount: str, actual: str,
                  months: int) -> None:  # fmt: skip
    async with deps.db.transaction() as tx:
        budget_id = await tx.sql.scalar(
            "INSERT INTO budgets (name, team_manager_id, category, period_kind, starts_on, policy, currency, "
            "thresholds, owner_id, created_by_id) VALUES (%s, %s, %s, %s, %s, 'warn', %s, '{80}', %s, %s) RETURNING id",
            (name, team, None if team else "travel", "month" if months == 1 else "quarter", start, BASE,
             org.accountant.id, org.accountant.id),
        )  # fmt: skip
        await tx.sql.run(
            "INSERT INTO budget_periods (budget_id, starts_on, ends_on, amount, committed, actual) "
            "VALUES (%s, %s, %s, %s, 0, %s)",
            (budget_id, start, add_months(start, months), Decimal(amount), Decimal(actual)),
        )


async def test_budget_burn_equals_sql_within_each_scope(
    org: Org, activity_deps: ActivityDeps, client: httpx.AsyncClient, database_url: str, today: date
) -> None:
    month = today.replace(day=1)
    quarter = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    await _budget(activity_deps, org, "mid's team", org.mid.id, month, "1000.00", "250.00", 1)
    await _budget(activity_deps, org, "other's team", org.other.id, quarter, "3000.00", "2900.00", 3)
    await _budget(activity_deps, org, "travel", None, month, "500.00", "0.00", 1)
    sql = (
        "SELECT b.name, round(p.actual * 100 / p.amount, 2), "
        "round(((%(today)s::date - p.starts_on) + 1) * 100.0 / (p.ends_on - p.starts_on), 2), "
        "round(p.actual / p.amount / (((%(today)s::date - p.starts_on) + 1)::numeric / (p.ends_on - p.starts_on)), 2) "
        "FROM budgets b JOIN budget_periods p ON p.budget_id = b.id "
        "WHERE p.starts_on <= %(today)s AND p.ends_on > %(today)s AND (%(teams)s::bigint[] IS NULL "
        "OR b.team_manager_id = ANY(%(teams)s) OR b.owner_id = %(viewer)s)"
    )
    for viewer, teams in ((org.accountant, None), (org.top, [org.top.id, org.mid.id, org.e1.id, org.e2.id,
                                                               org.e3.id])):  # fmt: skip
        expected = {
            name: (money(spent), float(elapsed), float(burn))
            for name, spent, elapsed, burn in rows(
                database_url, sql, {"today": today, "teams": teams, "viewer": viewer.id}
            )  # fmt: skip
        }
        response = await get(client, viewer, "budgets")
        assert response.status_code == 200, response.text
        body = response.json()
        found = {b["name"]: (money(Decimal(b["actual"]) * 100 / Decimal(b["amount"])), b["elapsed_percent"], b["burn"])
                 for b in body["budgets"]}  # fmt: skip
        assert found == expected
        chart = body["charts"][0]
        assert chart["series"][0]["values"] == [expected[b["name"]][0] for b in body["budgets"]]
    assert set(expected) == {"mid's team"}  # the top manager sees the team in their subtree, not other's or travel


# --- invoices: receivables and the forecast ---------------------------------------------------------------------


async def _invoices(deps: ActivityDeps, org: Org, today: date) -> dict[str, int]:
    """Open invoices of e1 (mid's team) and e4 (other's), one paid last week, and a monthly recurring invoice."""
    ids = {}
    async with deps.db.transaction() as tx:
        customer = (await invoices.insert_customer(tx.sql, {"name": "Acme", "billing_email": "ar@example.com",
                    "currency": "EUR", "payment_terms_days": 30}, org.accountant.id)).id  # fmt: skip
        book = [  # key, owner, total, paid, rate, base_total, status, issued, due (days from today), template
            ("a", org.e1.id, "1000.00", "0", "1.1", "1100.00", "sent", -20, 10, False),
            ("b", org.e1.id, "500.00", "100.00", "1.1", "550.00", "partially_paid", -70, -40, False),
            ("c", org.e4.id, "200.00", "0", "1.1", "220.00", "sent", -5, 25, False),
            ("d", org.e4.id, "300.00", "0", "1.1", "330.00", "sent", -130, -100, False),
            ("p", org.e1.id, "400.00", "400.00", "1.1", "440.00", "paid", -30, -5, False),
            ("t", org.e1.id, "100.00", "0", "1.1", "110.00", "approved", 0, 30, True),
        ]
        for key, owner, total, paid, rate, base_total, status, issued, due, template in book:
            ids[key] = (await invoices.insert_invoice(tx.sql, {
                "customer_id": customer, "owner_id": owner, "status": status, "is_template": template,
                "currency": "EUR", "issue_date": today + timedelta(days=issued),
                "due_date": today + timedelta(days=due),
                "subtotal": Decimal(total), "total": Decimal(total), "amount_paid": Decimal(paid),
                "base_currency": BASE, "fx_rate": Decimal(rate), "base_total": Decimal(base_total),
            })).id  # fmt: skip
        await tx.sql.run(
            "INSERT INTO invoice_payments (invoice_id, amount, paid_on, fx_rate, rate_source, base_amount, "
            "booked_base, fx_difference, created_by_id) VALUES (%s, 400, %s, 1.1, 'manual', 440, 440, 0, %s)",
            (ids["p"], today - timedelta(days=7), org.accountant.id),
        )
        await tx.sql.run(
            "INSERT INTO recurring_invoices (template_id, frequency, starts_on, count, runs, status, owner_id) "
            "VALUES (%s, 'monthly', %s, 2, 0, 'active', %s)",
            (ids["t"], today + timedelta(days=3), org.e1.id),
        )
    return ids


AGING = """
SELECT CASE WHEN %(today)s::date - due_date <= 0 THEN 'current' WHEN %(today)s::date - due_date <= 30 THEN '1-30'
            WHEN %(today)s::date - due_date <= 60 THEN '31-60' WHEN %(today)s::date - due_date <= 90 THEN '61-90'
            ELSE 'over_90' END, sum(round((total - amount_paid - amount_credited) * fx_rate, 2)), count(*)
FROM invoices WHERE status IN ('sent', 'partially_paid') AND NOT is_template
    AND (%(owners)s::bigint[] IS NULL OR owner_id = ANY(%(owners)s)) GROUP BY 1
"""
CREDIT_SALES = """
SELECT sum(base_total) FROM invoices WHERE status IN ('sent', 'partially_paid', 'paid') AND NOT is_template
    AND issue_date > %(today)s::date - 90 AND issue_date <= %(today)s
    AND (%(owners)s::bigint[] IS NULL OR owner_id = ANY(%(owners)s))
"""


async def test_aging_and_dso_equal_sql_and_employees_may_not_read_them(
    org: Org, activity_deps: ActivityDeps, client: httpx.AsyncClient, database_url: str, today: date
) -> None:
    await _invoices(activity_deps, org, today)
    for viewer, owners in ((org.accountant, None), (org.mid, [org.mid.id, org.e1.id, org.e2.id])):
        params = {"today": today, "owners": owners}
        aging = {bucket: (money(amount), n) for bucket, amount, n in rows(database_url, AGING, params)}
        response = await get(client, viewer, "receivables")
        assert response.status_code == 200, response.text
        body = response.json()["receivables"]
        shown = {b["bucket"]: (b["amount"], b["invoices"]) for b in body["aging"] if b["invoices"]}
        assert shown == aging
        open_total = sum(Decimal(a) for a, _ in aging.values())
        sales = Decimal(rows(database_url, CREDIT_SALES, params)[0][0])
        assert body["dso"]["value"] == money(open_total * 90 / sales)
        assert response.json()["charts"][0]["labels"] == ["current", "1-30", "31-60", "61-90", "over_90"]
    assert (await get(client, org.e1, "receivables")).status_code == 403


async def test_cash_forecast_equals_sql(
    org: Org, activity_deps: ActivityDeps, client: httpx.AsyncClient, database_url: str, today: date
) -> None:
    await write_entries(activity_deps, org, today)
    await _invoices(activity_deps, org, today)
    first = week_start(today)
    weeks = [first + timedelta(weeks=i) for i in range(13)]
    due = dict(rows(database_url,
        "SELECT due_date - (extract(isodow FROM due_date)::int - 1), sum(round((total - amount_paid - amount_credited) "
        "* fx_rate, 2)) FROM invoices WHERE status IN ('sent', 'partially_paid') AND NOT is_template "
        "AND due_date >= %s GROUP BY 1", (today,)))  # fmt: skip
    approved = dict(rows(database_url,
        "SELECT date_trunc('week', decided_at AT TIME ZONE 'UTC')::date, sum(base_amount) FROM entries "
        "WHERE status = 'approved' AND kind = 'expense' GROUP BY 1"))  # fmt: skip
    recurring: dict[date, Decimal] = {}
    for run_on in run_dates("monthly", today + timedelta(days=3), today, weeks[-1] + timedelta(weeks=1), (), 2):
        monday = week_start(run_on + timedelta(days=30))
        recurring[monday] = recurring.get(monday, Decimal(0)) + Decimal("110.00")
    assert sum(recurring.values()) == Decimal("220.00")  # both runs fall due within the 13 weeks

    response = await get(client, org.admin, "cash-forecast", cash_on_hand="1000.00")
    assert response.status_code == 200, response.text
    body = response.json()
    payment_weeks = body["expense_payment_weeks"]
    trailing_in = Decimal("440.00") / 13  # the one payment, last week
    trailing_out = sum((approved.get(first - timedelta(weeks=13 + payment_weeks - i), Decimal(0))
                        for i in range(13)), Decimal(0)) / 13  # fmt: skip
    average = Decimal(money(trailing_in)) - Decimal(money(trailing_out))
    assert body["trailing_average"]["net"] == money(average)
    balance = low = Decimal("1000.00")
    for monday, week in zip(weeks, body["weeks"], strict=True):
        expected_out = approved.get(monday - timedelta(weeks=payment_weeks), Decimal(0))
        net = due.get(monday, Decimal(0)) + recurring.get(monday, Decimal(0)) - expected_out
        balance, low = balance + net, low + min(net, average)
        assert week["starts_on"] == monday.isoformat()
        assert (week["invoices_due"], week["recurring_due"], week["expenses_payable"], week["net"]) == (
            money(due.get(monday)),
            money(recurring.get(monday)),
            money(expected_out),
            money(net),
        ), monday
        assert (week["band_low"], week["band_high"]) == (money(min(net, average)), money(max(net, average)))
        assert (week["balance"], week["balance_low"]) == (money(balance), money(low))
    assert body["overdue_invoices"] == money(Decimal("440.00") + Decimal("330.00"))
    mean_low = sum(Decimal(w["band_low"]) for w in body["weeks"]) / 13
    expected_runway = None if mean_low >= 0 else money(Decimal("1000.00") / Decimal(money(-mean_low)))
    assert body["runway"]["weeks"] == expected_runway

    employee = (await get(client, org.e1, "cash-forecast")).json()
    assert employee["invoices_included"] is False and employee["runway"]["weeks"] is None
    assert all(w["invoices_due"] == "0.00" for w in employee["weeks"])


# --- the aggregates ---------------------------------------------------------------------------------------------


async def test_aggregates_equal_a_group_by_over_their_base_rows_whatever_happens(
    org: Org, activity_deps: ActivityDeps
) -> None:
    rng = random.Random(29)
    async with activity_deps.db.transaction() as tx:
        await insert_random_data(tx, org, rng, per_owner=12)
    async with activity_deps.db.transaction() as tx:
        assert await analytics_mismatches(tx.session) == []
        # Changes every trigger must follow: amounts, vendors, owners, decisions moved, steps reopened and deleted.
        statements = [
            "UPDATE entries SET base_amount = base_amount + 1, amount = amount + 1 WHERE id % 3 = 0",
            "UPDATE entries SET vendor = 'Other Co' WHERE id % 4 = 0 AND kind = 'expense'",
            "UPDATE entries SET status = 'approved', decided_at = now() WHERE status = 'pending' AND id % 2 = 0",
            "UPDATE entries SET owner_id = (SELECT min(id) FROM users) WHERE id % 5 = 0",
            "UPDATE approval_steps SET status = 'pending', decided_at = NULL WHERE id % 7 = 0",
            "UPDATE approval_steps SET decided_at = decided_at + interval '40 days' WHERE id % 6 = 0",
            "UPDATE approval_steps SET opened_at = opened_at - interval '3 hours' WHERE id % 5 = 1",
            "UPDATE approval_requests SET status = 'approved', chain = '[]' WHERE status = 'rejected' AND id % 2 = 0",
            "DELETE FROM approval_steps WHERE id % 11 = 0",
            "DELETE FROM entries WHERE id % 13 = 0 AND approval_request_id IS NULL",
        ]
        for statement in statements:
            await tx.session.execute(text(statement))
        assert await analytics_mismatches(tx.session) == []


# --- bad parameters ---------------------------------------------------------------------------------------------


BAD = [
    ("trends", {"months": 0}),
    ("trends", {"months": 25}),
    ("trends", {"end": "2026-13"}),
    ("trends", {"end": "1999-12"}),
    ("trends", {"end": "2099-01"}),  # after this month
    ("trends", {"by": "colour"}),
    ("trends", {"kind": "transfer"}),
    ("trends", {"top": 0}),
    ("approvals", {"months": 100}),
    ("approvals", {"top": 21}),
    ("budgets", {"limit": 0}),
    ("budgets", {"as_of": "1999-01-01"}),
    ("budgets", {"as_of": "not a date"}),
    ("cash-forecast", {"weeks": 27}),
    ("cash-forecast", {"trailing_weeks": 0}),
    ("cash-forecast", {"cash_on_hand": "12.345"}),  # USD has two places
    ("cash-forecast", {"cash_on_hand": "1e9"}),
    ("cash-forecast", {"cash_on_hand": "lots"}),
]


async def test_out_of_bounds_parameters_are_422_with_a_message(org: Org, client: httpx.AsyncClient) -> None:
    for path, params in BAD:
        response = await get(client, org.accountant, path, **params)
        assert response.status_code == 422, (path, params, response.text)
        assert response.json()["error"]["message"], (path, params)
