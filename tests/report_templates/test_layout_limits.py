"""An admin's layout is drawn in a process of its own under a hard CPU limit (REPORT_LAYOUT_CPU_SECONDS): a layout
that loops within the sandbox's caps fails its report with a clear message, through the real worker and workflow,
within a bound; the worker's other reports go on. On save, its one-row sample has a small limit of its own, and the
API answers other requests meanwhile."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from activities.deps import ActivityDeps
from domain.audit.service import AuditContext
from domain.models import Report, User
from domain.report_templates import service as templates
from domain.report_templates.layout import SAMPLE_CPU_SECONDS
from domain.report_templates.schemas import ReportTemplateIn
from tests.report_templates.conftest import request_run
from tests.report_templates.test_runs import MARGIN
from tests.reports.conftest import KnownData
from tests.reports.readback import pdf_text
from worker import build_workers, worker_plan
from workflows.contracts import REPORTS_QUEUE, GeneratedReport, ReportJob, report_workflow_id

LIMIT = 2  # CPU seconds, for the worker of these tests
# A billion steps of Jinja2 (each range within the sandbox's cap of 1,000), on real data only: the one-row sample it
# is tried on when saved passes at once. Unlimited it would hold a CPU for many minutes.
BURNER = (
    "{% if rows | length > 1 %}{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}"
    "{% endfor %}{% endfor %}{% endfor %}{% endif %}<p>never drawn</p>"
)
# The failing run's bound: the limit itself, the process's start (about a second, several on a busy 2-core host) and
# the workflow around it; far below what the loop would take.
BOUND_SECONDS = 60


@pytest.fixture
async def limited_queue(temporal_client: Client, reports_deps: ActivityDeps) -> AsyncIterator[str]:
    """The project's reports worker (worker_plan) with REPORT_LAYOUT_CPU_SECONDS=2, on a task queue of its own."""
    settings = reports_deps.settings.model_copy(
        update={
            "temporal": reports_deps.settings.temporal.model_copy(
                update={"task_queue_prefix": f"lim-{uuid.uuid4().hex[:8]}"}
            ),
            "reports": reports_deps.settings.reports.model_copy(update={"layout_cpu_seconds": LIMIT}),
        }
    )
    plans = worker_plan(replace(reports_deps, settings=settings), [REPORTS_QUEUE])
    workers = build_workers(temporal_client, plans)
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield plans[0].task_queue
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers))
        await asyncio.gather(*tasks, return_exceptions=True)


async def _admins_template(deps: ActivityDeps, known: KnownData, name: str, layout: str | None) -> int:
    async with deps.db.transaction() as tx:
        admin = await tx.session.get(User, known.admin.id)
        assert admin is not None
        body = ReportTemplateIn.model_validate({"name": name, "definition": MARGIN, "layout": layout})
        template, _ = await templates.create(tx, deps.authorizer, admin, body, AuditContext())
        return template.id


async def _run(client: Client, queue: str, report_id: object) -> GeneratedReport:
    """The report's workflow, as the API starts it, on `queue`; its result."""
    handle = await client.start_workflow(
        "ReportWorkflow",
        ReportJob(report_id=str(report_id)),
        id=report_workflow_id(str(report_id)),
        task_queue=queue,
        result_type=GeneratedReport,
    )
    return await handle.result()


async def test_a_layout_that_burns_cpu_fails_its_report_within_the_limit_and_the_worker_goes_on(
    known: KnownData, reports_deps: ActivityDeps, temporal_client: Client, limited_queue: str
) -> None:
    burner = await _admins_template(reports_deps, known, "Burner", BURNER)
    laid_out = await _admins_template(reports_deps, known, "Laid out", "<h1>{{ report.title }}</h1>{{ rows | length }}")
    burning = await request_run(reports_deps, known.accountant.id, burner, "pdf")
    meanwhile = await request_run(reports_deps, known.accountant.id, laid_out, "json")

    started = time.monotonic()
    failed, other = await asyncio.wait_for(
        asyncio.gather(_run(temporal_client, limited_queue, burning.id), _run(temporal_client, limited_queue,
                                                                              meanwhile.id)),
        timeout=BOUND_SECONDS,
    )  # fmt: skip
    assert time.monotonic() - started < BOUND_SECONDS
    assert failed.status == "failed" and failed.error is not None
    assert "the PDF layout was stopped: it used more than 2 s of CPU" in failed.error, failed.error
    assert other.status == "completed", other.error  # started with it, on the same worker
    async with reports_deps.db.transaction() as tx:
        stored = await tx.session.get(Report, burning.id)
    assert stored is not None and stored.status == "failed" and stored.error == failed.error

    # Right after, on the same worker: a layout's PDF that stays within the limit.
    after = await request_run(reports_deps, known.accountant.id, laid_out, "pdf")
    done = await asyncio.wait_for(_run(temporal_client, limited_queue, after.id), timeout=BOUND_SECONDS)
    assert done.status == "completed", done.error
    async with reports_deps.db.transaction() as tx:
        stored = await tx.session.get(Report, after.id)
    assert stored is not None and stored.storage_key is not None
    _, shown = pdf_text((Path(reports_deps.settings.storage.local_dir) / stored.storage_key).read_bytes())
    assert "Laid out (v1)" in " ".join(shown.split())


async def test_a_layout_whose_sample_burns_cpu_is_422_on_save_and_the_api_answers_meanwhile(
    api: httpx.AsyncClient, known: KnownData
) -> None:
    burning = {"name": "Burns at once", "definition": MARGIN, "layout": BURNER.replace("rows | length > 1", "rows")}
    save = asyncio.create_task(api.post("/api/v1/report-templates", json=burning, headers=known.admin.headers))
    await asyncio.sleep(0.5)  # the save is trying the layout on its sample, in a process of its own
    listed = await api.get("/api/v1/report-templates", headers=known.accountant.headers)
    assert listed.status_code == 200 and not save.done()  # answered while the sample burns elsewhere
    response = await save
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"]["field"] == "layout"
    assert f"the PDF layout was stopped: it used more than {SAMPLE_CPU_SECONDS} s of CPU" in error["message"]
    assert (await api.get("/api/v1/report-templates", headers=known.accountant.headers)).json()["total"] == 0
