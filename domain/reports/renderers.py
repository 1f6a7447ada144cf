"""Writers for each format. Rows arrive in batches and are written as they come, so memory stays flat for CSV,
XLSX (rust_xlsxwriter in constant-memory mode) and JSON. The PDF needs the whole table for layout and is capped.

Every format prints the same Decimal values: CSV, JSON and PDF as plain decimal strings with their currency's minor
units (JPY none, USD two, BHD three; an entry's original in its own currency's), XLSX as typed numeric cells with a
number format of those places (an XLSX number is a binary double by the file format; such amounts read back exactly).
A report's sections (the "By currency" subtotals) follow its table: in CSV after a blank row, in JSON under
"sections", in XLSX on a sheet of their own, in the PDF as a second table.
"""

from __future__ import annotations

import csv
import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Protocol

from core.settings import PROJECT_ROOT
from domain.errors import ValidationFailed
from domain.money import CENT, MAX_PLACES, minor_units, money_str, places_of
from domain.reports.charts import bar_chart_svg
from domain.reports.datasets import Chart, Column, Row, Section
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
    currency: str  # the currency the amounts are presented in
    base_currency: str = ""
    currency_note: str = ""  # what the amounts are (base, or converted from base at each entry's rate date)

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
        if column.kind == "amount":  # an original, already in its currency's minor units
            return format(value, "f")
        if column.kind == "money" and column.currency is not None:
            return money_str(value, column.currency)
        return format(value.quantize(CENT), "f")
    return str(value)


def _json_cell(column: Column, value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and column.kind == "int":
        return value
    return cell_text(column, value)


def _json_column(column: Column) -> dict[str, Any]:
    described: dict[str, Any] = {"key": column.key, "label": column.label, "kind": column.kind}
    if column.currency is not None:
        described["currency"] = column.currency
    return described


class Renderer(Protocol):
    def write(self, rows: list[Row]) -> None: ...
    def finish(self, totals: list[Row], chart: Chart | None, sections: Sequence[Section] = ()) -> None: ...


class CsvRenderer:
    def __init__(self, path: Path, meta: ReportMeta, columns: list[Column]) -> None:
        self.columns = columns
        self.handle: IO[str] = path.open("w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.handle)
        self.writer.writerow([column.label for column in columns])

    def write(self, rows: list[Row], columns: list[Column] | None = None) -> None:
        columns = columns or self.columns
        self.writer.writerows(
            [
                spreadsheet_text(value) if isinstance(value, str) else cell_text(columns[i], value)
                for i, value in enumerate(row)
            ]
            for row in rows
        )

    def finish(self, totals: list[Row], chart: Chart | None, sections: Sequence[Section] = ()) -> None:
        self.write(totals)
        for section in sections:  # after a blank row: the title, the header, the rows
            self.writer.writerows([[], [section.title], [column.label for column in section.columns]])
            self.write(section.rows + section.totals, section.columns)
        self.handle.close()


class JsonRenderer:
    """Streams `{"report": ..., "columns": [...], "rows": [...], "totals": [...], "sections": [...]}` row by row."""

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
            "base_currency": meta.base_currency,
            "currency_note": meta.currency_note,
        }
        described = [_json_column(c) for c in columns]
        self.handle.write('{"report": ' + json.dumps(header) + ', "columns": ' + json.dumps(described))
        self.handle.write(', "rows": [')
        self.first = True

    def _objects(self, rows: list[Row], columns: list[Column] | None = None) -> list[str]:
        columns = columns or self.columns
        return [
            json.dumps({columns[i].key: _json_cell(columns[i], value) for i, value in enumerate(row)}) for row in rows
        ]

    def write(self, rows: list[Row]) -> None:
        if not rows:
            return
        text = ",\n".join(self._objects(rows))
        self.handle.write(("\n" if self.first else ",\n") + text)
        self.first = False

    def finish(self, totals: list[Row], chart: Chart | None, sections: Sequence[Section] = ()) -> None:
        self.handle.write('\n], "totals": [' + ",\n".join(self._objects(totals)))
        described = []
        for section in sections:
            columns = [_json_column(c) for c in section.columns]
            rows = [json.loads(text) for text in self._objects(section.rows, section.columns)]
            totals_of = [json.loads(text) for text in self._objects(section.totals, section.columns)]
            described.append({"title": section.title, "columns": columns, "rows": rows, "totals": totals_of})
        self.handle.write('], "sections": ' + json.dumps(described) + "}\n")
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
    "ratio": "0.00",
    "int": "0",
    "date": "yyyy-mm-dd",
    "month": "yyyy-mm",
}
_XLSX_MAX_TEXT = 32_767  # Excel's limit for one cell, in UTF-16 code units


def _money_format(places: int) -> str:
    return "#,##0" + ("." + "0" * places if places else "")


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
        self._formats: dict[tuple[str, bool], Any] = {}
        self.bold_text = self.book.add_format().set_bold()
        self.plain = [self._format_of(column, False) for column in columns]
        self.bold = [self._format_of(column, True) or self.bold_text for column in columns]
        self.sheet = self.book.add_worksheet("Report", constant_memory=True)
        for index, column in enumerate(columns):
            self.sheet.set_column_width(index, max(10, min(60, int(column.width * 12))))
        self.row = 0
        self._write_rows([tuple(column.label for column in columns)], bold=True)
        self._about_sheet(meta)

    def _format(self, code: str, bold: bool) -> Any:
        if (code, bold) not in self._formats:
            made = self.book.add_format().set_num_format(code)
            self._formats[(code, bold)] = made.set_bold() if bold else made
        return self._formats[(code, bold)]

    def _format_of(self, column: Column, bold: bool) -> Any:
        """A column's number format: a money column's its currency's places; an original amount's by the places of
        each value (a dict by places: they differ row by row)."""
        if column.kind == "amount":
            return {places: self._format(_money_format(places), bold) for places in range(MAX_PLACES + 1)}
        if column.kind == "money" and column.currency is not None:
            return self._format(_money_format(minor_units(column.currency) or 0), bold)
        code = _XLSX_NUMBER_FORMATS.get(column.kind)
        return self._format(code, bold) if code is not None else None

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
            ("Currency", meta.currency_note or meta.currency),
            ("Base currency", meta.base_currency or meta.currency),
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
                        style = formats[index]
                        if isinstance(style, dict):  # an original amount: its own currency's places
                            style = style[min(places_of(value), MAX_PLACES)]
                        write(number, index, float(value), style)
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

    def finish(self, totals: list[Row], chart: Chart | None, sections: Sequence[Section] = ()) -> None:
        self._write_rows(totals, bold=True)
        for section in sections:
            self._section_sheet(section)
        self.book.close(str(self.path))

    def _section_sheet(self, section: Section) -> None:
        """A section on a sheet of its own, header in row 1, like the Report sheet (a few rows: no streaming)."""
        sheet = self.book.add_worksheet(section.title[:31])
        for index, column in enumerate(section.columns):
            sheet.set_column_width(index, max(10, min(60, int(column.width * 12))))
            sheet.write(0, index, column.label, self.bold_text)
        plain = [self._format_of(column, False) for column in section.columns]
        bold = [self._format_of(column, True) or self.bold_text for column in section.columns]
        for number, row in enumerate(section.rows + section.totals, start=1):
            formats = bold if number > len(section.rows) else plain
            for index, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, str):
                    sheet.write(number, index, _clipped(value), self.bold_text if formats is bold else None)
                    continue
                style = formats[index]
                if isinstance(value, Decimal):
                    if isinstance(style, dict):
                        style = style[min(places_of(value), MAX_PLACES)]
                    sheet.write(number, index, float(value), style)
                else:
                    sheet.write(number, index, value, style)


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


def _total_cells(columns: list[Column], totals: list[Row]) -> list[tuple[int, list[str]]]:
    """Totals with their label spanning the empty cells after it, so a long label never wraps in a narrow column:
    (span, [label, cells after the span])."""
    shaped = []
    for row in totals:
        texts = [cell_text(columns[i], value) for i, value in enumerate(row)]
        span = 1
        while span < len(texts) and texts[span] == "" and not columns[span].numeric:
            span += 1
        shaped.append((span, [texts[0], *texts[span:]]))
    return shaped


def make_listing(columns: list[Column], rows: list[list[str]], totals: list[Row], available: int) -> Listing:
    """A table as aligned monospaced text `available` characters wide."""
    numeric = [column.numeric for column in columns]
    labels = [column.label for column in columns]
    natural = [len(label) for label in labels]
    for row in rows:
        for index, text in enumerate(row):
            if len(text) > natural[index]:
                natural[index] = len(text)
    # Numbers and dates never wrap; a text column keeps room for its header's longest word.
    minimum = [
        n if column.numeric or column.kind in {"date", "month"} else min(n, max([6, *map(len, column.label.split())]))
        for n, column in zip(natural, columns, strict=True)
    ]
    shaped = _total_cells(columns, totals)
    for span, cells in shaped:  # a total's figures must fit their columns; its label may wrap over the span
        for index, text in zip(range(span, len(columns)), cells[1:], strict=True):
            natural[index] = max(natural[index], len(text))
            minimum[index] = max(minimum[index], len(text)) if numeric[index] else minimum[index]
    widths = column_widths(columns, natural, minimum, available)
    total_lines = []
    for span, cells in shaped:
        spanned = sum(widths[:span]) + COLUMN_GAP * (span - 1)
        total_lines.append(_line_up(cells, [spanned, *widths[span:]], [False, *numeric[span:]]))
    return Listing(
        header=_line_up(labels, widths, numeric),
        rows=[_line_up(row, widths, numeric) for row in rows],
        totals=total_lines,
        width=available,
    )


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

    def listing(self, totals: list[Row]) -> Listing:
        return make_listing(self.columns, self.rows, totals, listing_chars(self.landscape))

    def html(self, totals: list[Row], chart: Chart | None, sections: Sequence[Section] = ()) -> str:
        from jinja2 import Environment, FileSystemLoader, select_autoescape

        available = listing_chars(self.landscape)
        extra = [
            (
                section.title,
                make_listing(
                    section.columns,
                    [[cell_text(section.columns[i], v) for i, v in enumerate(row)] for row in section.rows],
                    section.totals,
                    available,
                ),
            )
            for section in sections
        ]
        environment = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(["html"]))
        return environment.get_template("report.html").render(
            meta=self.meta,
            listing=self.listing(totals),
            chart_svg=bar_chart_svg(chart) if chart is not None else None,
            sections=extra,
            landscape=self.landscape,
            font_pt=_FONT_PT[self.landscape],
            rows_per_box=ROWS_PER_BOX,
        )

    def finish(self, totals: list[Row], chart: Chart | None, sections: Sequence[Section] = ()) -> None:
        from weasyprint import HTML

        HTML(string=self.html(totals, chart, sections), base_url=str(TEMPLATES_DIR)).write_pdf(str(self.path))


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
