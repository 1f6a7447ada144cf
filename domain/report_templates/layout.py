"""An admin's HTML layout for a template's PDF: what it sees, and where it runs.

The layout sees plain data only (strings, lists, dicts): `report` (title, period, scope, generated_at, basis,
currency), `columns` (key, label, kind, numeric), `rows` and `totals` (each a list of cells as text), `records`
(each row as a dict by column key) and, for a template that charts (a time bucket first), `chart` (title, labels,
series of name and points, decimal strings) and `chart_svg` (the default PDF's picture of it; empty otherwise). It
is rendered in Jinja2's immutable sandbox (sandbox.py), in a process of its own with a hard CPU limit
(REPORT_LAYOUT_CPU_SECONDS) and a memory limit: a layout that loops within the sandbox's caps is stopped there,
never the worker's process, never a hang.

On save a layout must compile and render sample data within SAMPLE_CPU_SECONDS (422 otherwise); at run time a
failure fails the report with a clear message (the report's `error`), never the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup

from core.processes import LimitExceeded, Limits, run_limited
from domain.analytics.plot import values_of
from domain.errors import ValidationFailed
from domain.report_templates.sandbox import compile_layout, try_layout
from domain.reports.charts import bar_chart_svg
from domain.reports.datasets import Chart, Column, Row, Section
from domain.reports.renderers import PdfRenderer, Renderer, ReportMeta, cell_text, open_renderer
from domain.reports.schemas import ReportFormat

MAX_LAYOUT_CHARS = 50_000
# The layout's process, WeasyPrint included: its address space (a spawned Python with Jinja2 and WeasyPrint is
# ~0.2 GiB; a 1,000-row table with a box per cell ~0.3 GiB more). Past it a render fails with MemoryError.
LAYOUT_MEMORY_BYTES = 2 * 2**30
SAMPLE_CPU_SECONDS = 2  # the one-row sample a layout is tried on when saved: Jinja2 alone, milliseconds


def _context(
    meta: ReportMeta,
    columns: Sequence[Column],
    rows: list[list[str]],
    totals: list[list[str]],
    chart: Chart | None,
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
        "chart": _chart_data(chart) if chart is not None else None,
        # The default PDF's picture: markup to print as it is; charts.py escapes every text it puts in (labels are
        # group values people typed).
        "chart_svg": Markup(bar_chart_svg(chart)) if chart is not None else "",  # noqa: S704
    }


def _chart_data(chart: Chart) -> dict[str, Any]:
    """The chart as plain data, its values decimal strings as the analytics answer them (domain/analytics/plot.py)."""
    return {
        "title": chart.title,
        "labels": list(chart.labels),
        # "points", not "values": in Jinja2 `s.values` is the dict's method, not the key.
        "series": [{"name": name, "points": values_of(values)} for name, values in chart.series],
    }


def _bounded(function: Callable[..., None], *arguments: Any, cpu_seconds: int) -> None:
    """`function(*arguments)` (one of sandbox.py's) in a process of its own under the layout's limits; a 422 (the
    report's error at run time) saying which limit stopped it."""
    try:
        run_limited(function, *arguments, limits=Limits(cpu_seconds, LAYOUT_MEMORY_BYTES))
    except LimitExceeded as error:
        raise ValidationFailed(
            f"the PDF layout was stopped: it {error}. A layout may use {cpu_seconds} s of CPU and "
            f"{LAYOUT_MEMORY_BYTES // 2**20} MiB of memory: loop less, or choose a shorter period",
            field="layout",
            cpu_seconds=cpu_seconds,
        ) from error


_SAMPLE_CELLS = {"text": "Sample", "money": "1.00", "int": "1", "hours": "1.00", "date": "2024-01-01",
                 "ratio": "1.00", "percent": "1.00"}  # fmt: skip


async def check_layout(layout: str, columns: Sequence[Column], chart: Chart | None) -> None:
    """A layout worth saving: within its size, compiling, and rendering a one-row sample of the template's
    `columns` (and its sample `chart`, when it charts) within SAMPLE_CPU_SECONDS (422 otherwise)."""
    if len(layout) > MAX_LAYOUT_CHARS:
        raise ValidationFailed(f"a layout is at most {MAX_LAYOUT_CHARS} characters", field="layout")
    compile_layout(layout)  # a broken template is refused here, without starting a process
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
    context = _context(sample, columns, [row], [total], chart)
    # In a thread: starting the process takes a second, which the API's event loop must not wait out.
    await asyncio.to_thread(_bounded, try_layout, layout, context, cpu_seconds=SAMPLE_CPU_SECONDS)


class LayoutPdfRenderer(PdfRenderer):
    """The PDF of a template with an admin's layout: the same rows and totals, the layout's HTML, drawn in a
    process of its own within `cpu_seconds` (see the module's docstring)."""

    def __init__(self, path: Path, meta: ReportMeta, columns: list[Column], layout: str, cpu_seconds: int) -> None:
        super().__init__(path, meta, columns)
        self.layout = layout
        self.cpu_seconds = cpu_seconds

    def finish(self, totals: list[Row], chart: Chart | None, sections: Sequence[Section] = ()) -> None:
        shown = [[cell_text(self.columns[i], value) for i, value in enumerate(row)] for row in totals]
        context = _context(self.meta, self.columns, self.rows, shown, chart)
        from domain.report_templates.drawing import write_layout_pdf  # WeasyPrint: the worker's, not the API's

        _bounded(write_layout_pdf, self.layout, context, str(self.path), cpu_seconds=self.cpu_seconds)


def renderer_for(
    format: ReportFormat, path: Path, meta: ReportMeta, columns: list[Column], layout: str | None, cpu_seconds: int
) -> Renderer:
    """A template's renderer: its layout for a PDF when an admin attached one (drawn within `cpu_seconds` of CPU:
    REPORT_LAYOUT_CPU_SECONDS), else the reports' own."""
    if format == ReportFormat.PDF and layout:
        return LayoutPdfRenderer(path, meta, columns, layout, cpu_seconds)
    return open_renderer(format, path, meta, columns)
