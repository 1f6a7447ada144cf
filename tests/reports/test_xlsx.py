"""The XLSX renderer alone, read back with openpyxl: what a spreadsheet user opens, cell by cell."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from domain.reports.datasets import Column, Row
from domain.reports.renderers import ReportMeta, ReportTooLarge, XlsxRenderer, open_renderer
from domain.reports.schemas import ReportFormat

META = ReportMeta(
    report_id="r-1",
    title="Entries ledger",
    report_type="ledger",
    period_from=date(2024, 1, 1),
    period_to=date(2024, 3, 31),
    scope="All entries",
    generated_at=datetime(2024, 4, 1, 9, 30, tzinfo=UTC),
    basis="Amounts count approved entries only.",
    currency="USD",
)
COLUMNS = [
    Column("note", "Note", "text"),
    Column("amount", "Amount", "money"),
    Column("count", "Count", "int"),
    Column("hours", "Hours", "hours"),
    Column("share", "Share %", "percent"),
    Column("day", "Day", "date"),
    Column("month", "Month", "month"),
]
EXCEL_ESCAPE = re.compile(r"_x([0-9A-F]{4})_")


def render(tmp_path: Path, rows: list[Row], totals: list[Row]) -> openpyxl.Workbook:
    path = tmp_path / "report.xlsx"
    renderer = open_renderer(ReportFormat.XLSX, path, META, COLUMNS)
    renderer.write(rows)
    renderer.finish(totals, None)
    return openpyxl.load_workbook(path)


def shown(text: str) -> str:
    """The text Excel shows: it decodes the _xHHHH_ form that control characters are stored in (openpyxl does not)."""
    return EXCEL_ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), text)


@pytest.mark.parametrize(
    "text", ["=1+1", '=HYPERLINK("http://x","y")', "+41 22 000", "-5", "@SUM(A1:A2)", "\tindent", "\rcarriage"]
)
def test_text_that_looks_like_a_formula_stays_text(tmp_path: Path, text: str) -> None:
    book = render(tmp_path, [(text, None, None, None, None, None, None)], [])
    cell = book["Report"]["A2"]
    assert cell.data_type == "s", cell.data_type
    assert shown(cell.value) == text


def test_cells_are_typed_formatted_and_clipped(tmp_path: Path) -> None:
    long_text = "x" * 40_000
    rows: list[Row] = [
        ("a\x01b & <c>", Decimal("1234.50"), 7, Decimal("6.25"), Decimal("33.31"), date(2024, 2, 29), date(2024, 2, 1)),
        (long_text, Decimal("-0.01"), 0, None, None, datetime(2024, 3, 1, 12, 0, tzinfo=UTC), date(2024, 3, 1)),
    ]
    totals: list[Row] = [("Total", Decimal("1234.49"), 7, None, Decimal("100.00"), None, None)]
    book = render(tmp_path, rows, totals)
    sheet = book["Report"]
    header, first, second, total = (list(row) for row in sheet.iter_rows(min_row=1, max_row=4))

    assert [cell.value for cell in header] == [column.label for column in COLUMNS]
    assert all(cell.font.b for cell in header)

    assert shown(first[0].value) == "a\x01b & <c>"
    assert first[1].value == 1234.5 and first[1].number_format == "#,##0.00"
    assert first[2].value == 7 and first[2].number_format == "0"
    assert first[3].value == 6.25 and first[3].number_format == "0.00"
    assert first[4].value == 33.31 and first[4].number_format == "0.00"
    assert first[5].value == datetime(2024, 2, 29) and first[5].number_format == "yyyy-mm-dd"
    assert first[6].value == datetime(2024, 2, 1) and first[6].number_format == "yyyy-mm"
    assert not any(cell.font.b for cell in first)

    assert second[0].value == "x" * 32_767  # Excel's limit for one cell
    assert second[1].value == -0.01
    assert second[3].value is None and second[4].value is None
    assert second[5].value == datetime(2024, 3, 1, 12, 0)

    assert [cell.value for cell in total] == ["Total", 1234.49, 7, None, 100.0, None, None]
    assert all(cell.font.b for cell in total if cell.value is not None)
    assert total[1].number_format == "#,##0.00"
    assert sheet.max_row == 4


def test_text_beyond_a_cell_is_cut_at_excels_limit_in_utf16_units(tmp_path: Path) -> None:
    book = render(tmp_path, [("\U0001f4b6" * 20_000, None, None, None, None, None, None)], [])  # two units each
    assert book["Report"]["A2"].value == "\U0001f4b6" * 16_383


def test_the_workbook_says_what_it_is(tmp_path: Path) -> None:
    began = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    book = render(tmp_path, [], [("Total", Decimal("0.00"), 0, None, None, None, None)])
    assert book.sheetnames == ["Report", "About"]
    assert book.properties.title == "Entries ledger"
    assert book.properties.subject == "2024-01-01 to 2024-03-31"
    assert book.properties.description == "Amounts count approved entries only."
    assert began <= book.properties.created <= datetime.now(UTC).replace(tzinfo=None)  # when the file was written
    about = {row[0]: row[1] for row in book["About"].iter_rows(values_only=True)}
    assert about == {
        "Title": "Entries ledger",
        "Period": "2024-01-01 to 2024-03-31",
        "Scope": "All entries",
        "Generated at": "2024-04-01T09:30:00+00:00",
        "Basis": "Amounts count approved entries only.",
        "Currency": "USD",
        "Base currency": "USD",
        "Report id": "r-1",
    }
    assert book["Report"].column_dimensions["A"].width > 0


def test_rows_beyond_one_sheet_are_refused_for_good(tmp_path: Path) -> None:
    """Excel's 1,048,576 rows, lowered here: a permanent error that says what to do, not a retried crash."""
    renderer = XlsxRenderer(tmp_path / "report.xlsx", META, COLUMNS, max_rows=3)
    renderer.write([("a", None, None, None, None, None, None)])
    with pytest.raises(ReportTooLarge, match="choose CSV"):
        renderer.write([("b", None, None, None, None, None, None), ("c", None, None, None, None, None, None)])
