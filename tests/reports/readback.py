"""Read a stored report back as a table of cell texts, whatever its format, so formats can be compared."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
from pypdf import PdfReader
from temporalio.testing import ActivityEnvironment

from activities.deps import ActivityDeps
from activities.reports import ReportActivities
from domain.models import Report
from domain.money import money_str
from domain.reports.datasets import DATASETS, Column, ReportQuery, ReportScope
from domain.reports.schemas import ReportType


def columns_of(report_type: str, base: str = "USD", presented: str | None = None) -> list[Column]:
    """The columns of a report of this type in USD books (presented in `presented`)."""
    kind = ReportType(report_type)
    query = ReportQuery(kind, date(2024, 1, 1), date(2024, 1, 1), ReportScope(True), base_currency=base,
                        presentation_currency=presented)  # fmt: skip
    return DATASETS[kind](query).columns


def csv_table(content: bytes) -> tuple[list[str], list[list[str]]]:
    """The main table: the header and rows up to the blank row before the sections."""
    rows = list(csv.reader(io.StringIO(content.decode("utf-8"))))
    end = rows.index([]) if [] in rows else len(rows)
    return rows[0], rows[1:end]


def csv_sections(content: bytes) -> dict[str, list[list[str]]]:
    """The sections after the main table, by title: header then rows."""
    rows = list(csv.reader(io.StringIO(content.decode("utf-8"))))
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for index, row in enumerate(rows):
        if row == []:
            current = sections.setdefault(rows[index + 1][0], [])
        elif current is not None and not (len(row) == 1 and rows[index - 1] == []):
            current.append(row)
    return sections


def json_table(content: bytes) -> tuple[dict[str, Any], list[list[str]]]:
    document = json.loads(content)

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    rows = [[text(v) for v in row.values()] for row in document["rows"] + document["totals"]]
    return document, rows


def xlsx_table(
    path: Path, report_type: str, columns: list[Column] | None = None
) -> tuple[list[list[Any]], list[list[str]]]:
    """The raw typed cells and their text; numbers are formatted like the other formats (their currency's places)."""
    book = openpyxl.load_workbook(path, read_only=True)
    sheet = book["Report"]
    raw = [list(row) for row in sheet.iter_rows(min_row=2, values_only=True)]
    columns = columns or columns_of(report_type)
    texts = []
    for row in raw:
        cells = []
        for column, value in zip(columns, row, strict=False):
            cells.append(_xlsx_text(column, value))
        cells += [""] * (len(columns) - len(cells))
        texts.append(cells)
    book.close()
    return raw, texts


def _xlsx_text(column: Column, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime | date):
        return value.strftime("%Y-%m") if column.kind == "month" else value.strftime("%Y-%m-%d")
    if column.kind == "int":
        return str(int(value))
    if column.kind == "money" and column.currency is not None:
        return money_str(Decimal(repr(value)), column.currency)
    return format(Decimal(repr(value)).quantize(Decimal("0.01")), "f")


def pdf_text(content: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(content))
    return len(reader.pages), "\n".join(page.extract_text() or "" for page in reader.pages)


async def generated(deps: ActivityDeps, report_id: int) -> tuple[Report, bytes, Path]:
    """Run the real generate activity on a requested report; the stored report, its file's bytes and path."""
    result = await ActivityEnvironment().run(ReportActivities(deps).generate_report, str(report_id))
    assert result.status == "completed", result.error
    async with deps.db.transaction() as tx:
        stored = await tx.session.get(Report, report_id)
    assert stored is not None and stored.storage_key is not None
    path = Path(deps.settings.storage.local_dir) / stored.storage_key
    return stored, path.read_bytes(), path
