"""Running templates with the real generate activity: the numbers against SQL written here, the runner's scope, the
totals in every format, the pinned version, the admin's layout."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from activities.deps import ActivityDeps
from domain.audit.service import AuditContext
from domain.models import User
from domain.report_templates import service as templates
from domain.report_templates.schemas import ReportTemplateIn, ReportTemplatePatch
from tests.report_templates.conftest import generate, request_run, run_template, save_template
from tests.reports.conftest import KnownData, _entry
from tests.reports.readback import csv_table, pdf_text

MARGIN = {
    "dataset": "entries",
    "group_by": [{"bucket": "month"}, {"field": "category"}],
    "aggregates": [
        {"key": "amount", "label": "Amount", "function": "sum", "field": "amount"},
        {"key": "entries", "function": "count"},
    ],  # fmt: skip
    "filters": [{"field": "status", "op": "eq", "value": "approved"}],
    "comparisons": [{"kind": "prior_period", "aggregates": ["amount"]}],
    "calculated_rows": [{"key": "margin", "label": "Margin", "formula": "consulting + training - travel - office"}],
    "calculated_columns": [{"key": "change", "label": "Change", "formula": "amount - amount_prior", "kind": "money"}],
}

# The same numbers, in SQL: per month and category the approved base amounts of the month and of the month before
# (a category with amounts in either month has a row), and per month the margin over the categories.
EXPECTED_SQL = """
WITH current_months AS (
    SELECT date_trunc('month', entry_date)::date AS month, category, sum(base_amount) AS amount, count(*) AS n
    FROM entries WHERE status = 'approved' AND entry_date BETWEEN '2024-01-01' AND '2024-03-31' {scope}
    GROUP BY 1, 2
), prior_months AS (
    SELECT (date_trunc('month', entry_date) + interval '1 month')::date AS month, category, sum(base_amount) AS amount
    FROM entries WHERE status = 'approved' AND entry_date BETWEEN '2023-12-01' AND '2024-02-29' {scope}
    GROUP BY 1, 2
)
SELECT to_char(coalesce(c.month, p.month), 'YYYY-MM'), coalesce(c.category, p.category),
       coalesce(c.amount, 0), coalesce(c.n, 0), coalesce(p.amount, 0)
FROM current_months c FULL JOIN prior_months p ON p.month = c.month AND p.category = c.category
ORDER BY 1, 2
"""
SIGN = {"Consulting": 1, "Training": 1, "Travel": -1, "Office": -1}


async def _december(deps: ActivityDeps, known: KnownData) -> None:
    """Amounts in December 2023, the prior period of January; one not approved, which counts nowhere."""
    async with deps.db.transaction() as tx:
        tx.session.add_all([
            _entry(known.alice, "revenue", "800.00", date(2023, 12, 10), "Consulting", "approved", "Acme"),
            _entry(known.carol, "expense", "50.00", date(2023, 12, 20), "Office", "approved", "Desk Co"),
            _entry(known.bob, "expense", "75.25", date(2023, 12, 21), "Travel", "approved", "Taxi"),
            _entry(known.bob, "expense", "999.00", date(2023, 12, 22), "Travel", "pending", "Hotel"),
        ])  # fmt: skip


async def _expected(deps: ActivityDeps, owners: list[int] | None = None) -> list[tuple[Any, ...]]:
    scope = "" if owners is None else f"AND owner_id IN ({', '.join(str(int(o)) for o in owners)})"
    async with deps.db.transaction() as tx:
        return list((await tx.session.execute(text(EXPECTED_SQL.format(scope=scope)))).tuples())


def _money(value: Decimal) -> str:
    return format(Decimal(value).quantize(Decimal("0.01")), "f")


def _expected_document(rows: list[tuple[Any, ...]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The template's rows and totals as its JSON should hold them, built from the SQL's rows."""
    shown: list[dict[str, Any]] = []
    margins: dict[str, list[Decimal]] = {}
    by_category: dict[str, list[Decimal]] = {}
    for month in sorted({row[0] for row in rows}):
        margin = [Decimal(0), Decimal(0), Decimal(0)]  # amount, count, prior
        for _, category, amount, n, prior in (row for row in rows if row[0] == month):
            shown.append({"bucket": month, "category": category, "amount": _money(amount), "entries": n,
                          "amount_prior": _money(prior), "change": _money(amount - prior)})  # fmt: skip
            sign = SIGN[category]
            margin = [margin[0] + sign * amount, margin[1] + sign * n, margin[2] + sign * prior]
            totals = by_category.setdefault(category, [Decimal(0), Decimal(0), Decimal(0)])
            by_category[category] = [totals[0] + amount, totals[1] + n, totals[2] + prior]
        margins[month] = margin
        shown.append({"bucket": month, "category": "Margin", "amount": _money(margin[0]), "entries": int(margin[1]),
                      "amount_prior": _money(margin[2]), "change": _money(margin[0] - margin[2])})  # fmt: skip
    amount = sum((row[2] for row in rows), Decimal(0))
    prior = sum((row[4] for row in rows), Decimal(0))
    count = sum(row[3] for row in rows)
    grand = {"bucket": "Total", "category": "", "amount": _money(amount), "entries": count,
             "amount_prior": _money(prior), "change": _money(amount - prior)}  # fmt: skip
    margin = [sum(SIGN[c] * v[i] for c, v in by_category.items()) for i in range(3)]
    total_margin = {"bucket": "Margin (total)", "category": "", "amount": _money(margin[0]), "entries": int(margin[1]),
                    "amount_prior": _money(margin[2]), "change": _money(margin[0] - margin[2])}  # fmt: skip
    return shown, [grand, total_margin]


async def test_month_by_category_with_prior_period_and_margin_matches_sql(
    known: KnownData, reports_deps: ActivityDeps
) -> None:
    await _december(reports_deps, known)
    template_id = await save_template(reports_deps, known.accountant.id, MARGIN, "Margin by month")
    document = json.loads(await run_template(reports_deps, known.accountant.id, template_id, "json"))
    rows, totals = _expected_document(await _expected(reports_deps))
    assert document["rows"] == rows
    assert document["totals"] == totals
    # What the SQL says, spelled out for January: Consulting 1000.00 against December's 800.00, Travel 200.50
    # against 75.25, Office 150.00 against 50.00; margin 649.50 against 674.75.
    january = {row["category"]: row for row in document["rows"] if row["bucket"] == "2024-01"}
    assert january["Margin"]["amount"] == "649.50" and january["Margin"]["amount_prior"] == "674.75"
    assert document["report"]["title"] == "Margin by month (v1)"
    assert [c["key"] for c in document["columns"]] == [
        "bucket",
        "category",
        "amount",
        "entries",
        "amount_prior",
        "change",
    ]


async def test_a_managers_run_of_an_accountants_template_holds_only_their_subtree(
    known: KnownData, reports_deps: ActivityDeps
) -> None:
    await _december(reports_deps, known)
    template_id = await save_template(reports_deps, known.accountant.id, MARGIN, "Margin by month")
    by_owner = await save_template(
        reports_deps,
        known.accountant.id,
        {"dataset": "entries", "group_by": [{"field": "owner"}],
         "aggregates": [{"key": "amount", "function": "sum", "field": "amount"}, {"key": "n", "function": "count"}]},
        "By owner",
    )  # fmt: skip
    managed = await json_of(reports_deps, known.manager.id, template_id)
    subtree = [known.manager.id, known.alice.id, known.bob.id]
    rows, totals = _expected_document(await _expected(reports_deps, subtree))
    assert managed["rows"] == rows and managed["totals"] == totals
    assert managed["report"]["scope"].startswith("Manager")  # "<manager> and their team: 3 people"

    owners = {row["owner"] for row in (await json_of(reports_deps, known.manager.id, by_owner))["rows"]}
    everyone = {row["owner"] for row in (await json_of(reports_deps, known.accountant.id, by_owner))["rows"]}
    assert owners == {known.alice.username, known.bob.username}
    assert everyone == {known.alice.username, known.bob.username, known.carol.username}
    own = await json_of(reports_deps, known.alice.id, by_owner)
    assert {row["owner"] for row in own["rows"]} == {known.alice.username}


async def json_of(deps: ActivityDeps, runner_id: int, template_id: int, **options: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(await run_template(deps, runner_id, template_id, "json", **options))
    return document


async def test_every_format_has_the_totals_rows(known: KnownData, reports_deps: ActivityDeps, tmp_path: Any) -> None:
    template_id = await save_template(reports_deps, known.accountant.id, MARGIN, "Margin by month")
    document = await json_of(reports_deps, known.accountant.id, template_id)
    total, margin = document["totals"]
    assert total["bucket"] == "Total" and total["amount"] == "4650.74" and total["entries"] == 7
    assert margin["bucket"] == "Margin (total)" and margin["amount"] == "3149.76"  # the P&L's net for the quarter

    csv_bytes = await run_template(reports_deps, known.accountant.id, template_id, "csv")
    _, csv_rows = csv_table(csv_bytes)
    assert csv_rows[-2][:4] == ["Total", "", "4650.74", "7"]
    assert csv_rows[-1][:4] == ["Margin (total)", "", "3149.76", "-1"]  # 3 revenue entries less 4 expenses

    import openpyxl

    xlsx = tmp_path / "template.xlsx"
    xlsx.write_bytes(await run_template(reports_deps, known.accountant.id, template_id, "xlsx"))
    book = openpyxl.load_workbook(xlsx)
    sheet = book["Report"]
    last = [cell for cell in sheet[sheet.max_row]]
    before = [cell for cell in sheet[sheet.max_row - 1]]
    assert before[0].value == "Total" and before[2].value == 4650.74 and before[0].font.bold
    assert last[0].value == "Margin (total)" and last[2].value == 3149.76 and last[2].font.bold

    _, pdf = pdf_text(await run_template(reports_deps, known.accountant.id, template_id, "pdf"))
    flat = " ".join(pdf.split())
    assert "Margin by month (v1)" in flat
    assert "Total 4650.74 7" in flat and "Margin (total) 3149.76" in flat


async def test_a_listing_lists_the_chosen_columns_with_a_totals_row(
    known: KnownData, reports_deps: ActivityDeps
) -> None:
    listing = {
        "dataset": "entries",
        "columns": ["date", "category", "owner", "amount"],
        "filters": [{"field": "kind", "op": "eq", "value": "expense"},
                    {"field": "amount", "op": "gte", "param": "at_least"}],
        "parameters": [{"name": "at_least", "type": "money", "default": "0", "min": "0"}],
        "calculated_columns": [{"key": "with_tax", "formula": "round(amount * 1.2, 2)", "kind": "money"}],
    }  # fmt: skip
    template_id = await save_template(reports_deps, known.accountant.id, listing, "Expenses over")
    document = await json_of(reports_deps, known.accountant.id, template_id, parameters={"at_least": "150.00"})
    assert [(row["category"], row["amount"], row["with_tax"]) for row in document["rows"]] == [
        ("Travel", "200.50", "240.60"),
        ("Office", "150.00", "180.00"),
        ("Travel", "5000.00", "6000.00"),  # a pending one: a listing filters what its template says
        ("Travel", "300.00", "360.00"),
    ]
    assert document["totals"] == [
        {"date": "Total: 4 rows", "category": None, "owner": None, "amount": "5650.50", "with_tax": "6780.60"}
    ]
    assert "at_least = 150.00" in document["report"]["basis"]


async def test_a_run_pins_its_version_and_a_patch_makes_a_new_one(known: KnownData, reports_deps: ActivityDeps) -> None:
    template_id = await save_template(reports_deps, known.accountant.id, MARGIN, "Margin by month")
    pinned = await request_run(reports_deps, known.accountant.id, template_id, "json")
    assert pinned.filters["template"]["version"] == 1
    changed = {**MARGIN, "aggregates": [{"key": "amount", "function": "max", "field": "amount"}]}
    async with reports_deps.db.transaction() as tx:
        accountant = await tx.session.get(User, known.accountant.id)
        assert accountant is not None
        patch = ReportTemplatePatch.model_validate({"definition": changed})
        template, version = await templates.update(
            tx, reports_deps.authorizer, accountant, template_id, patch, '"1"', AuditContext()
        )
        assert (template.current_version, version.version) == (2, 2)
    # Requested before the change, generated after it: the version it pinned.
    stored, content = await generate(reports_deps, pinned.id)
    assert content is not None
    first = json.loads(content)
    assert "entries" in [c["key"] for c in first["columns"]] and first["totals"][0]["amount"] == "4650.74"
    second = await json_of(reports_deps, known.accountant.id, template_id)
    assert second["report"]["title"] == "Margin by month (v2)"
    assert "entries" not in [c["key"] for c in second["columns"]] and second["totals"][0]["amount"] == "2500.25"
    again = await json_of(reports_deps, known.accountant.id, template_id, version=1)
    assert again["totals"] == first["totals"]

    for statement in (
        "UPDATE report_template_versions SET definition = '{}'::jsonb",
        "DELETE FROM report_template_versions",
    ):
        with pytest.raises(psycopg.errors.RaiseException, match="immutable"):  # whoever writes: the trigger refuses
            async with reports_deps.db.transaction() as tx:
                await tx.sql.run(statement)


async def test_budget_and_last_year_comparisons(known: KnownData, reports_deps: ActivityDeps) -> None:
    async with reports_deps.db.transaction() as tx:
        tx.session.add(_entry(known.alice, "expense", "120.00", date(2023, 1, 15), "Travel", "approved", "Rail"))
        await tx.sql.run(
            "INSERT INTO budgets (name, category, period_kind, starts_on, policy, currency, thresholds, owner_id, "
            "created_by_id) VALUES ('Travel', 'Travel', 'month', '2024-01-01', 'warn', 'USD', '{}', %s, %s)",
            (known.accountant.id, known.accountant.id),
        )
        await tx.sql.run(
            "INSERT INTO budget_periods (budget_id, starts_on, ends_on, amount) SELECT id, d, "
            "(d + interval '1 month')::date, 250 FROM budgets, generate_series('2024-01-01'::date, '2024-03-01', "
            "'1 month') AS d"
        )
    definition = {
        "dataset": "entries",
        "group_by": [{"bucket": "month"}, {"field": "category"}],
        "aggregates": [{"key": "spent", "function": "sum", "field": "amount"}],
        "filters": [{"field": "status", "op": "eq", "value": "approved"},
                    {"field": "category", "op": "in", "value": ["Travel"]}],
        "comparisons": [{"kind": "same_period_last_year"}, {"kind": "budget"}],
        "calculated_columns": [{"key": "used", "formula": "spent / budget * 100", "kind": "percent"}],
    }  # fmt: skip
    template_id = await save_template(reports_deps, known.accountant.id, definition, "Travel against budget")
    document = await json_of(reports_deps, known.accountant.id, template_id)
    assert [(r["bucket"], r["spent"], r["spent_last_year"], r["budget"], r["used"]) for r in document["rows"]] == [
        ("2024-01", "200.50", "120.00", "250.00", "80.20"),
        ("2024-02", "0.00", "0.00", "250.00", "0.00"),  # a budget without spending still shows
        ("2024-03", "300.00", "0.00", "250.00", "120.00"),
    ]
    assert document["totals"][0]["budget"] == "750.00" and document["totals"][0]["used"] == "66.73"
    # An employee sees the budgets they may see (none here): the same spending, no budget; used is empty.
    own = await json_of(reports_deps, known.alice.id, template_id)
    assert [(r["bucket"], r["budget"], r["used"]) for r in own["rows"]] == [("2024-01", "0.00", None)]


async def test_an_admins_layout_shapes_the_pdf_and_a_failing_one_fails_the_report_cleanly(
    known: KnownData, reports_deps: ActivityDeps
) -> None:
    layout = (
        "<h1>{{ report.title }}</h1><table>{% for r in records %}<tr><td>{{ r.bucket }}</td><td>{{ r.category }}"
        "</td><td>{{ r.amount }}</td></tr>{% endfor %}{% for t in totals %}<tr><td>{{ t | join(' ') }}</td></tr>"
        "{% endfor %}</table><img src='file:///etc/hostname'>"
    )
    async with reports_deps.db.transaction() as tx:
        admin = await tx.session.get(User, known.admin.id)
        assert admin is not None
        body = ReportTemplateIn.model_validate({"name": "Laid out", "definition": MARGIN, "layout": layout})
        template, _ = await templates.create(tx, reports_deps.authorizer, admin, body, AuditContext())
        # Passes the sample at save (one row), reaches outside the sandbox on real data (several rows).
        sneaky = "{% if rows | length > 1 %}{{ ''.__class__.__mro__ }}{% endif %}"
        body = ReportTemplateIn.model_validate({"name": "Sneaky", "definition": MARGIN, "layout": sneaky})
        failing, _ = await templates.create(tx, reports_deps.authorizer, admin, body, AuditContext())
    _, text_ = pdf_text(await run_template(reports_deps, known.accountant.id, template.id, "pdf"))
    flat = " ".join(text_.split())
    assert "Laid out (v1)" in flat and "2024-01 Consulting 1000.00" in flat and "Margin (total)" in flat

    report = await request_run(reports_deps, known.accountant.id, failing.id, "pdf")
    stored, content = await generate(reports_deps, report.id)
    assert stored.status == "failed" and content is None
    assert stored.error is not None and "sandbox refuses" in stored.error and "__class__" in stored.error
    # The other formats of the same template do not use the layout.
    assert await run_template(reports_deps, known.accountant.id, failing.id, "csv")
