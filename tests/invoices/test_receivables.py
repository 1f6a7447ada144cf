"""Receivables against a book worked out by hand: aging buckets, days sales outstanding, expected cash in by week and
realized FX gains and losses (domain/invoices/receivables.py); the dashboard's block and endpoint for an accountant
(every invoice), a manager (their team's) and an employee (none); the receivables report in CSV, JSON, XLSX and PDF,
and a manager's holding only their team's invoices.

The invoices are written straight into their tables in the state under test (sent, partly paid, paid ...) with the
rate their submit would have locked: sending and payments are other parts' work. Base currency USD. Every expected
figure below is computed by hand from the table in `BOOK` (balance x locked rate, rounded half-up once per invoice).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from activities.deps import ActivityDeps
from domain.audit.service import AuditContext
from domain.errors import Forbidden, ValidationFailed
from domain.invoices import receivables
from domain.invoices import repository as invoices
from domain.invoices.receivables import ReceivablesScope
from domain.models import User
from domain.reports import service as reports
from domain.reports.schemas import Period as ReportPeriod
from domain.reports.schemas import ReportFilters, ReportRequest, ReportType
from domain.users.visibility import visibility_for
from tests.conftest import MakeUser, TestUser
from tests.reports.readback import csv_sections, csv_table, generated, json_table, pdf_text, xlsx_table

BASE = "USD"


@dataclass
class People:
    admin: TestUser
    accountant: TestUser
    manager: TestUser  # the team: manager and employee
    employee: TestUser
    peer: TestUser  # another manager, of outsider
    outsider: TestUser


@pytest.fixture
async def people(make_user: MakeUser) -> People:
    admin = await make_user("admin")
    accountant = await make_user("accountant", manager=admin)
    manager = await make_user("manager", manager=admin)
    employee = await make_user("employee", manager=manager)
    peer = await make_user("manager", manager=admin)
    outsider = await make_user("employee", manager=peer)
    return People(admin, accountant, manager, employee, peer, outsider)


@dataclass(frozen=True)
class Invoice:
    key: str
    owner: str  # an attribute of People
    currency: str
    total: str
    paid: str
    credited: str
    rate: str  # locked at submit: USD per unit of `currency`
    base_total: str  # total x rate, half-up to cents (as the submit locked it)
    status: str
    issued: int  # days from the day D
    due: int
    template: bool = False


# The book on day D. Open (sent or partly paid) with their balance in USD and bucket on D:
#   A  EUR 1000.00            x 1.085432 = 1085.432  -> 1085.43   due D       current
#   B  GBP 500.00 - 200 paid  x 1.273115 = 381.9345  -> 381.93    due D-10    1-30
#   C  EUR 250.50             x 1.09     = 273.045   -> 273.05    due D-45    31-60   (half-up, not half-even)
#   D  GBP 1200.00 - 100 cred x 1.273115 = 1400.4265 -> 1400.43   due D-75    61-90
#   E  EUR 80.00 - 20 paid    x 1.085432 = 65.12592  -> 65.13     due D-120   over_90
#   F  GBP 100.00             x 1.273115 = 127.3115  -> 127.31    due D+4     current
#   G  EUR 1000.00            x 1.085432             -> 1085.43   due D+5     current
#   J  USD 75.00              x 1                    -> 75.00     due D+88    current
#   H  EUR 10.00              x 1.085432 = 10.85432  -> 10.85     due D+89    current
# Not receivables: P, Q, R paid; V void; X a draft; T a template; K approved, not sent yet.
BOOK = [
    Invoice("A", "employee", "EUR", "1000.00", "0", "0", "1.085432", "1085.43", "sent", -30, 0),
    Invoice("B", "employee", "GBP", "500.00", "200.00", "0", "1.273115", "636.56", "partially_paid", -40, -10),
    Invoice("C", "accountant", "EUR", "250.50", "0", "0", "1.09", "273.05", "sent", -75, -45),
    Invoice("D", "employee", "GBP", "1200.00", "0", "100.00", "1.273115", "1527.74", "sent", -105, -75),
    Invoice("E", "outsider", "EUR", "80.00", "20.00", "0", "1.085432", "86.83", "partially_paid", -150, -120),
    Invoice("F", "accountant", "GBP", "100.00", "0", "0", "1.273115", "127.31", "sent", -27, 4),
    Invoice("G", "manager", "EUR", "1000.00", "0", "0", "1.085432", "1085.43", "sent", -10, 5),
    Invoice("J", "accountant", "USD", "75.00", "0", "0", "1", "75.00", "sent", 0, 88),
    Invoice("H", "outsider", "EUR", "10.00", "0", "0", "1.085432", "10.85", "sent", 0, 89),
    Invoice("P", "accountant", "EUR", "400.00", "400.00", "0", "1.085432", "434.17", "paid", -60, -30),
    Invoice("Q", "employee", "USD", "50.00", "50.00", "0", "1", "50.00", "paid", -89, -59),
    Invoice("R", "accountant", "USD", "1000.00", "1000.00", "0", "1", "1000.00", "paid", -90, -60),
    Invoice("V", "employee", "EUR", "999.00", "0", "0", "1.085432", "1084.35", "void", -5, 25),
    Invoice("X", "accountant", "EUR", "500.00", "0", "0", "1.085432", "542.72", "draft", 0, 30),
    Invoice("T", "accountant", "EUR", "777.00", "0", "0", "1.085432", "843.38", "sent", -1, -1, template=True),
    Invoice("K", "employee", "EUR", "300.00", "0", "0", "1.085432", "325.63", "approved", -80, -50),
]

# Payments (invoice, amount, days from D, rate, base at its rate, booked at the invoice's rate, difference):
#   B 200.00 GBP x 1.28 = 256.00 against 200 x 1.273115 = 254.62: +1.38
#   E 20.00 EUR x 1.10 = 22.00 against 20 x 1.085432 = 21.71: +0.29
#   P 300.00 EUR x 1.07 = 321.00 against 300 x 1.085432 = 325.63: -4.63
#   P 100.00 EUR x 1.05 = 105.00 against 108.54: -3.54, 400 days before D: outside any period holding D
#   Q 50.00 USD: no difference
PAYMENTS = [
    ("B", "200.00", 0, "1.28", "256.00", "254.62", "1.38"),
    ("E", "20.00", 0, "1.1", "22.00", "21.71", "0.29"),
    ("P", "300.00", 0, "1.07", "321.00", "325.63", "-4.63"),
    ("P", "100.00", -400, "1.05", "105.00", "108.54", "-3.54"),
    ("Q", "50.00", 0, "1", "50.00", "50.00", "0.00"),
]
CUSTOMERS = {"EUR": "Acme GmbH", "GBP": "Bolt Ltd", "USD": "=Corner Shop"}  # a name a spreadsheet would run

EVERYONE_AGING = {
    "current": ("2384.02", 5),  # A + F + G + J + H = 1085.43 + 127.31 + 1085.43 + 75.00 + 10.85
    "1-30": ("381.93", 1),
    "31-60": ("273.05", 1),
    "61-90": ("1400.43", 1),
    "over_90": ("65.13", 1),
}
TEAM_AGING = {  # manager and employee: A, B, D, G
    "current": ("2170.86", 2),
    "1-30": ("381.93", 1),
    "31-60": ("0.00", 0),
    "61-90": ("1400.43", 1),
    "over_90": ("0.00", 0),
}


@dataclass
class Book:
    day: date
    ids: dict[str, int]
    numbers: dict[str, str]


async def write_book(deps: ActivityDeps, people: People, day: date) -> Book:
    """The invoices of BOOK around `day` and their payments, as the domain's repository writes rows."""
    ids: dict[str, int] = {}
    numbers: dict[str, str] = {}
    async with deps.db.transaction() as tx:
        customers = {}
        for currency, name in CUSTOMERS.items():
            fields = {"name": name, "billing_email": "ar@example.com", "currency": currency, "payment_terms_days": 30}
            customers[currency] = (await invoices.insert_customer(tx.sql, fields, people.accountant.id)).id
        for sequence, invoice in enumerate(BOOK, start=1):
            numbered = invoice.status not in ("draft", "approved") and not invoice.template
            number = f"INV-{day.year}-{sequence:04d}" if numbered else None
            row = await invoices.insert_invoice(
                tx.sql,
                {
                    "customer_id": customers[invoice.currency],
                    "owner_id": getattr(people, invoice.owner).id,
                    "status": invoice.status,
                    "is_template": invoice.template,
                    "currency": invoice.currency,
                    "issue_date": day + timedelta(days=invoice.issued),
                    "due_date": day + timedelta(days=invoice.due),
                    "number": number,
                    "number_year": day.year if number else None,
                    "subtotal": Decimal(invoice.total),
                    "total": Decimal(invoice.total),
                    "amount_paid": Decimal(invoice.paid),
                    "amount_credited": Decimal(invoice.credited),
                    "base_currency": BASE,
                    "fx_rate": Decimal(invoice.rate),
                    "base_total": Decimal(invoice.base_total),
                },
            )
            ids[invoice.key] = row.id
            numbers[invoice.key] = number or ""
        for key, amount, offset, rate, base_amount, booked, difference in PAYMENTS:
            await tx.sql.run(
                "INSERT INTO invoice_payments (invoice_id, amount, paid_on, fx_rate, rate_source, base_amount, "
                "booked_base, fx_difference, created_by_id) VALUES (%s, %s, %s, %s, 'manual', %s, %s, %s, %s)",
                (ids[key], Decimal(amount), day + timedelta(days=offset), Decimal(rate), Decimal(base_amount),
                 Decimal(booked), Decimal(difference), people.accountant.id),
            )  # fmt: skip
    return Book(day, ids, numbers)


def figures(aging: receivables.Aging) -> dict[str, tuple[str, int]]:
    return {b.bucket: (str(b.amount), b.invoices) for b in aging.buckets}


# --- the domain's figures on a fixed day ------------------------------------------------------------------------

DAY = date(2026, 3, 18)  # a Wednesday: its ISO week (2026-W12) starts on Monday 2026-03-16


async def test_aging_dso_cash_and_fx_by_hand(people: People, activity_deps: ActivityDeps) -> None:
    await write_book(activity_deps, people, DAY)
    everyone = ReceivablesScope(people.accountant.id, True)
    team = ReceivablesScope(people.manager.id, False, (people.manager.id, people.employee.id))
    async with activity_deps.db.transaction() as tx:
        aged = await receivables.aging(tx.sql, everyone, BASE, DAY)
        assert list(figures(aged)) == ["current", "1-30", "31-60", "61-90", "over_90"]
        assert figures(aged) == EVERYONE_AGING
        assert (str(aged.total), aged.invoices) == ("4504.56", 9)
        assert (str(aged.overdue), aged.overdue_invoices) == ("2120.54", 4)  # B + C + D + E
        assert figures(await receivables.aging(tx.sql, team, BASE, DAY)) == TEAM_AGING

        # Credit sales of the 90 days 2025-12-19 .. 2026-03-18, base totals of invoices sent, partly or wholly paid:
        # A 1085.43 + B 636.56 + C 273.05 + F 127.31 + G 1085.43 + J 75.00 + H 10.85 + P 434.17 + Q 50.00 (issued
        # on the window's first day) = 3777.80. Not R (issued the day before the window), nor D and E (earlier), nor
        # the void, draft, template and approved ones. DSO = 4504.56 / 3777.80 x 90 = 107.3139 -> 107.31.
        dso = await receivables.days_sales_outstanding(tx.sql, everyone, BASE, DAY, 90, aged.total)
        assert (dso.window_start, dso.window_end) == (date(2025, 12, 19), DAY)
        assert (str(dso.credit_sales), str(dso.value)) == ("3777.80", "107.31")
        assert dso.formula == "open receivables / credit sales of the last 90 days x 90"
        # The team: 3953.22 open; sales A + B + G + Q = 2857.42; 3953.22 / 2857.42 x 90 = 124.5148 -> 124.51.
        team_dso = await receivables.days_sales_outstanding(tx.sql, team, BASE, DAY, 90, Decimal("3953.22"))
        assert (str(team_dso.credit_sales), str(team_dso.value)) == ("2857.42", "124.51")
        # No sales in a window: no figure, rather than a division by zero.
        early = await receivables.days_sales_outstanding(
            tx.sql, everyone, BASE, DAY - timedelta(days=400), 30, aged.total
        )
        assert (str(early.credit_sales), early.value) == ("0.00", None)

        # Expected cash in: 13 ISO weeks from Monday 2026-03-16 to the week of Monday 2026-06-08 (W24).
        cash = await receivables.expected_cash(tx.sql, everyone, BASE, DAY)
        weeks = [(w.starts_on, w.week, str(w.amount), w.invoices) for w in cash.weeks]
        assert len(weeks) == 13 and weeks[0][:2] == (date(2026, 3, 16), "2026-W12")
        assert weeks[-1][:2] == (date(2026, 6, 8), "2026-W24")
        assert all(w[0].isoweekday() == 1 for w in weeks)
        busy = {w[1]: w[2:] for w in weeks if w[3]}
        assert busy == {
            "2026-W12": ("1212.74", 2),  # A due on D (Wednesday) + F due Sunday 03-22: 1085.43 + 127.31
            "2026-W13": ("1085.43", 1),  # G due Monday 03-23
            "2026-W24": ("75.00", 1),  # J due Sunday 06-14, the last day of the thirteenth week
        }
        assert all(w[2] == "0.00" for w in weeks if not w[3])
        assert (str(cash.overdue), cash.overdue_invoices) == ("2120.54", 4)  # past due: not placed in this week
        assert (str(cash.later), cash.later_invoices) == ("10.85", 1)  # H due Monday 06-15, after the 13 weeks

        # Realized FX in March: gains B +1.38 and E +0.29; loss P -4.63; Q's payment has none; P's earlier one is
        # outside the period.
        fx = await receivables.fx_realized(tx.sql, everyone, BASE, date(2026, 3, 1), date(2026, 3, 31))
        assert (str(fx.gains), fx.gain_payments, str(fx.losses), fx.loss_payments) == ("1.67", 2, "-4.63", 1)
        assert str(fx.net) == "-2.96"
        whole = await receivables.fx_realized(tx.sql, everyone, BASE, DAY - timedelta(days=400), DAY)
        assert (str(whole.losses), whole.loss_payments) == ("-8.17", 2)
        team_fx = await receivables.fx_realized(tx.sql, team, BASE, date(2026, 3, 1), date(2026, 3, 31))
        assert (str(team_fx.gains), str(team_fx.losses), str(team_fx.net)) == ("1.38", "0.00", "1.38")


async def test_who_sees_which_invoices(people: People, activity_deps: ActivityDeps) -> None:
    async with activity_deps.db.transaction() as tx:
        scopes = {}
        for name in ("admin", "accountant", "manager", "employee", "peer"):
            user = await tx.session.get(User, getattr(people, name).id)
            assert user is not None
            scopes[name] = await receivables.scope_for(tx.sql, activity_deps.authorizer, user)
    assert scopes["admin"] == ReceivablesScope(people.admin.id, True)
    assert scopes["accountant"] == ReceivablesScope(people.accountant.id, True)
    assert scopes["manager"] == ReceivablesScope(
        people.manager.id, False, tuple(sorted((people.manager.id, people.employee.id)))
    )
    assert scopes["peer"] == ReceivablesScope(
        people.peer.id, False, tuple(sorted((people.peer.id, people.outsider.id)))
    )
    assert scopes["employee"] is None  # no `invoice read`


# --- the dashboard over HTTP, on today's date -------------------------------------------------------------------


async def _get(client: httpx.AsyncClient, user: TestUser, path: str) -> httpx.Response:
    return await client.get(path, headers=user.headers)


def _aging_of(block: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {b["bucket"]: (b["amount"], b["invoices"]) for b in block["aging"]}


async def test_dashboard_block_and_endpoint_by_role(
    people: People, activity_deps: ActivityDeps, client: httpx.AsyncClient
) -> None:
    today = datetime.now(UTC).date()
    await write_book(activity_deps, people, today)

    overview = (await _get(client, people.accountant, "/api/v1/dashboard/overview")).json()
    block = overview["receivables"]
    assert block["scope"] == "all" and block["as_of"] == today.isoformat()
    assert _aging_of(block) == EVERYONE_AGING
    assert (block["open"], block["open_invoices"], block["overdue"], block["overdue_invoices"]) == (
        "4504.56", 9, "2120.54", 4
    )  # fmt: skip
    assert block["dso"] == {
        "value": "107.31",
        "window_days": 90,
        "window_start": (today - timedelta(days=89)).isoformat(),
        "window_end": today.isoformat(),
        "receivables": "4504.56",
        "credit_sales": "3777.80",
        "formula": "open receivables / credit sales of the last 90 days x 90",
    }
    # This month's payments: B +1.38, E +0.29, P -4.63 (P's other one is 400 days old).
    fx = block["fx_realized"]
    assert (fx["gains"], fx["losses"], fx["net"], fx["gain_payments"], fx["loss_payments"]) == (
        "1.67", "-4.63", "-2.96", 2, 1
    )  # fmt: skip
    assert fx["start"] == today.replace(day=1).isoformat()

    detail = await _get(client, people.accountant, "/api/v1/dashboard/receivables")
    assert detail.status_code == 200, detail.text
    full = detail.json()
    assert _aging_of(full) == EVERYONE_AGING and full["base_currency"] == BASE and full["period"] == "month"
    cash = full["expected_cash"]
    monday = today - timedelta(days=today.weekday())
    assert [w["starts_on"] for w in cash["weeks"]] == [(monday + timedelta(weeks=n)).isoformat() for n in range(13)]
    assert (cash["overdue"], cash["overdue_invoices"]) == ("2120.54", 4)
    # What is not yet due is in one of the weeks or after them, all of it: A, F, G, J, H.
    placed = sum(Decimal(w["amount"]) for w in cash["weeks"]) + Decimal(cash["later"])
    assert (placed, sum(w["invoices"] for w in cash["weeks"]) + cash["later_invoices"]) == (Decimal("2384.02"), 5)
    yearly = (await _get(client, people.accountant, "/api/v1/dashboard/receivables?period=year")).json()
    assert yearly["fx_realized"]["start"] == date(today.year, 1, 1).isoformat()

    # The manager: their team's invoices only (A, B, D, G), and their team's payments (B's gain).
    mine = (await _get(client, people.manager, "/api/v1/dashboard/overview")).json()["receivables"]
    assert mine["scope"] == "team"
    assert _aging_of(mine) == TEAM_AGING
    assert (mine["open"], mine["dso"]["credit_sales"], mine["dso"]["value"]) == ("3953.22", "2857.42", "124.51")
    assert (mine["fx_realized"]["gains"], mine["fx_realized"]["losses"]) == ("1.38", "0.00")
    team_detail = (await _get(client, people.manager, "/api/v1/dashboard/receivables")).json()
    assert _aging_of(team_detail) == TEAM_AGING
    assert team_detail["expected_cash"]["overdue"] == "1782.36"  # B 381.93 + D 1400.43

    # Another manager sees only their own team's (E and H), the admin everything.
    peer = (await _get(client, people.peer, "/api/v1/dashboard/overview")).json()["receivables"]
    assert (peer["open"], peer["open_invoices"]) == ("75.98", 2)  # 65.13 + 10.85
    admin = (await _get(client, people.admin, "/api/v1/dashboard/overview")).json()["receivables"]
    assert admin["open"] == "4504.56"

    # The employee: no invoice rights, no block, and the endpoint refuses.
    employee = await _get(client, people.employee, "/api/v1/dashboard/overview")
    assert employee.status_code == 200 and employee.json()["receivables"] is None
    refused = await _get(client, people.employee, "/api/v1/dashboard/receivables")
    assert refused.status_code == 403, refused.text
    bad = await _get(client, people.accountant, "/api/v1/dashboard/receivables?period=week")
    assert bad.status_code == 422


# --- the report -------------------------------------------------------------------------------------------------


async def request_report(deps: ActivityDeps, viewer: TestUser, fmt: str, start: date, end: date, **options: Any) -> Any:
    presentation = options.pop("presentation_currency", None)
    async with deps.db.transaction() as tx:
        user = await tx.session.get(User, viewer.id)
        assert user is not None
        request = ReportRequest(
            type=ReportType.RECEIVABLES,
            format=fmt,  # type: ignore[arg-type]
            period=ReportPeriod.model_validate({"from": start.isoformat(), "to": end.isoformat()}),
            filters=ReportFilters(**options),
            presentation_currency=presentation,
        )
        return await reports.request_report(
            tx, deps.settings.reports, user, await visibility_for(tx.sql, deps.authorizer, user), request,
            AuditContext(), authorizer=deps.authorizer,
        )  # fmt: skip


def expected_rows(book: Book, keys: list[str]) -> list[list[str]]:
    """The report's rows for these open invoices, oldest due first, from BOOK by hand."""
    balances = {  # in the invoice's currency, and in USD (see BOOK's table)
        "A": ("1000.00", "1085.43"), "B": ("300.00", "381.93"), "C": ("250.50", "273.05"),
        "D": ("1100.00", "1400.43"), "E": ("60.00", "65.13"), "F": ("100.00", "127.31"),
        "G": ("1000.00", "1085.43"), "J": ("75.00", "75.00"), "H": ("10.00", "10.85"),
    }  # fmt: skip
    buckets = {"E": "over_90", "D": "61-90", "C": "31-60", "B": "1-30"}
    by_key = {invoice.key: invoice for invoice in BOOK}
    rows = []
    for key in sorted(keys, key=lambda k: by_key[k].due):
        invoice = by_key[key]
        rows.append([
            "'" + CUSTOMERS[invoice.currency] if CUSTOMERS[invoice.currency].startswith("=")
            else CUSTOMERS[invoice.currency],
            book.numbers[key],
            (book.day + timedelta(days=invoice.issued)).isoformat(),
            (book.day + timedelta(days=invoice.due)).isoformat(),
            str(max(-invoice.due, 0)),
            buckets.get(key, "current"),
            invoice.currency,
            *balances[key],
        ])  # fmt: skip
    return rows


def expected_totals(aging: dict[str, tuple[str, int]], total: str, count: int) -> list[list[str]]:
    rows = [
        [f"Total {bucket}: {n} invoice{'' if n == 1 else 's'}", "", "", "", "", bucket, "", "", amount]
        for bucket, (amount, n) in aging.items()
    ]
    return [*rows, [f"Total: {count} invoices", "", "", "", "", "", "", "", total]]


async def test_report_in_every_format(people: People, activity_deps: ActivityDeps) -> None:
    deps = activity_deps
    today = datetime.now(UTC).date()  # the generation day (the reports' time zone is UTC here)
    book = await write_book(deps, people, today)
    start = today - timedelta(days=30)

    report = await request_report(deps, people.accountant, "csv", start, today)
    assert report.scope == {"kind": "all", "viewer_id": people.accountant.id}
    stored, content, _ = await generated(deps, report.id)
    header, table = csv_table(content)
    assert header == ["Customer", "Invoice", "Issue date", "Due date", "Days overdue", "Bucket", "Currency", "Balance",
                      "Balance in USD"]  # fmt: skip
    rows = expected_rows(book, ["A", "B", "C", "D", "E", "F", "G", "J", "H"])
    assert table == rows + expected_totals(EVERYONE_AGING, "4504.56", 9)
    assert stored.rows == 9 and stored.filename == f"receivables_{start.isoformat()}_{today.isoformat()}.csv"
    sections = csv_sections(content)
    assert sections["By currency"] == [
        ["Currency", "Invoices", "Balance", "Balance in USD"],
        ["EUR", "5", "2320.50", "2519.89"],  # A, C, E, G, H
        ["GBP", "3", "1500.00", "1909.67"],  # B, D, F
        ["USD", "1", "75.00", "75.00"],  # J
    ]
    assert sections["Realized FX gains and losses"] == [
        ["Result", "Payments", "Amount in USD"],
        ["Gains", "2", "1.67"],
        ["Losses", "1", "-4.63"],
        ["Net", "3", "-2.96"],
    ]

    json_report = await request_report(deps, people.accountant, "json", start, today)
    _, json_bytes, _ = await generated(deps, json_report.id)
    document, from_json = json_table(json_bytes)
    unquoted = [[cell.removeprefix("'") for cell in row] for row in table]  # JSON has no formula to defuse
    assert from_json == unquoted
    assert document["report"]["type"] == "receivables"
    assert document["report"]["scope"] == "All invoices (organisation-wide)"
    assert today.isoformat() in document["report"]["basis"]

    xlsx_report = await request_report(deps, people.accountant, "xlsx", start, today)
    _, _, xlsx_path = await generated(deps, xlsx_report.id)
    raw, from_xlsx = xlsx_table(xlsx_path, "receivables")
    assert from_xlsx == unquoted  # a spreadsheet cell holds text as text: nothing to defuse either
    assert raw[0][4] == 120 and raw[0][8] == 65.13  # typed cells: days overdue and the base balance are numbers

    pdf_report = await request_report(deps, people.accountant, "pdf", start, today)
    _, pdf_bytes, _ = await generated(deps, pdf_report.id)
    _, text = pdf_text(pdf_bytes)
    flat = " ".join(text.split())
    assert "Receivables aging" in flat and "All invoices (organisation-wide)" in flat
    for cell in ("1085.43", "1400.43", "4504.56", "Total over_90: 1 invoice", "Realized FX gains and losses", "-2.96"):
        assert cell in flat, cell


async def test_a_managers_report_holds_their_teams_invoices(people: People, activity_deps: ActivityDeps) -> None:
    deps = activity_deps
    today = datetime.now(UTC).date()
    book = await write_book(deps, people, today)
    report = await request_report(deps, people.manager, "csv", today.replace(day=1), today)
    assert report.scope == {
        "kind": "owners", "viewer_id": people.manager.id, "owner_ids": sorted([people.manager.id, people.employee.id])
    }  # fmt: skip
    _, content, _ = await generated(deps, report.id)
    _, table = csv_table(content)
    assert table == expected_rows(book, ["A", "B", "D", "G"]) + expected_totals(TEAM_AGING, "3953.22", 4)
    assert csv_sections(content)["Realized FX gains and losses"][1:] == [
        ["Gains", "1", "1.38"],
        ["Losses", "0", "0.00"],
        ["Net", "1", "1.38"],
    ]
    # Narrowed to one owner of the team: the employee's A, B and D.
    narrowed = await request_report(deps, people.manager, "json", today.replace(day=1), today,
                                    owner_ids=[people.employee.id])  # fmt: skip
    _, json_bytes, _ = await generated(deps, narrowed.id)
    document, _ = json_table(json_bytes)
    assert [row["number"] for row in document["rows"]] == [book.numbers[k] for k in ("D", "B", "A")]
    assert document["report"]["scope"].endswith("and their team: 2 people")


async def test_report_requests_refused(people: People, activity_deps: ActivityDeps) -> None:
    deps = activity_deps
    today = datetime.now(UTC).date()
    with pytest.raises(Forbidden, match="may not read invoices"):
        await request_report(deps, people.employee, "csv", today, today)
    with pytest.raises(Forbidden, match="outside your visibility"):
        await request_report(deps, people.manager, "csv", today, today, owner_ids=[people.accountant.id])
    with pytest.raises(ValidationFailed, match="base currency only"):
        await request_report(deps, people.accountant, "csv", today, today, presentation_currency="EUR")
    with pytest.raises(ValidationFailed, match="categories"):
        await request_report(deps, people.accountant, "csv", today, today, categories=["travel"])
