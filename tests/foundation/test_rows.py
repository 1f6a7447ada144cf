"""The plain rows of the approval path (domain/models/rows.py) hold exactly their tables' columns: a column added
to a model and not to its row would be silently missing from every row the approval path reads."""

from __future__ import annotations

import dataclasses

import pytest

from domain.attachments.repository import AttachmentRow
from domain.models import ApprovalRequest, ApprovalStep, Attachment, Delegation, Entry
from domain.models.rows import DelegationRow, EntryRow, RequestRow, StepRow


@pytest.mark.parametrize(
    ("row_type", "model"),
    [
        (EntryRow, Entry),
        (RequestRow, ApprovalRequest),
        (StepRow, ApprovalStep),
        (DelegationRow, Delegation),
        (AttachmentRow, Attachment),
    ],
)
def test_a_row_has_its_tables_columns(row_type: type, model: type) -> None:
    fields = {field.name for field in dataclasses.fields(row_type)}
    assert fields == set(model.__table__.columns.keys())  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("values", "title"),
    [
        ({"category": "travel", "description": "taxi", "vendor": "Cabs", "source": None}, "travel: taxi (Cabs)"),
        ({"category": "sales", "description": "", "vendor": None, "source": "Acme"}, "sales (Acme)"),
        ({"category": "office", "description": "paper", "vendor": None, "source": None}, "office: paper"),
    ],
)
def test_an_entry_is_named_in_its_approval_by_category_description_and_party(values: dict, title: str) -> None:
    row = EntryRow(**{field.name: None for field in dataclasses.fields(EntryRow)} | values)
    assert row.approval_title == title
