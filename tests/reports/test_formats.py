"""Each report type in each format against known data: the numbers are right, and every format says the same."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from temporalio.testing import ActivityEnvironment

from activities.deps import ActivityDeps
from activities.reports import ReportActivities
from domain.audit.service import AuditContext
from domain.models import Report, User
from domain.reports import service
from domain.reports.schemas import Period, ReportFilters, ReportRequest, ReportType
from domain.users.visibility import visibility_for
from tests.reports.conftest import KnownData
from tests.reports.readback import columns_of, csv_table, json_table, pdf_text, xlsx_table


async def generate(
    deps: ActivityDeps, user_id: int, report_type: str, fmt: str, start: str = "2024-01-01", end: str = "2024-03-31"
) -> tuple[Report, bytes, Path]:
    """Request a report as `user_id` (their visibility), run the real generate activity, read the stored file."""
    async with deps.db.transaction() as tx:
        user = await tx.session.get(User, user_id)
        assert user is not None
        visibility = await visibility_for(tx.sql, deps.authorizer, user)
        request = ReportRequest(
            type=report_type,  # type: ignore[arg-type]
            format=fmt,  # type: ignore[arg-type]
            period=Period.model_validate({"from": start, "to": end}),
            filters=ReportFilters(),
        )
        report = await service.request_report(tx, deps.settings.reports, user, visibility, request, AuditContext())
    beats: list[object] = []
    environment = ActivityEnvironment()
    environment.on_heartbeat = lambda *details: beats.append(details)
    result = await environment.run(ReportActivities(deps).generate_report, str(report.id))
    assert result.status == "completed", result.error
    async with deps.db.transaction() as tx:
        stored = await tx.session.get(Report, report.id)
        assert stored is not None
    assert stored.storage_key is not None
    path = Path(deps.settings.storage.local_dir) / stored.storage_key
    return stored, path.read_bytes(), path


async def all_formats(deps: ActivityDeps, user_id: int, report_type: str) -> dict[str, object]:
    """Generate the report in every format; check the three tabular formats agree cell for cell."""
    _, csv_bytes, _ = await generate(deps, user_id, report_type, "csv")
    header, from_csv = csv_table(csv_bytes)
    _, json_bytes, _ = await generate(deps, user_id, report_type, "json")
    document, from_json = json_table(json_bytes)
    xlsx_report, _, xlsx_path = await generate(deps, user_id, report_type, "xlsx")
    raw_xlsx, from_xlsx = xlsx_table(xlsx_path, report_type)
    pdf_report, pdf_bytes, _ = await generate(deps, user_id, report_type, "pdf")
    pages, text = pdf_text(pdf_bytes)
    assert from_csv == from_json == from_xlsx, "CSV, JSON and XLSX disagree"
    assert pdf_report.content_type == "application/pdf" and pdf_report.filename.endswith(".pdf")
    assert xlsx_report.filename == f"{report_type}_2024-01-01_2024-03-31.xlsx"
    return {"header": header, "table": from_csv, "json": document, "xlsx": raw_xlsx, "pdf": text, "pages": pages}


def assert_pdf_holds(text: str, table: list[list[str]], title: str, scope: str) -> None:
    flat = " ".join(text.split())
    assert title in flat
    assert "2024-01-01 to 2024-03-31" in flat
    assert scope in flat
    assert "Generated at" in flat
    assert "Page 1 of" in flat
    for row in table:
        for cell in row:
            if cell and len(cell) < 40:
                assert cell in flat, f"{cell!r} missing from the PDF"


async def test_profit_and_loss_in_every_format(known: KnownData, reports_deps: ActivityDeps) -> None:
    out = await all_formats(reports_deps, known.admin.id, "pnl")
    assert out["header"] == ["Month", "Revenue", "Expenses", "Net"]
    assert out["table"] == [
        ["2024-01", "1000.00", "350.50", "649.50"],
        ["2024-02", "2500.25", "99.99", "2400.26"],
        ["2024-03", "400.00", "300.00", "100.00"],
        ["Total", "3900.25", "750.49", "3149.76"],
    ]
    # XLSX cells are typed: a date for the month, numbers for the money.
    first = out["xlsx"][0]  # type: ignore[index]
    assert isinstance(first[0], datetime) and first[0].date() == date(2024, 1, 1)
    assert isinstance(first[1], int | float) and isinstance(first[3], int | float)
    document = out["json"]
    assert document["report"]["basis"] == "Amounts count approved entries only."  # type: ignore[index]
    assert document["totals"][0] == {"month": "Total", "revenue": "3900.25", "expenses": "750.49", "net": "3149.76"}  # type: ignore[index]
    assert "approved entries only" in " ".join(str(out["pdf"]).split())
    assert_pdf_holds(str(out["pdf"]), out["table"], "Profit and loss by month", "All entries")  # type: ignore[arg-type]


async def test_expenses_by_category_in_every_format(known: KnownData, reports_deps: ActivityDeps) -> None:
    out = await all_formats(reports_deps, known.admin.id, "expenses_by_category")
    assert out["table"] == [
        ["Travel", "2", "500.50", "66.69"],
        ["Office", "2", "249.99", "33.31"],
        ["Total", "4", "750.49", "100.00"],
    ]
    assert_pdf_holds(str(out["pdf"]), out["table"], "Expenses by category", "All entries")  # type: ignore[arg-type]


async def test_expenses_by_owner_in_every_format(known: KnownData, reports_deps: ActivityDeps) -> None:
    out = await all_formats(reports_deps, known.admin.id, "expenses_by_owner")
    assert out["table"] == [
        ["Alice Able", known.alice.username, "2", "300.49"],
        ["Bob Baker", known.bob.username, "1", "300.00"],
        ["Carol Clark", known.carol.username, "1", "150.00"],
        ["Total", "", "4", "750.49"],
    ]
    assert_pdf_holds(str(out["pdf"]), out["table"], "Expenses by owner", "All entries")  # type: ignore[arg-type]


async def test_revenue_by_category_in_every_format(known: KnownData, reports_deps: ActivityDeps) -> None:
    out = await all_formats(reports_deps, known.admin.id, "revenue_by_category")
    assert out["table"] == [
        ["Consulting", "Acme", "1", "1000.00"],
        ["Consulting", "Globex", "1", "2500.25"],
        ["Training", "Initech", "1", "400.00"],
        ["Total", "", "3", "3900.25"],
    ]
    assert_pdf_holds(str(out["pdf"]), out["table"], "Revenue by category and source", "All entries")  # type: ignore[arg-type]


async def test_approval_aging_in_every_format(known: KnownData, reports_deps: ActivityDeps) -> None:
    out = await all_formats(reports_deps, known.admin.id, "approval_aging")
    table = out["table"]
    assert isinstance(table, list)
    # level, steps, decided, median h, p90 h, pending, oldest pending h (measured at generation time)
    assert [row[:6] for row in table] == [
        ["1", "4", "3", "6.00", "9.20", "1"],
        ["2", "1", "1", "20.00", "20.00", "0"],
        ["All levels", "5", "4", "8.00", "17.00", "1"],
    ]
    assert table[0][6] and table[1][6] == ""
    assert_pdf_holds(str(out["pdf"]), [row[:6] for row in table], "Approval aging and cycle time", "All entries")


async def test_ledger_in_every_format(known: KnownData, reports_deps: ActivityDeps) -> None:
    out = await all_formats(reports_deps, known.admin.id, "ledger")
    table = out["table"]
    assert isinstance(table, list)
    rows, totals = table[:-3], table[-3:]
    assert len(rows) == 9  # every entry in the period, whatever its status; not the April one
    assert [r[1] for r in rows] == sorted(r[1] for r in rows)
    assert {r[7] for r in rows} == {"approved", "pending", "rejected"}
    assert [(t[0], t[10]) for t in totals] == [
        ("Approved revenue", "3900.25"),
        ("Approved expenses", "750.49"),
        ("Net (approved)", "3149.76"),
    ]
    globex = next(r for r in rows if r[4] == "Globex")
    assert globex[8:11] == ["2500.25", "USD", "2500.25"]  # the original, its currency, the base amount
    assert globex[11] == (
        f"L1 approved by {known.manager.username} on 2024-02-01; L2 approved by {known.admin.username} on 2024-02-02"
    )
    pending = next(r for r in rows if r[7] == "pending")
    assert pending[11] == f"L1 pending with {known.manager.username}"
    flat = " ".join(str(out["pdf"]).split())
    for total in ("3900.25", "750.49", "3149.76", "5000.00", "Approved revenue", "Entries ledger"):
        assert total in flat


@pytest.mark.parametrize("fmt", ["csv", "pdf"])
async def test_an_empty_period_still_makes_a_report(known: KnownData, reports_deps: ActivityDeps, fmt: str) -> None:
    report, content, _ = await generate(reports_deps, known.admin.id, "pnl", fmt, "2023-01-01", "2023-01-31")
    assert report.rows == 1
    if fmt == "csv":
        assert csv_table(content)[1] == [["2023-01", "0.00", "0.00", "0.00"], ["Total", "0.00", "0.00", "0.00"]]
    else:
        assert "No approved amounts in this period." in pdf_text(content)[1]


async def test_the_generate_activity_is_idempotent_by_report_id(known: KnownData, reports_deps: ActivityDeps) -> None:
    report, _, _ = await generate(reports_deps, known.admin.id, "pnl", "csv")
    again = await ActivityEnvironment().run(ReportActivities(reports_deps).generate_report, str(report.id))
    assert again.status == "completed" and again.storage_key == report.storage_key
    files = list(reports_deps.storage.list(f"reports/{report.id}/"))
    assert [f.key for f in files] == [report.storage_key]
    with pytest.raises(Exception, match="not found"):
        await ActivityEnvironment().run(ReportActivities(reports_deps).generate_report, str(uuid.uuid4()))


NUMERIC_KINDS = {"money", "amount", "int", "percent", "hours", "ratio"}
DATE_KINDS = {"date", "month"}
# Over the entries of `known`; budget_vs_actual reads budgets and receivables invoices: tests/budgets/test_report.py
# and tests/invoices/test_receivables.py check their cells.
# Report templates have columns of their own: tests/report_templates checks theirs.
ENTRY_REPORTS = [
    t.value for t in ReportType if t not in (ReportType.BUDGET_VS_ACTUAL, ReportType.RECEIVABLES, ReportType.TEMPLATE)
]


@pytest.mark.parametrize("report_type", ENTRY_REPORTS)
async def test_xlsx_cells_are_numbers_and_dates_when_read_back(
    known: KnownData, reports_deps: ActivityDeps, report_type: str
) -> None:
    """The streamed SpreadsheetML holds typed cells, as openpyxl (what spreadsheet users' tools see) reads them:
    amounts, counts and hours are numbers, dates and months are dates, never text that looks like them."""
    report, _, path = await generate(reports_deps, known.admin.id, report_type, "xlsx")
    book = openpyxl.load_workbook(path)  # the full reader: it decides date-ness from the cell's number format
    sheet = book["Report"]
    columns = columns_of(report_type)
    assert [cell.value for cell in sheet[1]] == [column.label for column in columns]
    assert report.rows is not None and report.rows > 0
    body = list(sheet.iter_rows(min_row=2, max_row=1 + report.rows))
    totals = list(sheet.iter_rows(min_row=2 + report.rows))
    assert len(body) == report.rows and totals
    typed = set()
    for row in body:
        for column, cell in zip(columns, row, strict=True):
            if cell.value is None:
                continue
            if column.kind in NUMERIC_KINDS:
                assert cell.data_type == "n" and type(cell.value) in (int, float), (column.key, cell.value)
            elif column.kind in DATE_KINDS:
                assert cell.is_date and isinstance(cell.value, datetime), (column.key, cell.value)
            else:
                assert isinstance(cell.value, str), (column.key, cell.value)
            typed.add(column.key)
    assert typed == {column.key for column in columns}, "every column holds a value somewhere"
    for row in totals:  # the label sits in the first column; the figures beside it are numbers too
        for column, cell in list(zip(columns, row, strict=True))[1:]:
            if column.kind in NUMERIC_KINDS and cell.value is not None:
                assert type(cell.value) in (int, float), (column.key, cell.value)
    book.close()
