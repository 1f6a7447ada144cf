"""A summary template with a time bucket first charts its first aggregate by bucket in its PDF (the reports' chart),
and gives an admin's layout the same chart as plain data and as the picture; `chart: false` turns it off."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import text

from activities.deps import ActivityDeps
from domain.audit.service import AuditContext
from domain.models import User
from domain.report_templates import service as templates
from domain.report_templates.schemas import ReportTemplateIn, ReportTemplatePatch
from tests.report_templates.conftest import run_template, save_template
from tests.reports.conftest import KnownData
from tests.reports.readback import pdf_text

MONTHLY: dict[str, Any] = {
    "dataset": "entries",
    "group_by": [{"bucket": "month"}, {"field": "category"}],
    "aggregates": [{"key": "amount", "label": "Amount", "function": "sum", "field": "amount"},
                   {"key": "entries", "function": "count"}],
    "filters": [{"field": "status", "op": "eq", "value": "approved"}],
    "comparisons": [{"kind": "prior_period", "aggregates": ["amount"]}],
}  # fmt: skip

# The approved amounts of each month of the period, and of the month before each (the prior period).
MONTHS_SQL = """
SELECT to_char(m, 'YYYY-MM'),
       (SELECT coalesce(sum(base_amount), 0) FROM entries WHERE status = 'approved'
         AND entry_date >= m AND entry_date < m + interval '1 month'),
       (SELECT coalesce(sum(base_amount), 0) FROM entries WHERE status = 'approved'
         AND entry_date >= m - interval '1 month' AND entry_date < m)
FROM generate_series('2024-01-01'::date, '2024-03-01'::date, interval '1 month') AS m ORDER BY 1
"""

LAYOUT = (
    "<h1>{{ report.title }}</h1>{% if chart %}<p>{{ chart.title }}: {{ chart.labels | join(' ') }}</p>"
    "{% for s in chart.series %}<p>{{ s.name }} = {{ s.points | join(' / ') }}</p>{% endfor %}{{ chart_svg }}"
    "{% else %}<p>No chart here.</p>{% endif %}"
)


async def _months(deps: ActivityDeps) -> list[tuple[str, Decimal, Decimal]]:
    async with deps.db.transaction() as tx:
        return list((await tx.session.execute(text(MONTHS_SQL))).tuples())


def _cents(amount: Decimal) -> str:
    return format(amount.quantize(Decimal("0.01")), "f")  # USD books; the SQL's sums have NUMERIC(19, 4)'s places


def _flat(content: bytes) -> str:
    return " ".join(pdf_text(content)[1].split())


async def test_a_monthly_template_draws_its_first_aggregate_by_month_in_the_pdf(
    known: KnownData, reports_deps: ActivityDeps
) -> None:
    template_id = await save_template(reports_deps, known.accountant.id, MONTHLY, "Monthly amounts")
    shown = _flat(await run_template(reports_deps, known.accountant.id, template_id, "pdf"))
    months = await _months(reports_deps)
    # The chart (WeasyPrint writes its text after the table's): its title, a value axis up to the largest month's
    # total over its categories (no row of the table, per category, reaches it), the months, and a legend of the
    # first aggregate and its prior period (not the count: another unit).
    assert "Amount by month" in shown
    chart = shown.split("Amount by month", 1)[1]
    peak = max(max(current, prior) for _, current, prior in months)
    assert peak == Decimal("2600.24")  # February: Bob's 2500.25 and Alice's 99.99
    assert f"{peak / 1000:.1f}k" in chart  # the axis' top label, as charts.py writes thousands
    assert f"{' '.join(month for month, _, _ in months)} Amount Amount (prior period)" in chart
    assert "Count of rows" not in chart

    by_category = await save_template(
        reports_deps, known.accountant.id, {**MONTHLY, "group_by": [{"field": "category"}]}, "By category"
    )
    assert "Amount by" not in _flat(await run_template(reports_deps, known.accountant.id, by_category, "pdf"))


async def test_a_layout_gets_the_chart_as_data_and_as_the_picture_until_chart_is_turned_off(
    known: KnownData, reports_deps: ActivityDeps
) -> None:
    async with reports_deps.db.transaction() as tx:
        admin = await tx.session.get(User, known.admin.id)
        assert admin is not None
        body = ReportTemplateIn.model_validate({"name": "Charted", "definition": MONTHLY, "layout": LAYOUT})
        template, _ = await templates.create(tx, reports_deps.authorizer, admin, body, AuditContext())
    shown = _flat(await run_template(reports_deps, known.accountant.id, template.id, "pdf"))
    months = await _months(reports_deps)
    labels = " ".join(month for month, _, _ in months)
    current = " / ".join(_cents(amount) for _, amount, _ in months)
    prior = " / ".join(_cents(amount) for _, _, amount in months)
    assert f"Amount by month: {labels}" in shown
    assert f"Amount = {current}" in shown and f"Amount (prior period) = {prior}" in shown
    assert current == "1350.50 / 2600.24 / 700.00"  # what the SQL says, spelled out
    assert shown.count("Amount by month") == 2  # the layout's line, and the picture's own title

    async with reports_deps.db.transaction() as tx:
        admin = await tx.session.get(User, known.admin.id)
        assert admin is not None
        patch = ReportTemplatePatch.model_validate({"definition": {**MONTHLY, "chart": False}})
        _, version = await templates.update(
            tx, reports_deps.authorizer, admin, template.id, patch, None, AuditContext()
        )
        assert version.version == 2 and version.definition["chart"] is False and version.layout == LAYOUT
    off = _flat(await run_template(reports_deps, known.accountant.id, template.id, "pdf"))
    assert "No chart here." in off and "Amount by month" not in off
