"""The reports stack (tests/reports/conftest.py: settings, workers, app, known entries), reused: a template's run is a
report like the others. Plus helpers that save a template and generate its report with the real activity."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from temporalio.testing import ActivityEnvironment

from activities.deps import ActivityDeps
from activities.reports import ReportActivities
from domain.audit.service import AuditContext
from domain.models import Report, User
from domain.report_templates import service as templates
from domain.report_templates.schemas import ReportTemplateIn
from domain.reports import service as reports
from domain.reports.schemas import Period, ReportRequest, ReportType
from domain.users.visibility import visibility_for
from tests.reports.conftest import (  # noqa: F401 - the reports stack's fixtures, used here as they are
    _reports_settled,
    api,
    known,
    reports_app,
    reports_deps,
    reports_settings,
    reports_worker,
)

PERIOD = {"from": "2024-01-01", "to": "2024-03-31"}


async def save_template(deps: ActivityDeps, author_id: int, definition: dict[str, Any], name: str = "T") -> int:
    """Save a template as `author_id` through the service (its checks included); its id."""
    async with deps.db.transaction() as tx:
        author = await tx.session.get(User, author_id)
        assert author is not None
        body = ReportTemplateIn.model_validate({"name": name, "definition": definition})
        template, _ = await templates.create(tx, deps.authorizer, author, body, AuditContext(actor_id=author_id))
        return template.id


async def request_run(
    deps: ActivityDeps,
    runner_id: int,
    template_id: int,
    fmt: str,
    *,
    version: int | None = None,
    parameters: dict[str, Any] | None = None,
    start: date = date(2024, 1, 1),
    end: date = date(2024, 3, 31),
) -> Report:
    """Request a run as `runner_id` (their visibility), as the API does, without starting its workflow."""
    async with deps.db.transaction() as tx:
        runner = await tx.session.get(User, runner_id)
        assert runner is not None
        visibility = await visibility_for(tx.sql, deps.authorizer, runner)
        request = ReportRequest(
            type=ReportType.TEMPLATE,
            format=fmt,  # type: ignore[arg-type]
            period=Period.model_validate({"from": start.isoformat(), "to": end.isoformat()}),
            template_id=template_id,
            template_version=version,
            parameters=parameters or {},
        )
        return await reports.request_report(
            tx, deps.settings.reports, runner, visibility, request, AuditContext(actor_id=runner_id),
            authorizer=deps.authorizer,
        )  # fmt: skip


async def generate(deps: ActivityDeps, report_id: object) -> tuple[Report, bytes | None]:
    """Run the real generate activity on a requested report: the stored row and its file (None when it failed)."""
    await ActivityEnvironment().run(ReportActivities(deps).generate_report, str(report_id))
    async with deps.db.transaction() as tx:
        stored = await tx.session.get(Report, report_id)
    assert stored is not None
    if stored.storage_key is None:
        return stored, None
    return stored, (Path(deps.settings.storage.local_dir) / stored.storage_key).read_bytes()


async def run_template(deps: ActivityDeps, runner_id: int, template_id: int, fmt: str, **options: Any) -> bytes:
    report = await request_run(deps, runner_id, template_id, fmt, **options)
    stored, content = await generate(deps, report.id)
    assert stored.status == "completed", stored.error
    assert content is not None
    return content
