"""Recurring invoices over the whole stack: a template approved once, then a Temporal Schedule (on the dev server:
the time-skipping server runs no schedules) issuing one invoice per period, numbered and on its way at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import (
    Client,
    ScheduleActionStartWorkflow,
    ScheduleBackfill,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    ScheduleRange,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.deps import ActivityDeps
from core.engine import WorkflowEngine
from core.settings import Settings
from core.temporal import task_queues
from domain.audit.service import SYSTEM
from domain.fx.rates import terms_from
from domain.invoices import recurring, recurring_lifecycle
from domain.invoices.recurring_repository import RecurringRow
from tests.approvals.conftest import Team, eventually
from tests.invoices.conftest import create_customer, decide, invoice_of
from workflows.contracts import RecurringInvoiceInput, RecurringRunResult, recurring_schedule_id

LINES = [
    {"description": "Hosting", "quantity": "1", "unit_price": "250.00", "tax_rate": "19"},
    {"description": "Support hours", "quantity": "2.5", "unit_price": "80.00", "tax_rate": "0"},
]
TERMS = 14


def today() -> date:
    return datetime.now(UTC).date()


@pytest.fixture(autouse=True)
async def _delete_schedules(temporal_client: Client, activity_deps: ActivityDeps) -> AsyncIterator[None]:
    """Ids start again at 1 in every test (the tables are emptied with RESTART IDENTITY): a schedule a test left
    behind would stand in for the next test's."""
    yield
    async with activity_deps.db.transaction(autocommit=True) as tx:
        ids = [row[0] for row in await tx.sql.all("SELECT id FROM recurring_invoices")]
    engine = WorkflowEngine(activity_deps.settings.temporal, temporal_client)
    for recurring_id in ids:
        await engine.delete_schedule(recurring_schedule_id(recurring_id))


def recurring_body(customer_id: int, **fields: Any) -> dict[str, Any]:
    return {"template": {"customer_id": customer_id, "lines": LINES, "notes": "Monthly services"},
            "frequency": "weekly", "starts_on": today().isoformat(), "count": None, **fields}  # fmt: skip


async def create_recurring(http: httpx.AsyncClient, team: Team, customer_id: int, **fields: Any) -> dict[str, Any]:
    response = await http.post(
        "/api/v1/recurring-invoices", json=recurring_body(customer_id, **fields), headers=team.accountant.headers
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def submit_recurring(http: httpx.AsyncClient, team: Team, recurring_id: int) -> dict[str, Any]:
    response = await http.post(f"/api/v1/recurring-invoices/{recurring_id}/submit", headers=team.accountant.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def recurring_of(http: httpx.AsyncClient, team: Team, recurring_id: int) -> dict[str, Any]:
    response = await http.get(f"/api/v1/recurring-invoices/{recurring_id}", headers=team.accountant.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def approved_recurring(http: httpx.AsyncClient, team: Team, customer_id: int, **fields: Any) -> dict[str, Any]:
    """Created, submitted and approved by the admin (the accountant's manager)."""
    created = await create_recurring(http, team, customer_id, **fields)
    submitted = await submit_recurring(http, team, created["id"])
    assert submitted["status"] == "pending_approval"
    approved = await decide(http, team.admin, submitted["template"]["approval_request_id"], "approve")
    assert approved.status_code == 200, approved.text
    return await recurring_of(http, team, created["id"])


async def schedule_exists(client: Client, recurring_id: int) -> bool:
    try:
        await client.get_schedule_handle(recurring_schedule_id(recurring_id)).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def run_invoices(deps: ActivityDeps, recurring_id: int) -> list[tuple[int, date, str | None, str]]:
    """(id, run date, number, status) of the invoices the runs made, by date."""
    async with deps.db.transaction(autocommit=True) as tx:
        rows = await tx.sql.all(
            "SELECT id, recurring_run_on, number, status FROM invoices WHERE recurring_id = %s "
            "ORDER BY recurring_run_on",
            (recurring_id,),
        )
    return [(row[0], row[1], row[2], row[3]) for row in rows]


async def audit_of(deps: ActivityDeps, recurring_id: int) -> list[str]:
    async with deps.db.transaction(autocommit=True) as tx:
        rows = await tx.sql.all(
            "SELECT action FROM audit_log WHERE resource_type = 'recurring_invoice' AND resource_id = %s ORDER BY id",
            (str(recurring_id),),
        )
    return [row[0] for row in rows]


async def started_delivered(deps: ActivityDeps, workflow_id: str) -> bool:
    """The outbox's start of `workflow_id` was delivered to the engine."""
    async with deps.db.transaction(autocommit=True) as tx:
        delivered = await tx.sql.scalar(
            "SELECT delivered_at IS NOT NULL FROM approval_outbox WHERE workflow_id = %s AND kind = 'start'",
            (workflow_id,),
        )
    return delivered is True


async def last_run_result(handle: ScheduleHandle, client: Client, actions: int) -> RecurringRunResult:
    """The result of the schedule's `actions`-th run (waiting for it to have started)."""

    async def started() -> bool:
        return len((await handle.describe()).info.recent_actions) >= actions

    assert await eventually(started, seconds=15), "the schedule did not start the run"
    action = (await handle.describe()).info.recent_actions[actions - 1].action
    run = client.get_workflow_handle(
        action.workflow_id, run_id=action.first_execution_run_id, result_type=RecurringRunResult
    )
    result = await run.result()
    assert isinstance(result, RecurringRunResult)
    return result


async def test_a_recurring_invoice_is_issued_on_its_schedule_until_its_count(
    client: httpx.AsyncClient, team: Team, temporal_client: Client, activity_deps: ActivityDeps, settings: Settings
) -> None:
    customer = await create_customer(client, team.accountant, payment_terms_days=TERMS)
    created = await create_recurring(client, team, customer["id"], count=2)
    rid, template = created["id"], created["template"]
    assert (created["status"], created["runs"], created["schedule_id"]) == ("draft", 0, None)
    assert (template["is_template"], template["status"], template["number"], template["total"]) == (
        True, "draft", None, "497.50"
    )  # fmt: skip
    submitted = await submit_recurring(client, team, rid)
    assert (submitted["status"], submitted["template"]["status"]) == ("pending_approval", "pending_approval")
    assert not await schedule_exists(temporal_client, rid), "no schedule before the template is approved"

    approved = await decide(client, team.admin, submitted["template"]["approval_request_id"], "approve")
    assert approved.status_code == 200, approved.text
    # Approved today, starting today: the schedule is made, and today's run (midnight, before the approval) is
    # made up at once.
    assert await eventually(lambda: schedule_exists(temporal_client, rid), seconds=15)
    assert await eventually(lambda: _has_runs(activity_deps, rid, 1), seconds=15)
    active = await recurring_of(client, team, rid)
    assert (active["status"], active["runs"], active["schedule_id"]) == ("active", 1, f"recurring-invoice-{rid}")
    assert active["template"]["status"] == "approved" and active["template"]["number"] is None

    handle = temporal_client.get_schedule_handle(recurring_schedule_id(rid))
    described = (await handle.describe()).schedule
    start = datetime.combine(today(), datetime.min.time(), tzinfo=UTC)
    (calendar,) = described.spec.calendars
    assert calendar.day_of_week == (ScheduleRange((today().isoweekday()) % 7),)
    assert (calendar.hour, calendar.minute, calendar.second) == ((ScheduleRange(0),),) * 3
    assert described.spec.start_at == start and described.spec.time_zone_name == "UTC"
    assert (described.state.limited_actions, described.state.remaining_actions) == (True, 2)
    action = described.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.task_queue) == (
        "RecurringInvoiceRunWorkflow",
        task_queues(settings.temporal).approvals,
    )
    assert action.id == f"recurring-invoice-run-{rid}"
    next_time = (await handle.describe()).info.next_action_times[0]
    assert next_time == start + timedelta(days=7)

    # The first invoice: today's, the template's lines, due after the customer's terms, numbered, on its way.
    [(first_id, first_on, first_number, first_status)] = await run_invoices(activity_deps, rid)
    first = await invoice_of(client, team.accountant, first_id)
    assert first_on == today() and first["issue_date"] == today().isoformat()
    assert first["due_date"] == (today() + timedelta(days=TERMS)).isoformat()
    copied = [(line["description"], line["quantity"], line["unit_price"], line["tax_rate"]) for line in first["lines"]]
    assert copied == [("Hosting", "1", "250.00", "19"), ("Support hours", "2.5", "80.00", "0")]
    assert (first["total"], first["is_template"], first["customer_id"]) == ("497.50", False, customer["id"])
    assert first_number == f"INV-{today().year}-0001" and first_status in ("approved", "sent")
    assert (first["base_currency"], first["rate_date"]) == ("USD", today().isoformat())
    assert await eventually(lambda: started_delivered(activity_deps, f"invoice-{first_id}"))
    # One of two issued: one run is still to come, whatever the engine would list beyond the count.
    assert len((await recurring_of(client, team, rid))["next_runs"]) == 1

    # The schedule fires again the same day (an operator's trigger): that day has its invoice, nothing more.
    await handle.trigger()
    repeat = await last_run_result(handle, temporal_client, 2)
    assert (repeat.created, repeat.invoice_id, repeat.run_on) == (False, first_id, today())
    assert [row[0] for row in await run_invoices(activity_deps, rid)] == [first_id]

    # Next week's run (made up now): the next number, and the count reached ends it and retires its schedule.
    await handle.backfill(
        ScheduleBackfill(
            start_at=next_time, end_at=next_time + timedelta(seconds=1), overlap=ScheduleOverlapPolicy.ALLOW_ALL
        )
    )
    assert await eventually(lambda: _has_runs(activity_deps, rid, 2), seconds=15)
    [_, (second_id, second_on, second_number, second_status)] = await run_invoices(activity_deps, rid)
    assert second_on == next_time.date()
    expected = 2 if second_on.year == first_on.year else 1  # numbering starts again each year
    assert second_number == f"INV-{second_on.year}-{expected:04d}" and second_status in ("approved", "sent")
    second = await invoice_of(client, team.accountant, second_id)
    assert second["due_date"] == (second_on + timedelta(days=TERMS)).isoformat()
    assert await eventually(lambda: started_delivered(activity_deps, f"invoice-{second_id}"))
    ended = await recurring_of(client, team, rid)
    assert (ended["status"], ended["runs"], ended["schedule_id"]) == ("ended", 2, None)
    assert await eventually(lambda: _not(schedule_exists(temporal_client, rid)))
    assert await audit_of(activity_deps, rid) == [
        "recurring_invoice.created", "recurring_invoice.activated", "recurring_invoice.ran", "recurring_invoice.ran"
    ]  # fmt: skip


async def _has_runs(deps: ActivityDeps, recurring_id: int, runs: int) -> bool:
    return len(await run_invoices(deps, recurring_id)) >= runs


async def _not(check: Any) -> bool:
    return not await check


async def test_a_run_repeated_for_its_date_issues_one_invoice(
    client: httpx.AsyncClient, team: Team, temporal_client: Client, activity_deps: ActivityDeps
) -> None:
    """The run activity retried after its commit (or the schedule firing twice for a day) makes nothing twice."""
    customer = await create_customer(client, team.accountant, payment_terms_days=TERMS)
    tomorrow = today() + timedelta(days=1)
    active = await approved_recurring(client, team, customer["id"], frequency="monthly", starts_on=tomorrow.isoformat())
    rid = active["id"]
    assert active["status"] == "active"
    assert await eventually(lambda: schedule_exists(temporal_client, rid), seconds=15)
    runs = await recurring_of(client, team, rid)
    assert runs["next_runs"][0].startswith(tomorrow.isoformat())

    async def run_on(day: date) -> recurring.Ran:
        async with activity_deps.db.transaction() as tx:
            return await recurring.run(tx.sql, rid, day, datetime.now(UTC), terms_from(activity_deps.settings), SYSTEM)

    first = await run_on(tomorrow)
    again = await run_on(tomorrow)
    assert first.created and first.invoice is not None
    assert not again.created and again.invoice is not None and again.invoice.id == first.invoice.id
    assert (await run_on(today())).invoice is None, "nothing before the start day"
    made = await run_invoices(activity_deps, rid)
    assert [(row[0], row[1]) for row in made] == [(first.invoice.id, tomorrow)]
    after = await recurring_of(client, team, rid)
    assert (after["status"], after["runs"]) == ("active", 1)
    assert await audit_of(activity_deps, rid) == [
        "recurring_invoice.created", "recurring_invoice.activated", "recurring_invoice.ran"
    ]  # fmt: skip


async def test_cancel_deletes_the_schedule_and_stops_the_runs(
    client: httpx.AsyncClient, team: Team, temporal_client: Client, activity_deps: ActivityDeps
) -> None:
    customer = await create_customer(client, team.accountant)
    tomorrow = today() + timedelta(days=1)
    active = await approved_recurring(client, team, customer["id"], frequency="monthly", starts_on=tomorrow.isoformat())
    rid = active["id"]
    assert await eventually(lambda: schedule_exists(temporal_client, rid), seconds=15)

    cancelled = await client.post(f"/api/v1/recurring-invoices/{rid}/cancel", headers=team.accountant.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["schedule_id"]) == ("cancelled", None)
    assert not await schedule_exists(temporal_client, rid)
    again = await client.post(f"/api/v1/recurring-invoices/{rid}/cancel", headers=team.accountant.headers)
    assert again.status_code == 409, again.text
    # A run already on its way (started before the cancel) makes nothing.
    async with activity_deps.db.transaction() as tx:
        ran = await recurring.run(tx.sql, rid, tomorrow, datetime.now(UTC), terms_from(activity_deps.settings), SYSTEM)
    assert (ran.created, ran.invoice, ran.recurring.status) == (False, None, "cancelled")
    assert await run_invoices(activity_deps, rid) == []
    assert (await audit_of(activity_deps, rid))[-1] == "recurring_invoice.cancelled"


async def test_the_recurring_invoice_follows_its_templates_approval(
    client: httpx.AsyncClient, team: Team, temporal_client: Client
) -> None:
    """Sent back for changes it is a draft again (resubmitted, it waits again); rejected, it is cancelled. It is
    never scheduled, and cannot be cancelled while it waits on approval."""
    customer = await create_customer(client, team.accountant)
    created = await create_recurring(client, team, customer["id"], frequency="monthly")
    rid = created["id"]
    path = f"/api/v1/recurring-invoices/{rid}/submit"
    keyed = team.accountant.headers | {"Idempotency-Key": "submit-recurring-1"}
    first = await client.post(path, headers=keyed)
    assert first.status_code == 200, first.text
    submitted = first.json()
    request_id = submitted["template"]["approval_request_id"]
    repeated = await client.post(path, headers=keyed)  # the first answer again, no second submission
    assert repeated.status_code == 200 and repeated.headers["Idempotent-Replayed"] == "true", repeated.text
    assert repeated.json()["template"]["approval_request_id"] == request_id
    twice = await client.post(path, headers=team.accountant.headers)
    assert twice.status_code == 409, twice.text
    waiting = await client.post(f"/api/v1/recurring-invoices/{rid}/cancel", headers=team.accountant.headers)
    assert waiting.status_code == 409 and "withdraw" in waiting.text, waiting.text

    changes = await decide(client, team.admin, request_id, "request-changes", comment="fewer support hours")
    assert changes.status_code == 200, changes.text
    assert (await recurring_of(client, team, rid))["status"] == "draft"
    resubmitted = await submit_recurring(client, team, rid)
    assert resubmitted["status"] == "pending_approval"
    rejected = await decide(client, team.admin, request_id, "reject", reason="not this customer")
    assert rejected.status_code == 200, rejected.text
    final = await recurring_of(client, team, rid)
    assert (final["status"], final["template"]["status"]) == ("cancelled", "void")
    assert not await schedule_exists(temporal_client, rid)


async def test_recurring_invoices_are_scoped_like_invoices(client: httpx.AsyncClient, team: Team) -> None:
    customer = await create_customer(client, team.accountant)
    created = await create_recurring(client, team, customer["id"])
    path = f"/api/v1/recurring-invoices/{created['id']}"
    # The peer manager's subtree does not hold the accountant: 404, and not listed.
    assert (await client.get(path, headers=team.peer.headers)).status_code == 404
    listed = await client.get("/api/v1/recurring-invoices", headers=team.peer.headers)
    assert listed.status_code == 200 and listed.json()["total"] == 0
    # The admin reads every invoice.
    assert (await client.get(path, headers=team.admin.headers)).status_code == 200
    everyone = (await client.get("/api/v1/recurring-invoices?status=draft", headers=team.admin.headers)).json()
    assert [item["id"] for item in everyone["items"]] == [created["id"]]


@pytest.mark.parametrize(
    "change",
    [
        {"starts_on": (date.today() - timedelta(days=2)).isoformat()},
        {"starts_on": "2101-01-01"},
        {"count": 0},
        {"count": 1001},
        {"frequency": "daily"},
        {"surprise": True},
    ],
)
async def test_bad_recurring_invoices_are_refused(
    client: httpx.AsyncClient, team: Team, change: dict[str, Any]
) -> None:
    customer = await create_customer(client, team.accountant)
    body = recurring_body(customer["id"]) | change
    response = await client.post("/api/v1/recurring-invoices", json=body, headers=team.accountant.headers)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    ("frequency", "starts_on", "expected"),
    [
        # The 31st: the last day of each shorter month (28 February in a common year, 29 in a leap year).
        ("monthly", date(2091, 1, 31), ["2091-01-31", "2091-02-28", "2091-03-31", "2091-04-30", "2091-05-31"]),
        ("monthly", date(2091, 12, 30), ["2091-12-30", "2092-01-30", "2092-02-29", "2092-03-30", "2092-04-30"]),
        ("quarterly", date(2091, 11, 30), ["2091-11-30", "2092-02-29", "2092-05-30", "2092-08-30", "2092-11-30"]),
        ("yearly", date(2092, 2, 29), ["2092-02-29", "2093-02-28", "2094-02-28", "2095-02-28", "2096-02-29"]),
        ("weekly", date(2091, 3, 7), ["2091-03-07", "2091-03-14", "2091-03-21", "2091-03-28", "2091-04-04"]),
        ("monthly", date(2091, 3, 15), ["2091-03-15", "2091-04-15", "2091-05-15", "2091-06-15", "2091-07-15"]),
    ],
)
async def test_the_schedule_runs_on_the_start_day_of_each_period(
    temporal_client: Client, settings: Settings, frequency: str, starts_on: date, expected: list[str]
) -> None:
    """The run days as the engine computes them from the calendar spec (a schedule nobody runs: 2091 is far off)."""
    now = datetime.now(UTC)
    row = RecurringRow(9_000_001, 1, frequency, starts_on, None, 0, "active", 1, 1, now, now)
    engine = WorkflowEngine(settings.temporal, temporal_client)
    schedule_id = recurring_schedule_id(row.id)
    assert await engine.add_schedule(schedule_id, recurring_lifecycle.engine_schedule(row, "nobody"))
    try:
        assert not await engine.add_schedule(schedule_id, recurring_lifecycle.engine_schedule(row, "nobody"))
        described = await temporal_client.get_schedule_handle(schedule_id).describe()
        times = described.info.next_action_times[:5]
        assert [time.date().isoformat() for time in times] == expected
        assert all((time.hour, time.minute, time.tzinfo) == (0, 0, UTC) for time in times)
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        decoded = await temporal_client.data_converter.decode(action.args, [RecurringInvoiceInput])  # type: ignore[arg-type]
        assert decoded == [RecurringInvoiceInput(recurring_id=row.id)]
    finally:
        await engine.delete_schedule(schedule_id)
