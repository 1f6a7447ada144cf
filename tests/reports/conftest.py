"""A reports stack of its own: settings with SMTP to the aiosmtpd sink and an organisation domain, the project's
workers for those settings, and an app on them. Plus known entries inserted straight into the database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from temporalio.client import Client

from activities.deps import ActivityDeps
from api.app import build_services, create_app
from core.authz import Authorizer
from core.db import Database
from core.engine import WorkflowEngine
from core.mail import SmtpTransport
from core.settings import ReportSettings, Settings, SmtpSettings, TemporalSettings
from core.storage import LocalStorage
from domain.models import ApprovalRequest, ApprovalStep, Entry
from tests.conftest import MakeUser, TestUser
from tests.services import SmtpSink
from worker import build_workers, worker_plan

ORG_DOMAIN = "example.com"


@pytest.fixture(scope="session")
def reports_settings(settings: Settings, smtp: SmtpSink) -> Settings:
    return settings.model_copy(
        update={
            "temporal": TemporalSettings(task_queue_prefix=f"rep-{uuid.uuid4().hex[:8]}", rpc_timeout_seconds=5),
            "smtp": SmtpSettings(host=smtp.host, port=smtp.port, starttls=False, sender="reports@example.com"),
            "reports": ReportSettings(
                organisation_email_domains=ORG_DOMAIN, max_period_days=400, default_schedules=True
            ),
        }
    )


@pytest.fixture(scope="session")
def reports_deps(reports_settings: Settings) -> ActivityDeps:
    return ActivityDeps(
        settings=reports_settings,
        db=Database.connect(reports_settings.db),
        authorizer=Authorizer(reports_settings.policy_dir),
        storage=LocalStorage(reports_settings.storage.local_dir),
        mail=SmtpTransport(reports_settings.smtp),
    )


@pytest.fixture(scope="session")
async def reports_worker(temporal_client: Client, reports_deps: ActivityDeps) -> AsyncIterator[None]:
    """The project's workers (worker_plan) for the reports settings, with real SMTP delivery."""
    names = {
        getattr(fn, "__temporal_activity_definition").name
        for plan in worker_plan(reports_deps)
        for fn in plan.activities
    }
    assert "send_email" in names, "the email activity is registered in worker.py"
    workers = build_workers(temporal_client, worker_plan(reports_deps))
    tasks = [asyncio.create_task(w.run()) for w in workers]
    yield
    await asyncio.gather(*(w.shutdown() for w in workers))
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture(scope="session")
async def reports_app(reports_settings: Settings, temporal_client: Client) -> AsyncIterator[object]:
    services = build_services(reports_settings, WorkflowEngine(reports_settings.temporal, temporal_client))
    application = create_app(services=services)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def api(reports_app: object, reports_worker: None) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=reports_app, client=("203.0.113.7", 50000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


# --- known data ---------------------------------------------------------------------------------------

PERIOD = {"from": "2024-01-01", "to": "2024-03-31"}


@dataclass
class KnownData:
    admin: TestUser
    manager: TestUser
    alice: TestUser  # employee under the manager
    bob: TestUser  # employee under the manager
    carol: TestUser  # employee in no team
    accountant: TestUser


def _entry(owner: TestUser, kind: str, amount: str, day: date, category: str, status: str, party: str = "") -> Entry:
    """A USD entry in USD books: submitted ones carry the base amount a submit locks (rate 1)."""
    locked = status != "draft"
    return Entry(
        kind=kind,
        amount=Decimal(amount),
        currency="USD",
        base_currency="USD" if locked else None,
        fx_rate=Decimal(1) if locked else None,
        rate_date=day if locked else None,
        rate_source="base" if locked else None,
        base_amount=Decimal(amount) if locked else None,
        category=category,
        description=f"{category} {amount}",
        entry_date=day,
        source=party if kind == "revenue" else None,
        vendor=party if kind == "expense" else None,
        owner_id=owner.id,
        status=status,
    )


@pytest.fixture
async def known(make_user: MakeUser, activity_deps: ActivityDeps) -> KnownData:
    """Entries of several owners, statuses and months, plus approval steps with known cycle times.

    In 2024-01-01..2024-03-31, approved only: revenue 3900.25, expenses 750.49, net 3149.76.
    """
    admin = await make_user("admin", email="admin@example.com")
    manager = await make_user("manager")
    alice = await make_user("employee", manager=manager, full_name="Alice Able")
    bob = await make_user("employee", manager=manager, full_name="Bob Baker")
    carol = await make_user("employee", full_name="Carol Clark")
    accountant = await make_user("accountant")
    entries = {
        "a_rev": _entry(alice, "revenue", "1000.00", date(2024, 1, 15), "Consulting", "approved", "Acme"),
        "a_exp": _entry(alice, "expense", "200.50", date(2024, 1, 20), "Travel", "approved", "Airline"),
        "a_exp2": _entry(alice, "expense", "99.99", date(2024, 2, 3), "Office", "approved", "Paper Co"),
        "a_pending": _entry(alice, "expense", "5000.00", date(2024, 2, 10), "Travel", "pending", "Hotel"),
        "b_rev": _entry(bob, "revenue", "2500.25", date(2024, 2, 1), "Consulting", "approved", "Globex"),
        "b_exp": _entry(bob, "expense", "300.00", date(2024, 3, 5), "Travel", "approved", "Rail"),
        "b_rejected": _entry(bob, "expense", "10.00", date(2024, 3, 6), "Office", "rejected", "Pens"),
        "c_rev": _entry(carol, "revenue", "400.00", date(2024, 3, 30), "Training", "approved", "Initech"),
        "c_exp": _entry(carol, "expense", "150.00", date(2024, 1, 31), "Office", "approved", "Desk Co"),
        "outside": _entry(alice, "expense", "777.00", date(2024, 4, 2), "Travel", "approved", "Late"),
    }
    base = datetime(2024, 1, 5, 10, 0, tzinfo=UTC)
    # (entry, requester, [(level, approver, status, created, hours to decision or None)])
    trails = [
        ("a_exp", alice, [(1, manager, "approved", base, 4)]),
        (
            "b_rev",
            bob,
            [
                (1, manager, "approved", base + timedelta(days=27), 10),
                (2, admin, "approved", base + timedelta(days=27, hours=10), 20),
            ],
        ),
        ("c_exp", carol, [(1, admin, "approved", base + timedelta(days=5), 6)]),
        ("a_pending", alice, [(1, manager, "pending", base + timedelta(days=36), None)]),
    ]
    async with activity_deps.db.transaction() as tx:
        tx.session.add_all(entries.values())
        await tx.session.flush()
        for key, requester, steps in trails:
            entry = entries[key]
            request = ApprovalRequest(
                subject_kind=entry.kind,
                entry_id=entry.id,
                title=f"{entry.kind} {entry.id}",
                amount=entry.amount,
                requester_id=requester.id,
                status="approved" if steps[-1][2] == "approved" else "pending",
                workflow_id=f"approval-{entry.kind}-{entry.id}",
                policy_version="test",
                chain=[],
            )
            tx.session.add(request)
            await tx.session.flush()
            entry.approval_request_id = request.id
            for sequence, (level, approver, status, created, hours) in enumerate(steps, start=1):
                tx.session.add(
                    ApprovalStep(
                        request_id=request.id,
                        sequence=sequence,
                        level=level,
                        approver_id=approver.id,
                        decided_by_id=approver.id if hours is not None else None,
                        status=status,
                        created_at=created,
                        decided_at=created + timedelta(hours=hours) if hours is not None else None,
                    )
                )
    return KnownData(admin, manager, alice, bob, carol, accountant)


@pytest.fixture(autouse=True)
async def _reports_settled(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Let every report workflow a test started finish before the tables are truncated: the truncation blocks the
    event loop that runs the in-process worker, so an activity still in a transaction would deadlock it."""
    yield
    if "api" not in request.fixturenames:
        return
    from sqlalchemy import select

    from domain.models import Report

    deps: ActivityDeps = request.getfixturevalue("reports_deps")
    client: Client = request.getfixturevalue("temporal_client")
    async with deps.db.transaction() as tx:
        workflow_ids = [w for w in await tx.session.scalars(select(Report.workflow_id)) if w]
    for workflow_id in workflow_ids:
        try:
            await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(), timeout=60)
        except Exception:  # a failed or unknown workflow is settled too
            pass
