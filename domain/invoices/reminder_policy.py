"""The reminder policy: which reminders a sent invoice gets, when, and with which late fee (`policies/reminders.toml`,
or INVOICE_REMINDER_POLICY).

    [[steps]]
    offset_days = -3                  # days from the due date; negative: before it
    template = "invoice_due_soon"     # templates/emails/<template>.{txt,html}

    [[steps]]
    offset_days = 14
    template = "invoice_overdue"
    late_fee = { percent = "2" }      # or { fixed = "25.00" }, in the invoice's currency

Steps are listed in the order they run (by `offset_days`, each later than the one before); there may be any number
up to MAX_STEPS. The file is read when an invoice is sent and its steps are pinned in that invoice's workflow: an
edit applies to invoices sent after it. A file that does not validate is refused whole, with its line or step named,
and sending waits (the send activity retries) until it is fixed: an invoice never goes out on half a policy.

Amounts are strings or whole numbers, never TOML floats (a binary float is not an amount of money).
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

from domain.mail.rendering import TEMPLATE_DIR, has_own_pair
from domain.money import MoneyError, parse_amount
from workflows.contracts import LateFee, ReminderStep

MAX_STEPS = 20  # each step is a timer and an activity in the invoice's history; 20 keeps it small
EARLIEST_OFFSET = -365
LATEST_OFFSET = 3650
MAX_PERCENT = Decimal(100)
_STEP_KEYS = {"offset_days", "template", "late_fee"}
_FEE_KINDS = ("fixed", "percent")
_STEP_HEADER = re.compile(r"^\s*\[\[\s*steps\s*\]\]")


class ReminderPolicyError(ValueError):
    """The reminder policy does not load: the message names the file and the line or step at fault."""


def load_reminder_policy(path: Path, template_dir: Path = TEMPLATE_DIR) -> list[ReminderStep]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ReminderPolicyError(f"reminder policy {path}: cannot read it ({error.strerror})") from error
    except UnicodeDecodeError as error:
        raise ReminderPolicyError(f"reminder policy {path}: not UTF-8 text") from error
    return parse_reminder_policy(text, str(path), template_dir)


def parse_reminder_policy(
    text: str, source: str = "reminders.toml", template_dir: Path = TEMPLATE_DIR
) -> list[ReminderStep]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:  # its message says "(at line N, column M)"
        raise ReminderPolicyError(f"reminder policy {source}: {error}") from error
    unknown = set(data) - {"steps"}
    if unknown:
        raise ReminderPolicyError(f"reminder policy {source}: unknown key(s) {sorted(unknown)}; only [[steps]] is read")
    raw_steps = data.get("steps")
    if raw_steps is None:
        raise ReminderPolicyError(f"reminder policy {source}: no steps (write `steps = []` for no reminders)")
    if not isinstance(raw_steps, list) or not all(isinstance(step, dict) for step in raw_steps):
        raise ReminderPolicyError(f"reminder policy {source}: `steps` must be a list of tables ([[steps]])")
    if len(raw_steps) > MAX_STEPS:
        raise ReminderPolicyError(f"reminder policy {source}: {len(raw_steps)} steps; at most {MAX_STEPS}")
    header_lines = [number for number, line in enumerate(text.splitlines(), 1) if _STEP_HEADER.match(line)]
    steps: list[ReminderStep] = []
    for index, raw in enumerate(raw_steps, 1):
        line = f"line {header_lines[index - 1]}, " if len(header_lines) == len(raw_steps) else ""
        where = f"reminder policy {source}, {line}step {index}"
        step = _step(raw, where, template_dir)
        if steps and step.offset_days <= steps[-1].offset_days:
            raise ReminderPolicyError(
                f"{where}: offset_days {step.offset_days} is not after step {index - 1}'s {steps[-1].offset_days}; "
                "list the steps in the order they run"
            )
        steps.append(step)
    return steps


def _step(raw: dict[str, Any], where: str, template_dir: Path) -> ReminderStep:
    unknown = set(raw) - _STEP_KEYS
    if unknown:
        raise ReminderPolicyError(f"{where}: unknown key(s) {sorted(unknown)}; a step has {sorted(_STEP_KEYS)}")
    offset = raw.get("offset_days")
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise ReminderPolicyError(
            f"{where}: offset_days must be a whole number of days (negative: before the due date)"
        )
    if not EARLIEST_OFFSET <= offset <= LATEST_OFFSET:
        raise ReminderPolicyError(f"{where}: offset_days {offset} is outside {EARLIEST_OFFSET}..{LATEST_OFFSET}")
    template = raw.get("template")
    if not isinstance(template, str) or not has_own_pair(template, template_dir):
        raise ReminderPolicyError(
            f"{where}: template {template!r} is not a mail template with its own .txt and .html in {template_dir}"
        )
    fee = raw.get("late_fee")
    return ReminderStep(offset_days=offset, template=template, late_fee=None if fee is None else _fee(fee, where))


def _fee(raw: object, where: str) -> LateFee:
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in _FEE_KINDS:
        raise ReminderPolicyError(
            f'{where}: late_fee must be {{ fixed = "25.00" }} or {{ percent = "2" }}, one of them'
        )
    kind, value = next(iter(raw.items()))
    if isinstance(value, float):
        raise ReminderPolicyError(
            f'{where}: late_fee {kind} must be a string or a whole number ("{value}"), not a float'
        )
    try:
        amount = parse_amount(value)
    except MoneyError as error:
        raise ReminderPolicyError(f"{where}: late_fee {kind}: {error}") from error
    if amount <= 0:
        raise ReminderPolicyError(f"{where}: late_fee {kind} must be greater than 0")
    if kind == "percent" and amount > MAX_PERCENT:
        raise ReminderPolicyError(f"{where}: late_fee percent {amount} is more than {MAX_PERCENT}")
    return LateFee(kind=kind, amount=amount)
