"""What every export format shares: the closing a file is made from, the renderer's shape, the rules every format
applies to a journal (it balances; a line with no amount carries nothing), amounts to a fixed number of places, and
the refusal of what a format cannot hold.

A file depends on the closing's journals and the settings only, never on when it is made or by whom: where a format
wants a creation time (DATEV's header) it takes the closing's `closed_at`. Two batches of one closing are
byte-identical.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import BinaryIO, ClassVar

from core.settings import ExportSettings
from domain.errors import InvalidState
from domain.ledger.repository import FrozenJournal, JournalLineRow


class ExportRefused(InvalidState):
    """The closing's journals cannot be written in this format as they are (an account DATEV cannot take, an
    amount with more places than the format holds): permanent, the batch fails with this message."""

    code = "export_refused"


@dataclass(frozen=True)
class ExportContext:
    """The closing a file is made from: its month (the first day), which closing, when it closed, the base currency
    of the journals' amounts, the export settings, and how many journals and lines it holds (known before)."""

    month: date
    closing: int
    closed_at: datetime
    base_currency: str
    settings: ExportSettings
    journals: int = 0
    lines: int = 0

    @property
    def month_label(self) -> str:
        return self.month.strftime("%Y-%m")

    @property
    def last_day(self) -> date:
        following = (self.month.replace(day=28) + timedelta(days=4)).replace(day=1)
        return following - timedelta(days=1)


class Renderer(ABC):
    """One format, written to a binary stream: `write` the journals in export order, a batch at a time, then
    `finish`. Every journal is checked to balance before any of it is written."""

    format: ClassVar[str]  # its ExportFormat value
    label: ClassVar[str]  # what its file name starts with

    def __init__(self, context: ExportContext, out: BinaryIO) -> None:
        self.context = context
        self.out = out

    @property
    def content_type(self) -> str:
        return "text/csv; charset=utf-8"

    @property
    def extension(self) -> str:
        return "csv"

    def filename(self, number: int) -> str:
        return f"{self.label}_{self.context.month_label}_export-{number}.{self.extension}"

    def write(self, journals: Sequence[FrozenJournal]) -> None:
        for journal in journals:
            balanced(journal)
            self.journal(journal)

    @abstractmethod
    def journal(self, journal: FrozenJournal) -> None:
        """Write one (balanced) journal."""

    @abstractmethod
    def finish(self) -> None:
        """Flush what is buffered; the stream stays open (the caller owns it)."""


def balanced(journal: FrozenJournal) -> None:
    """A journal's base debits equal its credits; an unbalanced one is refused (no importer takes it)."""
    debits = sum((line.debit for line in journal.lines), Decimal(0))
    credits = sum((line.credit for line in journal.lines), Decimal(0))
    if debits != credits:
        raise ExportRefused(
            f"journal {journal.number} does not balance: debits {debits} and credits {credits}",
            journal=journal.number,
        )


def with_amounts(journal: FrozenJournal) -> list[JournalLineRow]:
    """The lines that carry an amount: Xero, QuickBooks and DATEV want one on each line, and a zero line books
    nothing (our own CSV keeps every line)."""
    return [line for line in journal.lines if line.base_amount != 0]


def in_places(amount: Decimal, places: int, journal: FrozenJournal, where: str) -> str:
    """The amount with exactly `places` decimals ("12.50"), refused when that would lose a digit (a stored amount
    with more places than the format holds is not rounded behind the books' back)."""
    step = Decimal(1).scaleb(-places)
    fixed = amount.quantize(step)
    if fixed != amount:
        raise ExportRefused(
            f"journal {journal.number}: {amount} has more than {places} decimal places, which {where} cannot hold",
            journal=journal.number,
        )
    return format(fixed, "f")


def utf8_csv(out: BinaryIO) -> io.TextIOWrapper:
    """A text stream over `out` for the csv module (UTF-8 without a byte-order mark; the csv module ends rows with
    CRLF, as RFC 4180 has it)."""
    return io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)


def one_line(text: str) -> str:
    """Text on one line: line breaks and tabs (which importers read as the end of a record) become spaces."""
    return " ".join(text.split())
