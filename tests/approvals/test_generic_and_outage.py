"""Generic approval requests through /approvals, auto-approval by policy, and behaviour while Temporal is away."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from activities.deps import ActivityDeps
from api.app import build_services, create_app
from core.engine import WorkflowEngine
from core.settings import Settings, TemporalSettings
from domain.approvals.transitions import RequestOpening, open_request
from domain.audit.service import SYSTEM
from domain.models import AuditLog
from tests.approvals.conftest import Team, create_expense, submitted_expense
from tests.services import free_port
from workflows.contracts import ApprovalTimers, approval_workflow_id


async def test_a_generic_request_runs_the_same_lifecycle(client: httpx.AsyncClient, team: Team) -> None:
    body = {"title": "New laptop", "amount": "2400.00", "justification": "the old one died"}
    created = await client.post("/api/v1/approvals/", json=body, headers=team.employee.headers)
    assert created.status_code == 201, created.text
    request = created.json()
    assert request["workflow_id"] == f"approval-request-{request['id']}"
    assert request["status"] == "pending" and request["steps"][0]["approver_id"] == team.manager.id

    inbox = (await client.get("/api/v1/approvals/", headers=team.manager.headers)).json()
    assert [item["request_id"] for item in inbox["items"]] == [request["id"]]
    assert (await client.get("/api/v1/approvals/?scope=all", headers=team.employee.headers)).status_code == 403
    assert (await client.get("/api/v1/approvals/?scope=all", headers=team.admin.headers)).json()["total"] == 1

    detail = (await client.get(f"/api/v1/approvals/{request['id']}", headers=team.manager.headers)).json()
    assert detail["live"]["current_approver_id"] == team.manager.id and detail["live"]["remind_at"]
    assert (await client.get(f"/api/v1/approvals/{request['id']}", headers=team.peer.headers)).status_code == 404
    mine = await client.post(f"/api/v1/approvals/{request['id']}/approve", json={}, headers=team.employee.headers)
    assert mine.status_code == 403
    approved = await client.post(f"/api/v1/approvals/{request['id']}/approve", json={}, headers=team.manager.headers)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    no_reason = await client.post(f"/api/v1/approvals/{request['id']}/reject", json={}, headers=team.manager.headers)
    assert no_reason.status_code == 422
    missing = await client.post("/api/v1/approvals/", json={"title": "x"}, headers=team.employee.headers)
    assert missing.status_code == 422


async def test_the_seed_approve_route_and_the_approvals_route_act_on_one_workflow(
    client: httpx.AsyncClient, team: Team
) -> None:
    entry = await submitted_expense(client, team.employee)
    inbox = (await client.get("/api/v1/approvals/", headers=team.manager.headers)).json()
    request_id = inbox["items"][0]["request_id"]
    changes = await client.post(
        f"/api/v1/approvals/{request_id}/request-changes",
        json={"comment": "which client?"},
        headers=team.manager.headers,
    )
    assert changes.status_code == 200, changes.text
    read = await client.get(f"/api/v1/expenses/{entry['id']}", headers=team.employee.headers)
    assert read.json()["status"] == "changes_requested"


async def test_auto_approval_by_policy_records_the_rule(activity_deps: ActivityDeps, team: Team) -> None:
    limits = activity_deps.authorizer.limits_snapshot()
    limits["employee"] = {**limits["employee"], "auto_approve": "50.00"}  # as if the policy line were enabled
    opening = RequestOpening(
        subject_kind="generic",
        entry=None,
        requester_id=team.employee.id,
        requester_role="employee",
        title="Coffee beans",
        justification="team supplies",
        amount=Decimal("42.00"),
        limits=limits,
        policy_version="test",
        timers=ApprovalTimers(),
        now=datetime.now(UTC),
        workflow_id_for=approval_workflow_id,
    )
    async with activity_deps.db.transaction() as tx:
        submission = await open_request(tx.sql, opening, SYSTEM)
    assert submission.request.status == "approved" and submission.input.first_step is None
    async with activity_deps.db.transaction() as tx:
        rule = await tx.session.scalar(
            select(AuditLog.policy_rule).where(AuditLog.action == "approval_request.created")
        )
    assert rule == "p, employee, approval_limit, auto_approve, 50.00"


@pytest.fixture
async def temporal_down_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    dead = settings.temporal.model_copy(update={"address": f"127.0.0.1:{free_port()}"})
    services = build_services(settings, WorkflowEngine(TemporalSettings.model_validate(dead.model_dump())))
    application = create_app(services=services)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    await services.db.dispose()


async def test_temporal_away_actions_503_reads_work_nothing_half_done(
    temporal_down_client: httpx.AsyncClient, client: httpx.AsyncClient, team: Team
) -> None:
    entry = await create_expense(temporal_down_client, team.employee)  # a draft needs only the database
    url = f"/api/v1/expenses/{entry['id']}"
    submitted = await temporal_down_client.post(f"{url}/submit", headers=team.employee.headers)
    assert submitted.status_code == 503, submitted.text
    read = await temporal_down_client.get(url, headers=team.employee.headers)
    assert read.status_code == 200
    assert read.json()["status"] == "draft"  # the submission was undone, not left pending without a workflow
    listed = await temporal_down_client.get("/api/v1/expenses/", headers=team.manager.headers)
    assert listed.status_code == 200
    assert (await temporal_down_client.get("/api/v1/approvals/", headers=team.manager.headers)).json()["total"] == 0

    # Once the engine is back, the same entry submits (reusing its request and workflow id) and is approved.
    again = await client.post(f"{url}/submit", headers=team.employee.headers)
    assert again.status_code == 200, again.text
    assert again.json()["workflow_id"] == f"approval-expense-{entry['id']}"
    approved = await client.post(f"{url}/approve", json={}, headers=team.manager.headers)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
