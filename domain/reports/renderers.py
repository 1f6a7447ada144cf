"""Writers for each format. Rows arrive in batches and are written as they come, so memory stays flat for CSV,
XLSX (SpreadsheetML streamed into the zip) and JSON. The PDF needs the whole table for layout and is capped.

Every format prints the same Decimal values: CSV, JSON and PDF as plain decimal strings with two places, XLSX as
typed numeric cells (an XLSX number is a binary double by the file format; two-place amounts read back exactly).
"""

from __future__ import annotations

import csv
import json
import re
import textwrap
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
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
        self.writer.writerows([cell_text(columns[i], value) for i, value in enumerate(row)] for row in rows)

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


# XLSX: a workbook written directly as Office Open XML into a zip stream, rows as they come (constant memory).
# xlsxwriter spent ~95 us a ledger row in per-cell bookkeeping (100,000 rows: ~10 s); one f-string per cell here
# (~20 us a row). Values, number formats, bold totals and properties read back as they did from xlsxwriter.
_XLSX_KINDS = ("text", "money", "hours", "percent", "int", "date", "month")
_XLSX_NUMBER_FORMATS = {"text": 0, "money": 4, "hours": 2, "percent": 2, "int": 1, "date": 164, "month": 165}
_XLSX_CUSTOM_FORMATS = {164: "yyyy-mm-dd", 165: "yyyy-mm"}  # 0, 1, 2, 4: built-in General, 0, 0.00, #,##0.00
_XLSX_MAX_TEXT = 32_767  # Excel's limit for one cell
_XML_SPECIAL = re.compile(r"[&<>\x00-\x08\x0b\x0c\x0e-\x1f]|_x[0-9A-Fa-f]{4}_")
_XML_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]|_(?=x[0-9A-Fa-f]{4}_)")
_EXCEL_EPOCH = datetime(1899, 12, 31)
_NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def _xml_text(text: str) -> str:
    """Escaped for XML; control characters (and text that looks like an escape) in Excel's _xHHHH_ form."""
    if _XML_SPECIAL.search(text) is None:
        return text
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _XML_CONTROL.sub(lambda match: f"_x{ord(match.group()):04X}_", text)


def _excel_serial(value: date) -> str:
    """A date as Excel's 1900-system serial number (with the format's phantom 1900-02-29)."""
    if isinstance(value, datetime):
        delta = value.replace(tzinfo=None) - _EXCEL_EPOCH
        days: float = delta.days + delta.seconds / 86_400 + delta.microseconds / 86_400_000_000
    else:
        days = (value - _EXCEL_EPOCH.date()).days
    return repr(days + 1 if days > 59 else days)


def _style_index(kind: str, bold: bool) -> int:
    return 1 + 2 * _XLSX_KINDS.index(kind) + (1 if bold else 0)


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def _styles_xml() -> str:
    formats = "".join(
        f'<numFmt numFmtId="{number}" formatCode="{code}"/>' for number, code in _XLSX_CUSTOM_FORMATS.items()
    )
    font = '<sz val="11"/><name val="Calibri"/><family val="2"/>'
    xfs = ['<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>']
    for kind in _XLSX_KINDS:
        number = _XLSX_NUMBER_FORMATS[kind]
        for font_id in (0, 1):
            applies = (' applyNumberFormat="1"' if number else "") + (' applyFont="1"' if font_id else "")
            xfs.append(f'<xf numFmtId="{number}" fontId="{font_id}" fillId="0" borderId="0" xfId="0"{applies}/>')
    return (
        f'{_XML_HEAD}<styleSheet xmlns="{_NS_MAIN}">'
        f'<numFmts count="{len(_XLSX_CUSTOM_FORMATS)}">{formats}</numFmts>'
        f'<fonts count="2"><font>{font}</font><font><b/>{font}</font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        f'<cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        "</styleSheet>"
    )


def _sheet_head(widths: list[float]) -> str:
    cols = "".join(
        f'<col min="{index}" max="{index}" width="{width}" customWidth="1"/>'
        for index, width in enumerate(widths, start=1)
    )
    return f'{_XML_HEAD}<worksheet xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}"><cols>{cols}</cols><sheetData>'


_SHEET_TAIL = "</sheetData></worksheet>"


class XlsxRenderer:
    """Sheet "Report" is the table alone (header in row 1, typed numeric and date cells), so it reads back as
    data; sheet "About" says what it is. Written in one pass: rows go to the zip stream as they arrive."""

    def __init__(self, path: Path, meta: ReportMeta, columns: list[Column]) -> None:
        self.columns = columns
        self.letters = [_column_letter(index) for index in range(len(columns))]
        self.book = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=3)
        stamp = meta.generated_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        sheet = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
        parts = {
            "[Content_Types].xml": (
                f'{_XML_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                '<Default Extension="xml" ContentType="application/xml"/>'
                '<Override PartName="/xl/workbook.xml" '
                'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
                f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{sheet}"/>'
                f'<Override PartName="/xl/worksheets/sheet2.xml" ContentType="{sheet}"/>'
                '<Override PartName="/xl/styles.xml" '
                'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
                '<Override PartName="/docProps/core.xml" '
                'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/></Types>'
            ),
            "_rels/.rels": (
                f'{_XML_HEAD}<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                f'<Relationship Id="rId1" Type="{_NS_REL}/officeDocument" Target="xl/workbook.xml"/>'
                '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/'
                'metadata/core-properties" Target="docProps/core.xml"/></Relationships>'
            ),
            "docProps/core.xml": (
                f"{_XML_HEAD}<cp:coreProperties "
                'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
                'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
                'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
                f"<dc:title>{_xml_text(meta.title)}</dc:title><dc:subject>{_xml_text(meta.period)}</dc:subject>"
                f"<dc:description>{_xml_text(meta.basis)}</dc:description>"
                f'<dcterms:created xsi:type="dcterms:W3CDTF">{stamp}</dcterms:created>'
                f'<dcterms:modified xsi:type="dcterms:W3CDTF">{stamp}</dcterms:modified></cp:coreProperties>'
            ),
            "xl/workbook.xml": (
                f'{_XML_HEAD}<workbook xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}"><bookViews><workbookView/></bookViews>'
                '<sheets><sheet name="Report" sheetId="1" r:id="rId1"/><sheet name="About" sheetId="2" r:id="rId2"/>'
                "</sheets></workbook>"
            ),
            "xl/_rels/workbook.xml.rels": (
                f'{_XML_HEAD}<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                f'<Relationship Id="rId1" Type="{_NS_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
                f'<Relationship Id="rId2" Type="{_NS_REL}/worksheet" Target="worksheets/sheet2.xml"/>'
                f'<Relationship Id="rId3" Type="{_NS_REL}/styles" Target="styles.xml"/></Relationships>'
            ),
            "xl/styles.xml": _styles_xml(),
            "xl/worksheets/sheet2.xml": self._about_sheet(meta),
        }
        for name, text in parts.items():
            self.book.writestr(name, text)
        self.sheet = self.book.open("xl/worksheets/sheet1.xml", "w", force_zip64=True)
        widths = [float(max(10, min(60, int(column.width * 12)))) for column in columns]
        self.row = 1
        self._emit([self._row_xml([column.label for column in columns], bold=True)], head=_sheet_head(widths))

    def _about_sheet(self, meta: ReportMeta) -> str:
        facts = [
            ("Title", meta.title),
            ("Period", meta.period),
            ("Scope", meta.scope),
            ("Generated at", meta.generated_at.isoformat(timespec="seconds")),
            ("Basis", meta.basis),
            ("Currency", meta.currency),
            ("Report id", meta.report_id),
        ]
        bold, plain = _style_index("text", True), _style_index("text", False)
        rows = "".join(
            f'<row r="{number}"><c r="A{number}" s="{bold}" t="inlineStr"><is><t>{_xml_text(label)}</t></is></c>'
            f'<c r="B{number}" s="{plain}" t="inlineStr"><is><t>{_xml_text(value)}</t></is></c></row>'
            for number, (label, value) in enumerate(facts, start=1)
        )
        return _sheet_head([16.0, 80.0]) + rows + _SHEET_TAIL

    def _row_xml(self, row: Row | list[str], bold: bool = False) -> str:
        number = self.row
        self.row += 1
        cells = [f'<row r="{number}">']
        for index, value in enumerate(row):
            if value is None:
                continue
            ref = f"{self.letters[index]}{number}"
            if isinstance(value, str):
                text = _xml_text(value[:_XLSX_MAX_TEXT])
                space = ' xml:space="preserve"' if text[:1].isspace() or text[-1:].isspace() else ""
                cells.append(
                    f'<c r="{ref}" s="{_style_index("text", bold)}" t="inlineStr"><is><t{space}>{text}</t></is></c>'
                )
                continue
            style = _style_index(self.columns[index].kind, bold)
            if isinstance(value, bool):
                cells.append(f'<c r="{ref}" s="{style}" t="b"><v>{int(value)}</v></c>')
            elif isinstance(value, int):
                cells.append(f'<c r="{ref}" s="{style}"><v>{value}</v></c>')
            elif isinstance(value, Decimal):
                number_text = format(value, "f") if value.is_finite() else None
                if number_text is None:
                    cells.append(f'<c r="{ref}" s="{style}" t="inlineStr"><is><t>{value}</t></is></c>')
                else:
                    cells.append(f'<c r="{ref}" s="{style}"><v>{number_text}</v></c>')
            elif isinstance(value, date):
                cells.append(f'<c r="{ref}" s="{style}"><v>{_excel_serial(value)}</v></c>')
            else:
                text = _xml_text(str(value))
                cells.append(f'<c r="{ref}" s="{_style_index("text", bold)}" t="inlineStr"><is><t>{text}</t></is></c>')
        cells.append("</row>")
        return "".join(cells)

    def _emit(self, rows: list[str], head: str = "", tail: str = "") -> None:
        self.sheet.write((head + "".join(rows) + tail).encode("utf-8"))

    def write(self, rows: list[Row]) -> None:
        self._emit([self._row_xml(row) for row in rows])

    def finish(self, totals: list[Row], chart: Chart | None) -> None:
        self._emit([self._row_xml(row, bold=True) for row in totals], tail=_SHEET_TAIL)
        self.sheet.close()
        self.book.close()


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
