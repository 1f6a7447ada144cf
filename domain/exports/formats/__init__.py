"""The export formats, one module each: our own journal CSV, Xero's manual journal import, QuickBooks Online's
journal entry import and DATEV's booking batch. Each module's docstring says where its columns come from."""

from __future__ import annotations

from typing import BinaryIO

from domain.exports.formats.datev import DatevBuchungsstapel
from domain.exports.formats.journal_csv import JournalCsv
from domain.exports.formats.quickbooks import QuickBooksJournalEntries
from domain.exports.formats.xero import XeroManualJournals
from domain.exports.rendering import ExportContext, Renderer

RENDERERS: dict[str, type[Renderer]] = {
    renderer.format: renderer
    for renderer in (JournalCsv, XeroManualJournals, QuickBooksJournalEntries, DatevBuchungsstapel)
}


def renderer_for(export_format: str, context: ExportContext, out: BinaryIO) -> Renderer:
    """The format's renderer, writing to `out` (it writes its header at once)."""
    return RENDERERS[export_format](context, out)
