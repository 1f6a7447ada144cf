"""Reminders on durable timers, on the time-skipping test server with the project's workers: each step on its day at
the reminder hour, a late fee once however often its step is retried, nothing after the invoice is paid; and a
broken policy refused with its step named."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.deps import ActivityDeps
from activities.invoices import InvoiceActivities
from core.settings import Settings
from core.temporal import task_queues
from domain.audit.service import SYSTEM
from domain.invoices import numbering, service
from domain.invoices import repository as invoices
from domain.invoices.reminder_policy import ReminderPolicyError, parse_reminder_policy
from domain.invoices.schemas import CustomerCreate, InvoiceCreate
from domain.models import User
from tests.approvals.conftest import eventually, skipping  # noqa: F401 - a fixture, used by name
from tests.conftest import MakeUser
from tests.invoices.captured import HISTORIES, CapturedMail, history_of
from tests.invoices.conftest import invoice_body
from worker import build_workers, check_reminder_policy, worker_plan
from workflows.contracts import InvoiceActivity, InvoiceInput, InvoiceOutcome, RemindJob, RemindOutcome
from workflows.invoices import InvoiceWorkflow

HOUR_UTC = 9
# One step before the due date, three after; a percent fee on the third (the one retried), a fixed fee on the fourth.
POLICY = """
[[steps]]
offset_days = -3
template = "invoice_due_soon"

[[steps]]
offset_days = 1
template = "invoice_overdue"

[[steps]]
offset_days = 8
template = "invoice_overdue"
late_fee = { percent = "2" }

[[steps]]
offset_days = 20
template = "invoice_final_notice"
late_fee = { fixed = "40" }
"""
OFFSETS = [-3, 1, 8, 20]
RETRIED_STEP = 3


class FailsOnceAfterCommit:
    """The remind activity, except that the first attempt of RETRIED_STEP fails after its transaction committed (a
    worker that lost its answer): Temporal retries it."""

    def __init__(self, real: InvoiceActivities) -> None:
        self.real = real
        self.attempts: list[int] = []

    @activity.defn(name=InvoiceActivity.REMIND)
    async def remind(self, job: RemindJob) -> RemindOutcome:
        outcome = await self.real.remind(job)
        if job.step == RETRIED_STEP:
            self.attempts.append(activity.info().attempt)
            if activity.info().attempt == 1:
                raise RuntimeError("the answer was lost after the commit")
        return outcome


@dataclass
class Stack:
    env: WorkflowEnvironment
    deps: ActivityDeps
    mail: CapturedMail
    remind: FailsOnceAfterCommit

    @property
    def client(self) -> Client:
        return self.env.client


@pytest.fixture
async def stack(
    skipping: WorkflowEnvironment,  # noqa: F811 - the fixture
    activity_deps: ActivityDeps,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    """The project's workers (worker_plan) on the time-skipping server, with the 4-step policy and a captured mail."""
    policy = tmp_path / "reminders.toml"
    policy.write_text(POLICY)
    settings = activity_deps.settings
    settings = settings.model_copy(
        update={"invoices": settings.invoices.model_copy(update={"reminder_policy": policy, "reminder_hour_utc": 9})}
    )
    mail = CapturedMail()
    deps = replace(activity_deps, settings=settings, mail=mail)
    plans = worker_plan(deps)
    flaky: FailsOnceAfterCommit | None = None
    for plan in plans:
        for index, function in enumerate(plan.activities):
            if getattr(function, "__func__", None) is InvoiceActivities.remind:
                flaky = FailsOnceAfterCommit(function.__self__)  # type: ignore[attr-defined]
                plan.activities[index] = flaky.remind
    assert flaky is not None, "worker_plan registers the remind activity"
    workers = build_workers(skipping.client, plans)
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    yield Stack(skipping, deps, mail, flaky)
    await asyncio.gather(*(worker.shutdown() for worker in workers))
    await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class Issued:
    id: int
    number: str
    email: str
    due_date: date
    total: Decimal


async def issue_invoice(stack: Stack, make_user: MakeUser, due_in_days: int = 10) -> Issued:
    """An approved, numbered invoice (the approval itself is test_approval's), due `due_in_days` after the test
    server's today; its total is 1,508.50 USD."""
    accountant = await make_user("accountant")
    today = (await stack.env.get_current_time()).date()
    email = f"ap-{accountant.id}@initech.example"
    async with stack.deps.db.transaction() as tx:
        owner = await tx.session.get(User, accountant.id)
        assert owner is not None
        customer = await service.create_customer(
            tx, owner, CustomerCreate(name="Initech LLC", billing_email=email, currency="USD"), SYSTEM
        )
        body = InvoiceCreate.model_validate(
            invoice_body(
                customer.id, issue_date=today.isoformat(), due_date=(today + timedelta(days=due_in_days)).isoformat()
            )
        )
        draft = await service.create_draft(tx.sql, owner, body, SYSTEM)
        number = await numbering.next_number(tx.sql, numbering.INVOICE, today.year)
        row = await invoices.update_invoice(
            tx.sql, draft.id, {"status": "approved", "approved_at": datetime.now(UTC), "number": number,
                               "number_year": today.year}
        )  # fmt: skip
    return Issued(row.id, number, email, row.due_date, row.total)


async def start(stack: Stack, invoice: Issued) -> WorkflowHandle[Any, InvoiceOutcome]:
    return await stack.client.start_workflow(
        InvoiceWorkflow.run,
        InvoiceInput(invoice_id=invoice.id, number=invoice.number),
        id=f"invoice-{invoice.id}",
        task_queue=task_queues(stack.deps.settings.temporal).approvals,
    )


async def status_of(stack: Stack, invoice_id: int) -> str:
    async with stack.deps.db.transaction() as tx:
        return str(await tx.sql.scalar("SELECT status FROM invoices WHERE id = %s", (invoice_id,)))


async def wait_sent(stack: Stack, handle: WorkflowHandle[Any, InvoiceOutcome], invoice: Issued) -> None:
    """Until the send activity has answered (a payment before that is one the send itself finds)."""

    async def sent() -> bool:
        described = await handle.describe()
        return not described.raw_description.pending_activities and await status_of(stack, invoice.id) == "sent"

    assert await eventually(sent, seconds=30)


async def pay(stack: Stack, invoice_id: int) -> None:
    """What the payments API does to a fully paid invoice (built elsewhere), done directly."""
    async with stack.deps.db.transaction() as tx:
        await tx.sql.run(
            "UPDATE invoices SET status = 'paid', amount_paid = total, paid_at = now() WHERE id = %s", (invoice_id,)
        )


async def rows(stack: Stack, query: str, invoice_id: int) -> list[tuple[Any, ...]]:
    async with stack.deps.db.transaction() as tx:
        return await tx.sql.all(query, (invoice_id,))


def step_time(due: date, offset: int) -> datetime:
    return datetime.combine(due + timedelta(days=offset), time(HOUR_UTC), tzinfo=UTC)


async def test_reminders_on_their_days_and_a_late_fee_once(stack: Stack, make_user: MakeUser) -> None:
    invoice = await issue_invoice(stack, make_user)
    handle = await start(stack, invoice)
    async with asyncio.timeout(60):  # a step retried without end (a fee refused twice) fails here, not hangs
        outcome = await handle.result()  # the test server skips each timer's wait
    assert (outcome.reminded, outcome.ended_by) == ([1, 2, 3, 4], "steps done")

    # Each reminder ran on its day, at the reminder hour, by the workflow's clock (written in its audit row).
    reminded = await rows(
        stack,
        "SELECT changes FROM audit_log WHERE action = 'invoice.reminded' AND resource_id = %s::text ORDER BY id",
        invoice.id,
    )
    steps = [(change["step"], datetime.fromisoformat(change["at"])) for (change,) in reminded]
    assert [step for step, _ in steps] == [1, 2, 3, 4]
    for (step, at), offset in zip(steps, OFFSETS, strict=True):
        wanted = step_time(invoice.due_date, offset)
        assert wanted <= at < wanted + timedelta(minutes=1), (step, at, wanted)

    # The third step was retried after its commit, and its fee is there once; the fourth's fixed fee too.
    assert stack.remind.attempts == [1, 2]
    fees = await rows(
        stack,
        "SELECT reminder_step, net, tax FROM invoice_lines WHERE invoice_id = %s AND kind = 'late_fee' "
        "ORDER BY reminder_step",
        invoice.id,
    )
    # 2% of 1,508.50 is 30.17; then 40 fixed: 1,578.67.
    assert fees == [(3, Decimal("30.1700"), Decimal("0.0000")), (4, Decimal("40.0000"), Decimal("0.0000"))]
    [(total, subtotal)] = await rows(stack, "SELECT total, subtotal FROM invoices WHERE id = %s", invoice.id)
    assert (total, subtotal) == (Decimal("1578.6700"), Decimal("1350.6700"))  # the fees are untaxed
    applied = await rows(
        stack,
        "SELECT changes->>'step' FROM audit_log WHERE action = 'invoice.late_fee_applied' AND resource_id = %s::text",
        invoice.id,
    )
    assert sorted(step for (step,) in applied) == ["3", "4"]

    # One email per step (and the invoice's own), each once, each marked sent.
    subjects = stack.mail.subjects_to(invoice.email)
    assert len(subjects) == 5, subjects
    assert subjects[0].startswith(f"Invoice {invoice.number}")
    assert subjects[1].startswith(f"Reminder: invoice {invoice.number} is due on")
    assert [subject.split(":")[0] for subject in subjects[2:]] == ["Overdue", "Overdue", "Final notice"]
    third = next(mail for mail in stack.mail.mails if "8 days past due" in mail.subject)
    assert "A late fee of 30.17 USD" in third.text and "Balance due: 1,538.67 USD" in third.text
    assert all(mail.attachments and mail.attachments[0][0] == f"{invoice.number}.pdf" for mail in stack.mail.mails)
    emailed = await rows(stack, "SELECT step, emailed_at FROM invoice_reminders WHERE invoice_id = %s", invoice.id)
    assert sorted(step for step, at in emailed if at is not None) == [1, 2, 3, 4]

    # The history replays on the workflow's code as it is (no nondeterminism).
    replayer = Replayer(workflows=[InvoiceWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(await history_of(handle, "four_steps_fee_retried"))


async def test_a_step_whose_fee_would_book_in_a_closed_month_is_skipped_and_the_others_go_out(
    stack: Stack, make_user: MakeUser
) -> None:
    """A late fee books on the day it is charged (the workflow's now); with that month closed (an accountant
    closed the current month early), the steps with a fee are refused whole (no fee, no email) and skipped, not
    retried without end, and the invoice's other reminders still go out."""
    invoice = await issue_invoice(stack, make_user)
    today = (await stack.env.get_current_time()).date()
    async with stack.deps.db.transaction() as tx:  # every month the steps fall in (the last is 30 days away)
        await tx.sql.run(
            "INSERT INTO periods (month, status, closings, closed_at) SELECT month::date, 'closed', 1, now() "
            "FROM generate_series(date_trunc('month', %s::date), %s::date + 40, interval '1 month') AS month",
            (today, today),
        )
    handle = await start(stack, invoice)
    async with asyncio.timeout(60):
        outcome = await handle.result()
    assert (outcome.reminded, outcome.skipped, outcome.ended_by) == ([1, 2], [3, 4], "steps done")
    assert (
        await rows(stack, "SELECT id FROM invoice_lines WHERE invoice_id = %s AND kind = 'late_fee'", invoice.id) == []
    )
    subjects = stack.mail.subjects_to(invoice.email)
    assert [subject.split(":")[0] for subject in subjects[1:]] == ["Reminder", "Overdue"], subjects


async def test_payment_and_its_signal_end_the_reminders(stack: Stack, make_user: MakeUser) -> None:
    invoice = await issue_invoice(stack, make_user)
    handle = await start(stack, invoice)
    await wait_sent(stack, handle, invoice)
    # Past the second step's day: two reminders out.
    await stack.env.sleep(
        step_time(invoice.due_date, OFFSETS[1]) + timedelta(hours=1) - await stack.env.get_current_time()
    )

    async def two_reminded() -> bool:
        return len(await rows(stack, "SELECT step FROM invoice_reminders WHERE invoice_id = %s", invoice.id)) == 2

    assert await eventually(two_reminded)
    await pay(stack, invoice.id)
    await handle.signal(InvoiceWorkflow.closed, "paid")
    outcome = await handle.result()
    assert (outcome.reminded, outcome.ended_by) == ([1, 2], "paid")
    # Ended by the signal, not at the third step's day (where it would have found the invoice paid anyway).
    closed_at = (await handle.describe()).close_time
    assert closed_at is not None and closed_at < step_time(invoice.due_date, OFFSETS[2])
    await history_of(handle, "closed_by_signal")
    await stack.env.sleep(timedelta(days=30))  # long past the last step's day
    reminders = await rows(stack, "SELECT step FROM invoice_reminders WHERE invoice_id = %s ORDER BY step", invoice.id)
    assert reminders == [(1,), (2,)]
    assert len(stack.mail.subjects_to(invoice.email)) == 3  # the invoice and two reminders
    assert (
        await rows(stack, "SELECT id FROM invoice_lines WHERE invoice_id = %s AND kind = 'late_fee'", invoice.id) == []
    )


async def test_a_paid_invoice_ends_its_workflow_without_the_signal(stack: Stack, make_user: MakeUser) -> None:
    invoice = await issue_invoice(stack, make_user)
    handle = await start(stack, invoice)
    await wait_sent(stack, handle, invoice)
    await pay(stack, invoice.id)  # and the signal is lost
    outcome = await handle.result()  # the first step finds the invoice paid
    assert (outcome.reminded, outcome.ended_by) == ([], "paid")
    closed_at = (await handle.describe()).close_time
    assert closed_at is not None and closed_at >= step_time(invoice.due_date, OFFSETS[0])
    await history_of(handle, "found_paid")
    assert await rows(stack, "SELECT step FROM invoice_reminders WHERE invoice_id = %s", invoice.id) == []
    assert len(stack.mail.subjects_to(invoice.email)) == 1  # the invoice only


RECORDED = sorted(HISTORIES.glob("*.json"))
TEXTS = {path: path.read_text() for path in RECORDED}  # read at collection, not inside the event loop


def test_histories_were_recorded() -> None:
    assert {path.stem for path in RECORDED} == {"four_steps_fee_retried", "closed_by_signal", "found_paid"}


@pytest.mark.parametrize("path", RECORDED, ids=[path.stem for path in RECORDED])
async def test_recorded_history_replays(path: Path) -> None:
    """A change of InvoiceWorkflow that breaks the histories of invoices in flight fails here (guard it with
    `workflow.patched`)."""
    history = WorkflowHistory.from_json(f"invoice-replay-{path.stem}", TEXTS[path])
    replayer = Replayer(workflows=[InvoiceWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


@pytest.mark.parametrize(
    ("policy", "refusal"),
    [
        ('[[steps]]\noffset_days = 3\ntemplate = "invoice_overdue"\n\n[[steps]]\noffset_days = 1\n'
         'template = "invoice_overdue"\n', "line 5, step 2: offset_days 1 is not after step 1's 3"),
        ('[[steps]]\noffset_days = 3\ntemplate = "invoice_overdue"\nlate_fee = { percent = 2.5 }\n',
         "line 1, step 1: late_fee percent must be a string or a whole number"),
        ('[[steps]]\noffset_days = 3\ntemplate = "invoice_overdue"\nlate_fee = { fixed = "10", percent = "2" }\n',
         "step 1: late_fee must be"),
        ('[[steps]]\noffset_days = 3\ntemplate = "no_such_template"\n', "step 1: template 'no_such_template'"),
        ('[[steps]]\noffset_days = 3\ntemplate = "invoice_overdue"\nlate_fee = { percent = "150" }\n',
         "step 1: late_fee percent 150 is more than 100"),
        ('[[steps]]\noffset_days = 3\ntemplate = "invoice_overdue"\nfee = "1"\n', "step 1: unknown key(s) ['fee']"),
        ('[[steps]]\noffset_days = "3"\ntemplate = "invoice_overdue"\n', "step 1: offset_days must be a whole number"),
        ('[[steps]]\noffset_days = 3\ntemplate = "invoice_overdue\n', "at line 3"),
        ("", "no steps"),
    ],
)  # fmt: skip
def test_a_broken_reminder_policy_is_refused(policy: str, refusal: str) -> None:
    with pytest.raises(ReminderPolicyError) as refused:
        parse_reminder_policy(policy, "reminders.toml")
    assert refusal in str(refused.value)


def test_more_than_three_steps_load_in_order() -> None:
    steps = parse_reminder_policy(POLICY)
    assert [step.offset_days for step in steps] == OFFSETS
    fees = [(step.late_fee.kind, step.late_fee.amount) if step.late_fee else None for step in steps]
    assert fees == [None, None, ("percent", Decimal(2)), ("fixed", Decimal(40))]


def test_the_worker_says_at_start_whether_the_policy_loads(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert check_reminder_policy(settings)  # the shipped policies/reminders.toml
    broken = tmp_path / "reminders.toml"
    broken.write_text('[[steps]]\noffset_days = 3\ntemplate = "invoice_overdue"\nlate_fee = { fixed = "-5" }\n')
    invoices_settings = settings.invoices.model_copy(update={"reminder_policy": broken})
    assert not check_reminder_policy(settings.model_copy(update={"invoices": invoices_settings}))
    assert "INVOICES WILL NOT BE SENT" in caplog.text and "step 1: late_fee fixed" in caplog.text
