"""A layout's PDF, drawn in the layout's own process (layout.py). WeasyPrint is imported here, at the top: the process
imports this module before its CPU limit starts counting, so the limit is the layout's and WeasyPrint's work alone
(the import is about a second). Only the worker draws: the API, which checks layouts, never imports this module."""

from __future__ import annotations

from typing import Any

from weasyprint import HTML
from weasyprint.urls import URLFetcher

from domain.report_templates.sandbox import render_layout


def write_layout_pdf(layout: str, context: dict[str, Any], path: str) -> None:
    """Render the layout and write its PDF to `path`, fetching nothing but `data:` URLs (no file, no network)."""
    no_fetching = URLFetcher(allowed_protocols=("data",), allow_redirects=False)
    HTML(string=render_layout(layout, context), url_fetcher=no_fetching).write_pdf(path)
