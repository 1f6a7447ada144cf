"""Each format's file for the fixed month (tests/exports/month.py) is byte for byte its golden file.

The golden files were checked by eye against the formats' documentation (see each format module's docstring). After
a deliberate change of a format, rewrite them with `EXPORTS_UPDATE_GOLDEN=1 pytest tests/exports/test_golden.py`
and read the diff before committing it.
"""

from __future__ import annotations

import io
import os
from datetime import timedelta
from pathlib import Path

import pytest

from domain.exports.formats import renderer_for
from tests.exports import month

GOLDEN = Path(__file__).parent / "golden"
FILES = {
    "journal_csv": "journals_2026-03.csv",
    "xero": "xero_manual_journals_2026-03.csv",
    "quickbooks": "quickbooks_journal_entries_2026-03.csv",
    "datev": "EXTF_Buchungsstapel_2026-03.csv",
}


def golden(export_format: str) -> bytes:
    return (GOLDEN / FILES[export_format]).read_bytes()


@pytest.mark.parametrize("export_format", sorted(FILES))
def test_the_month_renders_as_its_golden_file(export_format: str) -> None:
    made = month.rendered(export_format, month.context())
    path = GOLDEN / FILES[export_format]
    if os.environ.get("EXPORTS_UPDATE_GOLDEN") == "1":
        path.write_bytes(made)
    assert made == path.read_bytes()


@pytest.mark.parametrize("export_format", sorted(FILES))
def test_rendering_depends_on_the_closing_only(export_format: str) -> None:
    """Rendered again, or a journal at a time, the bytes are the same. Another closing time changes only what a
    format takes from it: DATEV's creation stamp in its header record, and nothing in the other formats."""
    once = month.rendered(export_format, month.context())
    assert month.rendered(export_format, month.context()) == once
    out = io.BytesIO()
    renderer = renderer_for(export_format, month.context(), out)
    for journal in month.JOURNALS:
        renderer.write([journal])
    renderer.finish()
    assert out.getvalue() == once
    later = month.rendered(export_format, month.context(closed_at=month.CLOSED_AT + timedelta(days=3)))
    if export_format == "datev":
        header, rest = once.split(b"\r\n", 1)
        later_header, later_rest = later.split(b"\r\n", 1)
        assert later_rest == rest and later_header.split(b";")[5] == b"20260405081530123"
        assert (
            later_header.split(b";")[:5] + later_header.split(b";")[6:]
            == header.split(b";")[:5] + header.split(b";")[6:]
        )
    else:
        assert later == once
