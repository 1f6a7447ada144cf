"""An admin's HTML layout for a template's PDF, rendered in Jinja2's sandbox.

The layout sees plain data only (strings, lists, dicts): `report` (title, period, scope, generated_at, basis,
currency), `columns` (key, label, kind, numeric), `rows` and `totals` (each a list of cells as text) and `records`
(each row as a dict by column key). Jinja2's `ImmutableSandboxedEnvironment` refuses attribute access outside that
(`''.__class__`, `cycler.__init__.__globals__`) with a SecurityError, and refuses to change the data. On top:
`range()` is capped, `*` and `**` may not build huge values, the output is capped, and WeasyPrint fetches nothing
but `data:` URLs (no file, no network: a layout cannot read the server's files or reach the network into the PDF).

On save a layout must compile and render sample data (422 otherwise); at run time a failure fails the report with a
clear message (the report's `error`), never the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from domain.errors import ValidationFailed
from domain.reports.datasets import Chart, Column, Row, Section
from domain.reports.renderers import PdfRenderer, Renderer, ReportMeta, cell_text, open_renderer
from domain.reports.schemas import ReportFormat

MAX_LAYOUT_CHARS = 50_000
MAX_OUTPUT_CHARS = 5_000_000
MAX_RANGE = 1_000
MAX_REPEAT = 10_000  # the longest string or list `*` may build
MAX_EXPONENT = 100


class LayoutEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def __init__(self) -> None:
        super().__init__(autoescape=True, undefined=StrictUndefined)  # an unsafe access fails, not blanks
        self.globals = {"range": _bounded_range}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(times, int):
                    if len(sequence) * times > MAX_REPEAT:
                        raise SecurityError(f"a layout may not build values longer than {MAX_REPEAT}")
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponents in a layout are at most {MAX_EXPONENT}")
        return super().call_binop(context, operator, left, right)


def _bounded_range(*arguments: int) -> range:
    numbers = range(*arguments)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"range() in a layout has at most {MAX_RANGE} items")
    return numbers


def _context(
    meta: ReportMeta, columns: Sequence[Column], rows: list[list[str]], totals: list[list[str]]
) -> dict[str, Any]:
    return {
        "report": {
            "title": meta.title,
            "period": meta.period,
            "period_from": meta.period_from.isoformat(),
            "period_to": meta.period_to.isoformat(),
            "scope": meta.scope,
            "generated_at": meta.generated_at.isoformat(timespec="seconds"),
            "basis": meta.basis,
            "currency": meta.currency,
            "currency_note": meta.currency_note,
        },
        "columns": [{"key": c.key, "label": c.label, "kind": c.kind, "numeric": c.numeric} for c in columns],
        "rows": rows,
        "totals": totals,
        "records": [{c.key: cell for c, cell in zip(columns, row, strict=True)} for row in rows],
    }


def render_layout(layout: str, context: dict[str, Any]) -> str:
    """The layout rendered on `context`; a ValidationFailed saying what went wrong when it cannot be."""
    try:
        template = LayoutEnvironment().from_string(layout)
        parts: list[str] = []
        size = 0
        for part in template.generate(context):
            size += len(part)
            if size > MAX_OUTPUT_CHARS:
                raise SecurityError(f"a layout renders at most {MAX_OUTPUT_CHARS} characters")
            parts.append(part)
        return "".join(parts)
    except SecurityError as error:
        raise ValidationFailed(
            f"the PDF layout tried something the sandbox refuses: {error}", field="layout"
        ) from error
    except TemplateError as error:
        line = getattr(error, "lineno", None)
        where = f" (line {line})" if line else ""
        raise ValidationFailed(f"the PDF layout is not a valid template{where}: {error}", field="layout") from error
    except (ArithmeticError, TypeError, ValueError, LookupError, RecursionError, MemoryError) as error:
        raise ValidationFailed(f"the PDF layout failed: {type(error).__name__}: {error}", field="layout") from error


_SAMPLE_CELLS = {"text": "Sample", "money": "1.00", "int": "1", "hours": "1.00", "date": "2024-01-01",
                 "ratio": "1.00", "percent": "1.00"}  # fmt: skip


def check_layout(layout: str, columns: Sequence[Column]) -> None:
    """A layout worth saving: within its size, compiling, and rendering a one-row sample of the template's
    `columns` (422 otherwise)."""
    if len(layout) > MAX_LAYOUT_CHARS:
        raise ValidationFailed(f"a layout is at most {MAX_LAYOUT_CHARS} characters", field="layout")
    sample = ReportMeta(
        report_id="sample",
        title="Sample",
        report_type="template",
        period_from=date(2024, 1, 1),
        period_to=date(2024, 1, 31),
        scope="sample",
        generated_at=datetime(2024, 2, 1, tzinfo=UTC),
        basis="sample",
        currency="USD",
    )
    row = [_SAMPLE_CELLS.get(column.kind, "") for column in columns]
    total = ["Total", *row[1:]]
    render_layout(layout, _context(sample, columns, [row], [total]))


def _no_fetching() -> Any:
    from weasyprint.urls import URLFetcher

    return URLFetcher(allowed_protocols=("data",), allow_redirects=False)


class LayoutPdfRenderer(PdfRenderer):
    """The PDF of a template with an admin's layout: the same rows and totals, the layout's HTML."""

    def __init__(self, path: Path, meta: ReportMeta, columns: list[Column], layout: str) -> None:
        super().__init__(path, meta, columns)
        self.layout = layout

    def html(self, totals: list[Row], chart: Chart | None, sections: Sequence[Section] = ()) -> str:
        shown = [[cell_text(self.columns[i], value) for i, value in enumerate(row)] for row in totals]
        return render_layout(self.layout, _context(self.meta, self.columns, self.rows, shown))

    def finish(self, totals: list[Row], chart: Chart | None, sections: Sequence[Section] = ()) -> None:
        from weasyprint import HTML

        HTML(string=self.html(totals, chart, sections), url_fetcher=_no_fetching()).write_pdf(str(self.path))


def renderer_for(
    format: ReportFormat, path: Path, meta: ReportMeta, columns: list[Column], layout: str | None
) -> Renderer:
    """A template's renderer: its layout for a PDF when an admin attached one, else the reports' own."""
    if format == ReportFormat.PDF and layout:
        return LayoutPdfRenderer(path, meta, columns, layout)
    return open_renderer(format, path, meta, columns)
