"""Reports over a mixed-currency period (USD books; EUR, GBP and JPY entries with locked rates): every total is the
sum of base amounts, the By currency section the originals per currency, a presentation currency converts each
entry at its rate date, and a rate changed after submit moves nothing. Expected figures come from SQL written here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import text

from activities.deps import ActivityDeps
from domain.audit.service import AuditContext
from domain.errors import ValidationFailed
from domain.fx.rates import terms_from
from domain.models import Entry, Report, User
from domain.reports import service
from domain.reports.schemas import Period, ReportFilters, ReportRequest
from domain.users.visibility import visibility_for
from tests.conftest import MakeUser, TestUser
from tests.fx.builders import locked_entry
from tests.reports.readback import csv_sections, csv_table, generated, pdf_text

START, END = date(2024, 1, 1), date(2024, 3, 31)
COUNTED = "status = 'approved' AND entry_date BETWEEN '2024-01-01' AND '2024-03-31'"


@dataclass
class Books:
    admin: TestUser


def _entry(owner: TestUser, kind: str, currency: str, amount: str, rate: str, day: date, status: str) -> Entry:
    return locked_entry(
        owner, kind, currency, amount, rate, day, status,
        category="Travel" if kind == "expense" else "Sales",
        description=f"{currency} {amount}",
        source="Client" if kind == "revenue" else None,
        vendor="Vendor" if kind == "expense" else None,
    )  # fmt: skip


@pytest.fixture
async def books(make_user: MakeUser, reports_deps: ActivityDeps) -> Books:
    admin = await make_user("admin", email="admin@example.com")
    alice = await make_user("employee", full_name="Alice Able")
    entries = [
        _entry(alice, "revenue", "USD", "1000.00", "1", date(2024, 1, 15), "approved"),
        _entry(alice, "expense", "EUR", "200.00", "1.085", date(2024, 1, 20), "approved"),
        _entry(alice, "expense", "EUR", "45.55", "1.0911", date(2024, 2, 5), "approved"),
        _entry(alice, "expense", "GBP", "99.99", "1.27", date(2024, 2, 5), "approved"),
        _entry(alice, "expense", "JPY", "12345", "0.0067", date(2024, 3, 1), "approved"),
        _entry(alice, "revenue", "JPY", "50000", "0.0068", date(2024, 2, 10), "approved"),
        _entry(alice, "expense", "EUR", "500.00", "1.09", date(2024, 3, 2), "pending"),  # listed, not counted
    ]
    # ECB-style rates (units per EUR) for USD and GBP on every rate date: what a GBP presentation converts with.
    rates = [(day, usd, gbp) for day, usd, gbp in [
        (date(2024, 1, 15), "1.0950", "0.8601"), (date(2024, 1, 20), "1.0890", "0.8577"),
        (date(2024, 2, 5), "1.0783", "0.8552"), (date(2024, 2, 10), "1.0771", "0.8537"),
        (date(2024, 3, 1), "1.0842", "0.8563"), (date(2024, 3, 2), "1.0842", "0.8563"),
    ]]  # fmt: skip
    async with reports_deps.db.transaction() as tx:
        tx.session.add_all(entries)
        for day, usd, gbp in rates:
            for currency, rate in (("USD", usd), ("GBP", gbp)):
                await tx.session.execute(
                    text("INSERT INTO fx_rates (currency, rate_date, rate, source) VALUES (:c, :d, :r, 'ecb')"),
                    {"c": currency, "d": day, "r": Decimal(rate)},
                )
    return Books(admin)


async def generate(
    deps: ActivityDeps, user_id: int, report_type: str, fmt: str, presentation: str | None = None
) -> tuple[Report, bytes, Path]:
    async with deps.db.transaction() as tx:
        user = await tx.session.get(User, user_id)
        assert user is not None
        visibility = await visibility_for(tx.sql, deps.authorizer, user)
        request = ReportRequest(
            type=report_type,  # type: ignore[arg-type]
            format=fmt,  # type: ignore[arg-type]
            period=Period.model_validate({"from": START.isoformat(), "to": END.isoformat()}),
            filters=ReportFilters(),
            presentation_currency=presentation,
        )
        report = await service.request_report(
            tx, deps.settings.reports, user, visibility, request, AuditContext(), fx=terms_from(deps.settings)
        )
    return await generated(deps, report.id)


async def sql_rows(deps: ActivityDeps, statement: str) -> list[tuple[object, ...]]:
    async with deps.db.transaction() as tx:
        return [tuple(row) for row in await tx.session.execute(text(statement))]


def cents(value: object) -> str:
    return format(Decimal(str(value)).quantize(Decimal("0.01")), "f")


async def expected_base(deps: ActivityDeps) -> dict[str, str]:
    rows = await sql_rows(deps, f"SELECT kind, sum(base_amount) FROM entries WHERE {COUNTED} GROUP BY kind")
    return {str(kind): cents(total) for kind, total in rows}


async def expected_by_currency(deps: ActivityDeps, kind: str | None = None) -> list[list[str]]:
    where = COUNTED + (f" AND kind = '{kind}'" if kind else "")
    rows = await sql_rows(
        deps,
        "SELECT currency, kind, count(*), sum(amount), sum(base_amount) FROM entries "
        f"WHERE {where} GROUP BY currency, kind ORDER BY kind DESC, currency",
    )
    places = {"JPY": "1", "USD": "0.01", "EUR": "0.01", "GBP": "0.01"}
    return [
        [str(c), str(k), str(n), format(Decimal(str(o)).quantize(Decimal(places[str(c)])), "f"), cents(b)]
        for c, k, n, o, b in rows
    ]


async def test_pnl_totals_are_base_amounts_and_by_currency_the_originals(
    books: Books, reports_deps: ActivityDeps
) -> None:
    _, content, _ = await generate(reports_deps, books.admin.id, "pnl", "csv")
    header, table = csv_table(content)
    assert header == ["Month", "Revenue", "Expenses", "Net"]
    base = await expected_base(reports_deps)
    total = table[-1]
    assert total[:3] == ["Total", base["revenue"], base["expense"]]
    assert total[3] == cents(Decimal(base["revenue"]) - Decimal(base["expense"]))
    section = csv_sections(content)["By currency"]
    assert section[0] == ["Currency", "Kind", "Entries", "Original total", "Total in USD"]
    assert section[1:] == await expected_by_currency(reports_deps)
    assert ["JPY", "expense", "1", "12345", "82.71"] in section  # no decimals for yen


async def test_expense_reports_total_base_amounts(books: Books, reports_deps: ActivityDeps) -> None:
    base = await expected_base(reports_deps)
    for report_type, column in (("expenses_by_category", 2), ("expenses_by_owner", 3)):
        _, content, _ = await generate(reports_deps, books.admin.id, report_type, "csv")
        _, table = csv_table(content)
        assert table[-1][column] == base["expense"], report_type
        assert csv_sections(content)["By currency"][1:] == await expected_by_currency(reports_deps, "expense")


async def test_ledger_shows_original_and_base_in_every_format(books: Books, reports_deps: ActivityDeps) -> None:
    _, content, _ = await generate(reports_deps, books.admin.id, "ledger", "csv")
    header, table = csv_table(content)
    assert header[8:11] == ["Amount", "Currency", "Amount in USD"]
    rows = table[:-3]
    originals = await sql_rows(
        reports_deps,
        "SELECT amount, currency, base_amount FROM entries WHERE entry_date BETWEEN '2024-01-01' AND '2024-03-31' "
        "ORDER BY entry_date, id",
    )
    assert len(rows) == len(originals) == 7
    for row, (amount, currency, base_amount) in zip(rows, originals, strict=True):
        assert row[9] == currency
        assert Decimal(row[8]) == amount and Decimal(row[10]) == base_amount
    assert ["12345", "JPY", "82.71"] in [row[8:11] for row in rows]
    base = await expected_base(reports_deps)
    assert [t[10] for t in table[-3:]] == [
        base["revenue"],
        base["expense"],
        cents(Decimal(base["revenue"]) - Decimal(base["expense"])),
    ]

    _, _, xlsx_path = await generate(reports_deps, books.admin.id, "ledger", "xlsx")
    book = openpyxl.load_workbook(xlsx_path)
    sheet = book["Report"]
    assert [c.value for c in sheet[1]][8:11] == ["Amount", "Currency", "Amount in USD"]
    yen = next(row for row in sheet.iter_rows(min_row=2) if row[9].value == "JPY" and row[8].value == 12345)
    assert yen[8].number_format == "#,##0" and yen[10].value == pytest.approx(82.71)
    assert yen[10].number_format == "#,##0.00"
    by_currency = book["By currency"]
    assert [c.value for c in by_currency[1]] == ["Currency", "Kind", "Entries", "Original total", "Total in USD"]

    _, pdf, _ = await generate(reports_deps, books.admin.id, "ledger", "pdf")
    flat = " ".join(pdf_text(pdf)[1].split())
    assert "Amount in USD" in flat and "By currency" in flat
    assert "12345 JPY 82.71" in flat and "99.99 GBP 126.99" in flat


async def test_a_presentation_currency_converts_each_entry_at_its_rate_date(
    books: Books, reports_deps: ActivityDeps
) -> None:
    report, content, _ = await generate(reports_deps, books.admin.id, "pnl", "json", presentation="GBP")
    assert service.presentation_of(report) == "GBP"
    document = json.loads(content)
    assert document["report"]["currency"] == "GBP" and document["report"]["base_currency"] == "USD"
    assert "converted from USD at each entry's rate date (ECB rates)" in document["report"]["currency_note"]
    # Per entry: base x (GBP per EUR / USD per EUR, to 12 places), rounded half-up to pence; then summed.
    rows = await sql_rows(
        reports_deps,
        "SELECT e.kind, sum(round(e.base_amount * round(g.rate / u.rate, 12), 2)) FROM entries e "
        "JOIN fx_rates u ON u.currency = 'USD' AND u.rate_date = e.rate_date "
        "JOIN fx_rates g ON g.currency = 'GBP' AND g.rate_date = e.rate_date "
        "WHERE e.status = 'approved' AND e.entry_date BETWEEN '2024-01-01' AND '2024-03-31' GROUP BY e.kind",
    )
    expected = {str(kind): cents(total) for kind, total in rows}
    assert document["totals"][0]["revenue"] == expected["revenue"]
    assert document["totals"][0]["expenses"] == expected["expense"]
    base = await expected_base(reports_deps)
    assert expected["expense"] != base["expense"]  # a conversion happened
    section = document["sections"][0]
    assert [c["label"] for c in section["columns"]][-2:] == ["Total in USD", "Total in GBP"]
    assert sum(Decimal(r["presented_total"]) for r in section["rows"] if r["kind"] == "expense") == Decimal(
        expected["expense"]
    )

    _, pdf, _ = await generate(reports_deps, books.admin.id, "pnl", "pdf", presentation="GBP")
    assert "Amounts in GBP, converted from USD" in " ".join(pdf_text(pdf)[1].split())


async def test_a_missing_rate_refuses_the_request_naming_the_dates(books: Books, reports_deps: ActivityDeps) -> None:
    async with reports_deps.db.transaction() as tx:
        await tx.session.execute(text("DELETE FROM fx_rates WHERE currency = 'GBP' AND rate_date >= '2024-02-01'"))
    with pytest.raises(ValidationFailed, match="rate date") as refused:
        await generate(reports_deps, books.admin.id, "pnl", "csv", presentation="GBP")
    assert "2024-02-05" in refused.value.message and refused.value.details["reason"] == "rate_missing"


def test_the_presentation_currency_must_be_iso_4217() -> None:
    period = Period.model_validate({"from": "2024-01-01", "to": "2024-01-31"})
    assert ReportRequest(
        type="pnl", format="csv", period=period, presentation_currency="gbp"
    ).presentation_currency == (  # type: ignore[arg-type]
        "GBP"
    )
    with pytest.raises(ValueError, match="ISO 4217"):
        ReportRequest(type="pnl", format="csv", period=period, presentation_currency="XYZ")  # type: ignore[arg-type]


async def test_a_rate_changed_after_submit_moves_nothing(books: Books, reports_deps: ActivityDeps) -> None:
    _, before, _ = await generate(reports_deps, books.admin.id, "ledger", "csv")
    async with reports_deps.db.transaction() as tx:
        await tx.session.execute(text("UPDATE fx_rates SET rate = rate * 2"))
        await tx.session.execute(
            text("INSERT INTO fx_rates (currency, rate_date, rate, source) VALUES ('GBP', '2024-02-05', 3, 'manual')")
        )
    _, after, _ = await generate(reports_deps, books.admin.id, "ledger", "csv")
    assert csv_table(after) == csv_table(before)
    assert csv_sections(after) == csv_sections(before)
