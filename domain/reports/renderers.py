"""Writers for each format. Rows arrive in batches and are written as they come, so memory stays flat for CSV,
XLSX (rust_xlsxwriter in constant-memory mode) and JSON. The PDF needs the whole table for layout and is capped.

Every format prints the same Decimal values: CSV, JSON and PDF as plain decimal strings with two places, XLSX as
typed numeric cells (an XLSX number is a binary double by the file format; two-place amounts read back exactly).
"""

from __future__ import annotations

import csv
import json
import textwrap
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Protocol

from core.settings import PROJECT_ROOT
from domain.errors import ValidationFailed
from domain.money import CENT
from domain.reports.charts import bar_chart_svg
from domain.reports.datasets import Chart, Column, Row
from domain.reports.schemas import ReportFormat

TEMPLATES_DIR = PROJECT_ROOT / "templates" / "reports"
PDF_MAX_ROWS = 5_000  # ~8 s and ~170 MiB for the listing below; beyond this, ask for CSV or XLSX
XLSX_MAX_ROWS = 1_048_576  # one Excel sheet, header and totals included


class ReportTooLarge(ValidationFailed):
    pass


@dataclass(frozen=True)
class ReportMeta:
    report_id: str
    title: str
    report_type: str
    period_from: date
    period_to: date
    scope: str
    generated_at: datetime
    basis: str
    currency: str

    @property
    def period(self) -> str:
        return f"{self.period_from.isoformat()} to {self.period_to.isoformat()}"


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP: CSV injection).
_FORMULA_STARTS = frozenset("=+-@\t\r")


def spreadsheet_text(text: str) -> str:
    """Text as a spreadsheet should show it: text that starts like a formula (`=HYPERLINK(...)`, `+cmd`, `@SUM`,
    `-2+3`) gets a leading `'`, which spreadsheets take as "this is text" and do not display. For text only, which
    users type: a number (a P&L's -12.50) is written as it is. The one rule for every CSV export (reports, the
    audit log)."""
    return "'" + text if text[:1] in _FORMULA_STARTS else text


def cell_text(column: Column, value: Any) -> str:
    """The one text form of a cell, shared by CSV, JSON and PDF."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if column.kind == "month" and isinstance(value, date):
        return value.strftime("%Y-%m")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.quantize(CENT), "f")
    return str(value)


def _json_cell(column: Column, value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and column.kind == "int":
        return value
    return cell_text(column, value)


class Renderer(Protocol):
    def write(self, rows: list[Row]) -> None: ...
    def finish(self, totals: list[Row], chart: Chart | None) -> None: ...


class CsvRenderer:
    def __init__(self, path: Path, meta: ReportMeta, columns: list[Column]) -> None:
        self.columns = columns
        self.handle: IO[str] = path.open("w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.handle)
        self.writer.writerow([column.label for column in columns])

    def write(self, rows: list[Row]) -> None:
        columns = self.columns
        self.writer.writerows(
            [
                spreadsheet_text(value) if isinstance(value, str) else cell_text(columns[i], value)
                for i, value in enumerate(row)
            ]
            for row in rows
        )

    def finish(self, totals: list[Row], chart: Chart | None) -> None:
        self.write(totals)
        self.handle.close()


class JsonRenderer:
    """Streams `{"report": ..., "columns": [...], "rows": [...], "totals": [...]}` row by row."""

    def __init__(self, path: Path, meta: ReportMeta, columns: list[Column]) -> None:
        self.columns = columns
        self.handle: IO[str] = path.open("w", encoding="utf-8")
        header = {
            "id": meta.report_id,
            "type": meta.report_type,
            "title": meta.title,
            "period": {"from": meta.period_from.isoformat(), "to": meta.period_to.isoformat()},
            "scope": meta.scope,
            "generated_at": meta.generated_at.isoformat(),
            "basis": meta.basis,
            "currency": meta.currency,
        }
        described = [{"key": c.key, "label": c.label, "kind": c.kind} for c in columns]
        self.handle.write('{"report": ' + json.dumps(header) + ', "columns": ' + json.dumps(described))
        self.handle.write(', "rows": [')
        self.first = True

    def _objects(self, rows: list[Row]) -> list[str]:
        columns = self.columns
        return [
            json.dumps({columns[i].key: _json_cell(columns[i], value) for i, value in enumerate(row)}) for row in rows
        ]

    def write(self, rows: list[Row]) -> None:
        if not rows:
            return
        text = ",\n".join(self._objects(rows))
        self.handle.write(("\n" if self.first else ",\n") + text)
        self.first = False

    def finish(self, totals: list[Row], chart: Chart | None) -> None:
        self.handle.write('\n], "totals": [' + ",\n".join(self._objects(totals)) + "]}\n")
        self.handle.close()


# XLSX: rvgsrust-xlsxwriter, Python bindings over rust_xlsxwriter (the Rust port of xlsxwriter, by its author),
# with the Report sheet in constant-memory mode: each row goes to a temporary file as soon as the next one starts
# (about 50 bytes a row stay in memory: ~50 MiB at Excel's 1,048,576-row limit). The cell XML is built in Rust:
# ~15 us a ledger row, against ~55 us through xlsxwriter's typed calls, most of it its per-cell XML in Python
# (100,000 rows alone on the 2-core machine: ~1.6 s against 5.1-6.9 s; the whole report must stay under 5 s).
_XLSX_NUMBER_FORMATS = {
    "money": "#,##0.00",
    "hours": "0.00",
    "percent": "0.00",
    "int": "0",
    "date": "yyyy-mm-dd",
    "month": "yyyy-mm",
}
_XLSX_MAX_TEXT = 32_767  # Excel's limit for one cell, in UTF-16 code units


def _clipped(text: str) -> str:
    """`text` cut to what one cell holds (the bindings refuse longer text rather than cut it)."""
    if len(text) <= _XLSX_MAX_TEXT // 2:  # two UTF-16 units at most per character: cannot be over
        return text
    return text.encode("utf-16-le")[: 2 * _XLSX_MAX_TEXT].decode("utf-16-le", errors="ignore")


class XlsxRenderer:
    """Sheet "Report" is the table alone (header in row 1, typed numeric and date cells), so it reads back as
    data; sheet "About" says what it is. Text is always a string cell, never a formula, whatever it starts with:
    the bindings write a Python str with rust_xlsxwriter's write_string, and formulas only through write_formula."""

    def __init__(self, path: Path, meta: ReportMeta, columns: list[Column], max_rows: int = XLSX_MAX_ROWS) -> None:
        from rvgsrust_xlsxwriter import Workbook

        self.path = path
        self.max_rows = max_rows
        self.book = Workbook()
        self.book.set_tempdir(str(path.parent))
        self.book.use_zip_large_file(True)  # sizes are unknown while rows stream: allow a sheet over 4 GiB
        self.book.set_properties(title=meta.title, subject=meta.period, comments=meta.basis)
        plain = {kind: self.book.add_format().set_num_format(code) for kind, code in _XLSX_NUMBER_FORMATS.items()}
        bold = {
            kind: self.book.add_format().set_num_format(code).set_bold() for kind, code in _XLSX_NUMBER_FORMATS.items()
        }
        self.bold_text = self.book.add_format().set_bold()
        self.plain = [plain.get(column.kind) for column in columns]
        self.bold = [bold.get(column.kind, self.bold_text) for column in columns]
        self.sheet = self.book.add_worksheet("Report", constant_memory=True)
        for index, column in enumerate(columns):
            self.sheet.set_column_width(index, max(10, min(60, int(column.width * 12))))
        self.row = 0
        self._write_rows([tuple(column.label for column in columns)], bold=True)
        self._about_sheet(meta)

    def _about_sheet(self, meta: ReportMeta) -> None:
        about = self.book.add_worksheet("About")
        about.set_column_width(0, 16)
        about.set_column_width(1, 80)
        facts = [
            ("Title", meta.title),
            ("Period", meta.period),
            ("Scope", meta.scope),
            ("Generated at", meta.generated_at.isoformat(timespec="seconds")),
            ("Basis", meta.basis),
            ("Currency", meta.currency),
            ("Report id", meta.report_id),
        ]
        for number, (label, value) in enumerate(facts):
            about.write(number, 0, label, self.bold_text)
            about.write(number, 1, _clipped(value))

    def _write_rows(self, rows: list[Row], bold: bool = False) -> None:
        """The innermost loop of a 100,000-row report, most frequent type first. `write` takes a str as text, an
        int or float as a number; dates have their own calls."""
        sheet = self.sheet
        write, write_date, write_datetime = sheet.write, sheet.write_date_py, sheet.write_datetime_py
        number = self.row
        if number + len(rows) > self.max_rows:  # the bindings would refuse the row: say why, once, for good
            raise ReportTooLarge(
                f"an XLSX sheet holds at most {self.max_rows} rows; choose CSV, or a shorter period",
                max_rows=self.max_rows,
            )
        formats = self.bold if bold else self.plain
        text = self.bold_text if bold else None  # plain text needs no format: the default style
        for row in rows:
            for index, value in enumerate(row):
                if isinstance(value, str):
                    write(number, index, _clipped(value), text)
                elif value is None:
                    continue
                elif isinstance(value, Decimal):
                    if value.is_finite():
                        write(number, index, float(value), formats[index])
                    else:
                        write(number, index, str(value), text)
                elif isinstance(value, int):  # bool too: written as a boolean cell
                    write(number, index, value, formats[index])
                elif isinstance(value, datetime):  # wall-clock time: Excel has no time zones
                    write_datetime(number, index, value, formats[index])
                elif isinstance(value, date):
                    write_date(number, index, value, formats[index])
                else:
                    write(number, index, _clipped(str(value)), text)
            number += 1
        self.row = number

    def write(self, rows: list[Row]) -> None:
        self._write_rows(rows)

    def finish(self, totals: list[Row], chart: Chart | None) -> None:
        self._write_rows(totals, bold=True)
        self.book.close(str(self.path))


# The PDF table is a monospaced listing: each row is one preformatted cell whose columns are padded (and long
# texts wrapped) here, in Python. WeasyPrint's cost is per box (style, layout, drawing): a 10-column table cell per
# value cost ~10 ms a row (1,000 ledger rows: 11 s, 290 MiB). Rows go ROWS_PER_BOX to a table row (kept whole on a
# page): 1,000 rows ~2 s and ~120 MiB; one box for all rows would be slower again, relaid out on every page.
ROWS_PER_BOX = 5
MONO_ADVANCE = 0.602  # DejaVu Sans Mono's advance width in em (other monospace fonts are 0.6)
COLUMN_GAP = 2  # spaces between columns
_PAGE_WIDTH_MM = {False: 210.0 - 24.0, True: 297.0 - 24.0}  # A4 less the side margins in report.html
_FONT_PT = {False: 8.5, True: 7.5}  # portrait, landscape


@dataclass(frozen=True)
class Listing:
    """The table as text: one string per header, body and total row, columns aligned in a monospaced font."""

    header: str
    rows: list[str]
    totals: list[str]
    width: int


def listing_chars(landscape: bool) -> int:
    """How many monospaced characters fit across the page at the listing's font size."""
    width_pt = _PAGE_WIDTH_MM[landscape] / 25.4 * 72
    return int(width_pt / (_FONT_PT[landscape] * MONO_ADVANCE)) - 1


def column_widths(columns: list[Column], natural: list[int], minimum: list[int], available: int) -> list[int]:
    """Characters per column: the natural widths when they fit (spare room shared by the columns' relative widths),
    else the widest columns cut down to a common cap, never below their minimum."""
    count = len(columns)
    room = available - COLUMN_GAP * (count - 1)
    if sum(natural) <= room:
        spare = room - sum(natural)
        weight = sum(column.width for column in columns)
        widths = [n + int(spare * column.width / weight) for n, column in zip(natural, columns, strict=True)]
        return widths
    low, high = 0, max(natural)
    while low < high:  # the largest cap whose capped widths still fit
        cap = (low + high + 1) // 2
        if sum(max(m, min(n, cap)) for n, m in zip(natural, minimum, strict=True)) <= room:
            low = cap
        else:
            high = cap - 1
    widths = [max(m, min(n, low)) for n, m in zip(natural, minimum, strict=True)]
    for index in sorted(range(count), key=lambda i: natural[i] - widths[i], reverse=True):
        if sum(widths) >= room:
            break
        if widths[index] < natural[index]:
            widths[index] += 1
    return widths


def _wrap(text: str, width: int) -> list[str]:
    if len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


def _line_up(cells: list[str], widths: list[int], numeric: list[bool]) -> str:
    """One row's lines, the cells wrapped within their columns; numbers right-aligned."""
    wrapped = [_wrap(cell, width) for cell, width in zip(cells, widths, strict=True)]
    height = max(len(lines) for lines in wrapped)
    gap = " " * COLUMN_GAP
    out = []
    for line in range(height):
        parts = []
        for lines, width, right in zip(wrapped, widths, numeric, strict=True):
            text = lines[line] if line < len(lines) else ""
            parts.append(text.rjust(width) if right else text.ljust(width))
        out.append(gap.join(parts).rstrip())
    return "\n".join(out)


class PdfRenderer:
    """Jinja2 + WeasyPrint: header facts, an inline SVG chart, the table with totals, page numbers."""

    def __init__(self, path: Path, meta: ReportMeta, columns: list[Column], max_rows: int = PDF_MAX_ROWS) -> None:
        self.path = path
        self.meta = meta
        self.columns = columns
        self.max_rows = max_rows
        self.rows: list[list[str]] = []
        self.landscape = len(columns) > 6

    def write(self, rows: list[Row]) -> None:
        if len(self.rows) + len(rows) > self.max_rows:
            raise ReportTooLarge(
                f"a PDF holds at most {self.max_rows} rows; choose CSV or XLSX, or a shorter period",
                max_rows=self.max_rows,
            )
        columns = self.columns
        self.rows.extend([cell_text(columns[i], value) for i, value in enumerate(row)] for row in rows)

    def _total_cells(self, totals: list[Row]) -> list[tuple[int, list[str]]]:
        """Totals with their label spanning the empty cells after it, so a long label never wraps in a narrow
        column: (span, [label, cells after the span])."""
        shaped = []
        for row in totals:
            texts = [cell_text(self.columns[i], value) for i, value in enumerate(row)]
            span = 1
            while span < len(texts) and texts[span] == "" and not self.columns[span].numeric:
                span += 1
            shaped.append((span, [texts[0], *texts[span:]]))
        return shaped

    def listing(self, totals: list[Row]) -> Listing:
        columns = self.columns
        numeric = [column.numeric for column in columns]
        labels = [column.label for column in columns]
        natural = [len(label) for label in labels]
        for row in self.rows:
            for index, text in enumerate(row):
                if len(text) > natural[index]:
                    natural[index] = len(text)
        # Numbers and dates never wrap; a text column keeps room for its header's longest word.
        minimum = [
            n
            if column.numeric or column.kind in {"date", "month"}
            else min(n, max([6, *map(len, column.label.split())]))
            for n, column in zip(natural, columns, strict=True)
        ]
        shaped = self._total_cells(totals)
        for span, cells in shaped:  # a total's figures must fit their columns; its label may wrap over the span
            for index, text in zip(range(span, len(columns)), cells[1:], strict=True):
                natural[index] = max(natural[index], len(text))
                minimum[index] = max(minimum[index], len(text)) if numeric[index] else minimum[index]
        available = listing_chars(self.landscape)
        widths = column_widths(columns, natural, minimum, available)
        total_lines = []
        for span, cells in shaped:
            spanned = sum(widths[:span]) + COLUMN_GAP * (span - 1)
            total_lines.append(_line_up(cells, [spanned, *widths[span:]], [False, *numeric[span:]]))
        return Listing(
            header=_line_up(labels, widths, numeric),
            rows=[_line_up(row, widths, numeric) for row in self.rows],
            totals=total_lines,
            width=available,
        )

    def html(self, totals: list[Row], chart: Chart | None) -> str:
        from jinja2 import Environment, FileSystemLoader, select_autoescape

        environment = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(["html"]))
        return environment.get_template("report.html").render(
            meta=self.meta,
            listing=self.listing(totals),
            chart_svg=bar_chart_svg(chart) if chart is not None else None,
            landscape=self.landscape,
            font_pt=_FONT_PT[self.landscape],
            rows_per_box=ROWS_PER_BOX,
        )

    def finish(self, totals: list[Row], chart: Chart | None) -> None:
        from weasyprint import HTML

        HTML(string=self.html(totals, chart), base_url=str(TEMPLATES_DIR)).write_pdf(str(self.path))


def open_renderer(format: ReportFormat, path: Path, meta: ReportMeta, columns: list[Column]) -> Renderer:
    if format == ReportFormat.CSV:
        return CsvRenderer(path, meta, columns)
    if format == ReportFormat.JSON:
        return JsonRenderer(path, meta, columns)
    if format == ReportFormat.XLSX:
        return XlsxRenderer(path, meta, columns)
    return PdfRenderer(path, meta, columns)


FILE_EXTENSIONS = {
    ReportFormat.CSV: "csv",
    ReportFormat.JSON: "json",
    ReportFormat.XLSX: "xlsx",
    ReportFormat.PDF: "pdf",
}


def report_filename(report_type: str, format: ReportFormat, period_from: date, period_to: date) -> str:
    return f"{report_type}_{period_from.isoformat()}_{period_to.isoformat()}.{FILE_EXTENSIONS[format]}"
