"""The Temporal worker: connects with the pydantic data converter, runs one Worker per task queue
(approvals, reports, backups), reconciles the schedules (and starts the exchange-rate backfill when no recent rate
is stored), and drains cleanly on SIGTERM.

`python worker.py --queues approvals,reports` runs only those queues' Workers, so each queue's workers scale apart
(docs/operations.md). Without the flag, all of them. What runs beside the Workers goes with the queue it serves, so
however the queues are split over processes each of these runs in every process serving its queue, and only there:

- approvals: the outbox relay (the approval and recurring-invoice starts and signals an API could not deliver);
- reports: the schedules of reports, report retention, the exchange-rate import, the budget and attachments
  upkeep, and the exchange-rate backfill;
- backups: the backup and restore-drill schedules, and the check of pg_dump/pg_restore.

Every process checks the books' currency, records the policy version in force and watches the policy files (its
activities authorize with them), and serves its metrics. Reconciling a schedule from two processes is harmless
(the same spec is put twice), so scaling a queue to N processes needs no leader.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import signal
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.runtime import Runtime
from temporalio.worker import Worker, WorkerDeploymentConfig

import workflows
from activities.deps import ActivityDeps
from activities.notifications import NotificationActivities
from core.authz import Authorizer
from core.db import Database, ReadDatabase
from core.engine import WorkflowEngine
from core.logging import configure_logging
from core.mail import create_transport
from core.settings import Settings, TemporalSettings, get_settings
from core.storage import create_storage
from core.temporal import TaskQueues, connect, metrics_runtime, task_queues
from domain.approvals import outbox
from domain.attachments.schedules import attachment_schedules
from domain.backups import pg_tools
from domain.backups.schedules import backup_schedules
from domain.budgets.schedules import budget_schedules
from domain.fx.books import BooksMismatch, check_base_currency
from domain.fx.imports import has_recent_ecb_rates
from domain.fx.schedules import fx_schedules, import_input, import_metadata
from domain.invoices.reminder_policy import ReminderPolicyError, load_reminder_policy
from domain.metrics.gauges import PolicyVersion, registry_of
from domain.policies.versions import record_at_start, watch_policy_files
from domain.reports import schedules as report_schedules
from workflows.contracts import APPROVALS_QUEUE, BACKUPS_QUEUE, FX_RATES_BACKFILL_WORKFLOW_ID, REPORTS_QUEUE

log = logging.getLogger("worker")


@dataclass
class QueuePlan:
    task_queue: str
    workflows: list[type] = field(default_factory=list)
    activities: list[Callable[..., Any]] = field(default_factory=list)
    # None: the SDK's default (100 at once). The reports queue sets its own (WORKER_REPORTS_ACTIVITY_SLOTS).
    max_concurrent_activities: int | None = None


def worker_plan(deps: ActivityDeps, queues: Collection[str] = TaskQueues.NAMES) -> list[QueuePlan]:
    """Which workflows and activities run on which task queue; only those of `queues` (short names)."""
    names = task_queues(deps.settings.temporal)
    approvals = QueuePlan(names.approvals)
    # Renders are long and hold a database connection each: a few at a time per process (core/settings.py).
    reports = QueuePlan(names.reports, max_concurrent_activities=deps.settings.temporal.worker_reports_activity_slots)
    backups = QueuePlan(names.backups)
    # Versioned workers register the classes that declare how a workflow moves between builds (the approval pinned,
    # an invoice auto-upgrading: see them); every other type takes the default of `deployment_config`.
    versioned = deps.settings.temporal.versions_workers
    # --- approvals queue ---
    from activities.approvals import ApprovalActivities
    from workflows.approval import EntryApprovalWorkflow, PinnedEntryApprovalWorkflow

    approvals.workflows.append(PinnedEntryApprovalWorkflow if versioned else EntryApprovalWorkflow)
    approvals.activities += ApprovalActivities(deps).all()
    # Recurring invoices: the outbox starts their setup on this queue, and a run is one short transaction like an
    # approval's (with the issued invoice's workflow, which runs here too).
    from activities.recurring_invoices import RecurringInvoiceActivities
    from workflows.recurring_invoices import RecurringInvoiceRunWorkflow, RecurringInvoiceSetupWorkflow

    approvals.workflows += [RecurringInvoiceSetupWorkflow, RecurringInvoiceRunWorkflow]
    approvals.activities += RecurringInvoiceActivities(deps).all()
    # The email activity runs on every queue, so each feature's workflows reach it on their own queue.
    email = NotificationActivities(deps)
    approvals.activities.append(email.send_email)
    # An issued invoice's workflow: sent, then reminded. Its send renders a PDF (CPU-bound WeasyPrint, a few tenths of
    # a second): it runs on the reports queue with the other renders, so a burst of approvals (each invoice one
    # render) takes no activity slot from the approval decisions people wait on. Its reminders are a few statements.
    from activities.invoices import InvoiceActivities
    from workflows.invoices import AutoUpgradeInvoiceWorkflow, InvoiceWorkflow

    invoice_activities = InvoiceActivities(deps)
    approvals.workflows.append(AutoUpgradeInvoiceWorkflow if versioned else InvoiceWorkflow)
    approvals.activities.append(invoice_activities.remind)
    # --- reports queue ---
    reports.activities.append(email.send_email)
    reports.activities.append(invoice_activities.send)
    from activities.reports import ReportActivities
    from workflows.report import ReportRetentionWorkflow, ReportWorkflow, ScheduledReportWorkflow

    reports.workflows += [ReportWorkflow, ScheduledReportWorkflow, ReportRetentionWorkflow]
    reports.activities += ReportActivities(deps).all()
    # The exchange-rate import is light and daily: it shares the reports queue.
    from activities.fx import FxActivities
    from workflows.fx import FxRatesImportWorkflow

    reports.workflows.append(FxRatesImportWorkflow)
    reports.activities += FxActivities(deps).all()
    # The budget upkeep is light too (a few queries and alert emails every few minutes).
    from activities.budgets import BudgetActivities
    from workflows.budgets import BudgetUpkeepWorkflow

    reports.workflows.append(BudgetUpkeepWorkflow)
    reports.activities += BudgetActivities(deps).all()
    # The attachments upkeep: hourly, a query and a few deletes (abandoned presigned uploads).
    from activities.attachments import AttachmentActivities
    from workflows.attachments import AttachmentUpkeepWorkflow

    reports.workflows.append(AttachmentUpkeepWorkflow)
    reports.activities += AttachmentActivities(deps).all()
    # Journal exports: one render of a closed month's journals per batch, with the other renders.
    from activities.exports import ExportActivities
    from workflows.exports import ExportWorkflow

    reports.workflows.append(ExportWorkflow)
    reports.activities += ExportActivities(deps).all()
    # --- backups queue ---
    backups.activities.append(email.send_email)
    from activities.backups import BackupActivities
    from workflows.backup import BackupWorkflow, RestoreDrillWorkflow

    backups.workflows += [BackupWorkflow, RestoreDrillWorkflow]
    backups.activities += BackupActivities(deps).all()
    chosen = {
        APPROVALS_QUEUE: approvals,
        REPORTS_QUEUE: reports,
        BACKUPS_QUEUE: backups,
    }
    return [plan for name, plan in chosen.items() if name in queues and (plan.workflows or plan.activities)]


async def check_books(deps: ActivityDeps) -> None:
    """BooksMismatch when BASE_CURRENCY is not the currency the books hold entries in (domain/fx/books.py)."""
    async with deps.db.transaction() as tx:
        if not await check_base_currency(tx.sql, deps.settings.approvals.base_currency):
            raise RuntimeError("the database is not migrated yet")


async def reconcile_schedules(
    client: Client, deps: ActivityDeps, queues: Collection[str] = TaskQueues.NAMES
) -> list[str]:
    """At start: make the engine's standing schedules of `queues` (short names: the process runs their Workers)
    match their records and the settings. Reports: every report schedule (the defaults from settings created
    first), the daily report retention, the daily exchange-rate import, the budget upkeep and the attachments
    upkeep. Backups: say which pg_dump/pg_restore the backups will use (or clearly that none fits the server), and
    the daily backup and weekly restore drill. A schedule already there is brought to what is wanted. Returns the
    ids of the schedules reconciled."""
    settings = deps.settings
    engine = WorkflowEngine(settings.temporal, client)
    wanted: dict[str, Any] = {}
    if REPORTS_QUEUE in queues:
        async with deps.db.transaction() as tx:  # the default schedules' records commit before the engine hears
            wanted.update(await report_schedules.standing_schedules(tx, settings.reports, engine.queues.reports))
    if BACKUPS_QUEUE in queues:
        await check_backup_tools(settings)
        wanted.update(backup_schedules(settings.backups, engine.queues.backups))
    if REPORTS_QUEUE in queues:
        wanted.update(fx_schedules(settings.fx, engine.queues.reports))
        wanted.update(budget_schedules(settings.budgets, engine.queues.reports))
        wanted.update(attachment_schedules(settings.attachments, engine.queues.reports))
    for schedule_id, schedule in wanted.items():
        await engine.put_schedule(schedule_id, schedule)
    log.info("schedules reconciled: %s", list(wanted))
    return list(wanted)


async def check_backup_tools(settings: Settings) -> None:
    """Say which pg_dump/pg_restore the backups will use, or clearly that none fits the server. A check only."""
    try:
        server = pg_tools.connection_for(settings.db.session_url)
        major = await pg_tools.server_major_of(server)
        tools = await asyncio.to_thread(pg_tools.find_pg_tools, major, settings.backups.pg_bin_dir)
        log.info("backups use pg_dump/pg_restore %d from %s", tools.major, tools.bin_dir)
    except pg_tools.PgToolsNotFound as error:
        log.error("BACKUPS WILL FAIL: %s", error)
    except Exception as error:  # a check only: the schedules and the workers start anyway
        log.warning("could not check the PostgreSQL client tools for backups: %s", error)


async def start_fx_backfill(client: Client, deps: ActivityDeps, today: date | None = None) -> bool:
    """At start: when no ECB rate of the last FX_MAX_STALE_DAYS days is stored (a new installation, or a worker
    that was down for a while), import the 90-day file once. Under a fixed id, so two workers starting together
    start it once. Nothing when the import is switched off (FX_RATES_SCHEDULE_ENABLED=false). True when started."""
    fx = deps.settings.fx
    if not fx.schedule_enabled:
        return False
    async with deps.db.transaction() as tx:
        if await has_recent_ecb_rates(tx.sql, today or datetime.now(UTC).date(), fx.max_stale_days):
            return False
    engine = WorkflowEngine(deps.settings.temporal, client)
    started = await engine.start(
        "FxRatesImportWorkflow",
        import_input(fx, "history"),
        workflow_id=FX_RATES_BACKFILL_WORKFLOW_ID,
        task_queue=engine.queues.reports,
        metadata=import_metadata("history"),
    )
    log.info(
        "no recent ECB rates: %s the backfill from %s", "started" if started else "already running", fx.history_url
    )
    return started


def check_reminder_policy(settings: Settings) -> bool:
    """Say at start, rather than at the first invoice, when the reminder policy does not load: sending waits on it
    (activities/invoices.py). False when it is broken."""
    try:
        steps = load_reminder_policy(settings.reminder_policy_path)
    except ReminderPolicyError as error:
        log.error("INVOICES WILL NOT BE SENT until the reminder policy is fixed: %s", error)
        return False
    log.info("invoice reminders: %d steps from %s", len(steps), settings.reminder_policy_path)
    return True


def build_deps(settings: Settings) -> ActivityDeps:
    # Every activity retries a failed attempt: no pre-ping round trip on each of its sessions (core/db.py).
    db = Database.connect(settings.db, pre_ping=False)
    return ActivityDeps(
        settings=settings,
        db=db,
        authorizer=Authorizer(settings.policy_dir),
        storage=create_storage(settings.storage),
        mail=create_transport(settings.smtp),
        read_database=ReadDatabase.connect(settings.db, db, pre_ping=False),
    )


def serve_business_metrics(settings: Settings, authorizer: Authorizer) -> Callable[[], None]:
    """The worker's business counters (domain/metrics/events.py) and its policy version, for Prometheus, on
    WORKER_METRICS_HOST:WORKER_BUSINESS_METRICS_PORT (a thread of prometheus_client's). The SDK's own metrics stay
    on WORKER_METRICS_PORT. Returns what stops it."""
    port = settings.temporal.worker_business_metrics_port
    if not port:
        return lambda: None
    registry = registry_of(PolicyVersion(authorizer))
    try:
        server, thread = start_http_server(port, settings.temporal.worker_metrics_host, registry=registry)
    except OSError as error:
        # The work matters more than its counters: the worker runs, and Prometheus sees this target down
        # (the FinanceWorkerDown alert), which is how the operator hears of it.
        log.error("business metrics NOT served on port %d (WORKER_BUSINESS_METRICS_PORT): %s", port, error)
        return lambda: None
    log.info("business metrics on %s:%d/metrics", settings.temporal.worker_metrics_host, port)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


WORKFLOW_CODE = Path(workflows.__file__).parent


def workflow_code_digest(directory: Path = WORKFLOW_CODE) -> str:
    """12 hex digits over every module of the workflow code, by name and content: the same in every replica of one
    build, and changed by any change to what the workflows' histories replay against."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*.py")):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def deployment_config(settings: TemporalSettings) -> WorkerDeploymentConfig | None:
    """The worker deployment version this process's Workers report (docs/operations.md, "Rolling deploy"), or None
    while WORKER_DEPLOYMENT_NAME is unset: unversioned, as in dev and the tests."""
    if not settings.versions_workers:
        return None
    build_id = settings.worker_build_id or f"workflows-{workflow_code_digest()}"
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(settings.worker_deployment_name, build_id),
        use_worker_versioning=True,
        # For the workflow types that declare no behaviour of their own (the approval is pinned and an invoice
        # auto-upgrades: worker_plan). Reports, exports, backups, drills, imports, the upkeep and a recurring
        # invoice's setup and run end within minutes (a run waiting for an exchange rate: two days at most), so
        # pinned keeps a retired build busy only briefly, and their code may change between builds without a patch.
        default_versioning_behavior=VersioningBehavior.PINNED,
    )


def build_workers(
    client: Client, plans: Sequence[QueuePlan], deployment: WorkerDeploymentConfig | None = None
) -> list[Worker]:
    """One Worker per plan; all of them report `deployment`'s version when given (one build, one version, however
    its queues are split over processes: the version is current for all of its task queues at once)."""
    return [
        Worker(
            client,
            task_queue=plan.task_queue,
            workflows=plan.workflows,
            activities=plan.activities,
            max_concurrent_activities=plan.max_concurrent_activities,
            graceful_shutdown_timeout=timedelta(seconds=20),
            deployment_config=deployment,
        )
        for plan in plans
    ]


def describe_version(deployment: WorkerDeploymentConfig | None) -> str:
    if deployment is None:
        return "unversioned (WORKER_DEPLOYMENT_NAME is not set)"
    version = deployment.version
    return f"worker deployment {version.deployment_name!r}, build id {version.build_id!r}"


async def relay_outbox(deps: ActivityDeps, engine: WorkflowEngine, stop: asyncio.Event) -> None:
    """Deliver what an API committed but could not tell the engine (domain/approvals/outbox.py): a start lost to a
    crash between commit and start, a signal the engine was away for. Every few seconds, until SIGTERM."""
    settings = deps.settings.approvals
    grace = timedelta(seconds=settings.outbox_grace_seconds)
    while not stop.is_set():
        try:
            await outbox.deliver_due(deps.db, engine, grace=grace)
        except Exception:  # the database or the engine is away: the next round tries again
            log.warning("outbox relay: delivery failed; retrying", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.outbox_relay_seconds)


async def connect_until_ready(settings: Settings, runtime: Runtime, stop: asyncio.Event) -> Client | None:
    """Connect, retrying with back-off while Temporal is down (a restart of Temporal must not end the worker)."""
    delay = 1.0
    while not stop.is_set():
        try:
            return await connect(settings.temporal, runtime=runtime)
        except (RuntimeError, OSError) as exc:
            log.warning("Temporal unreachable at %s (%s); retrying in %.0f s", settings.temporal.address, exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30.0)
    return None


async def run(queues: Sequence[str] = TaskQueues.NAMES) -> int:
    """The worker for `queues` (short names), until SIGTERM or SIGINT."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runtime = metrics_runtime(settings.temporal.worker_metrics_port, settings.temporal.worker_metrics_host)
    client = await connect_until_ready(settings, runtime, stop)
    if client is None:
        return 0
    deps = build_deps(settings)
    deps.engine = WorkflowEngine(settings.temporal, client)
    stop_metrics = serve_business_metrics(settings, deps.authorizer)
    check_reminder_policy(settings)
    refused: list[BooksMismatch] = []

    async def reconcile_until_done() -> None:
        # In the background, so workflows are served meanwhile; retried, because the database may not be
        # migrated or reachable yet (compose starts us beside it) and nothing else would set them up. The books'
        # currency is checked first: a changed BASE_CURRENCY stops the worker (as it stops the API's start).
        delay = 1.0
        while not stop.is_set():
            try:
                await check_books(deps)
                await record_at_start(deps.db, deps.authorizer, applied_by="worker")
                await reconcile_schedules(client, deps, queues)
                if REPORTS_QUEUE in queues:  # the import runs on the reports queue
                    await start_fx_backfill(client, deps)
            except BooksMismatch as mismatch:
                log.critical("%s", mismatch)
                refused.append(mismatch)
                stop.set()
                return
            except Exception as error:
                log.warning("could not set up the schedules (%s); retrying in %.0f s", error, delay, exc_info=True)
            else:
                log.info("schedules set up")
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 60.0)

    schedules = asyncio.create_task(reconcile_until_done())
    # The outbox holds approval and recurring-invoice starts: the approvals queue's processes deliver them.
    relay = (
        asyncio.create_task(relay_outbox(deps, WorkflowEngine(settings.temporal, client), stop))
        if APPROVALS_QUEUE in queues
        else None
    )
    deployment = deployment_config(settings.temporal)
    workers = build_workers(client, worker_plan(deps, queues), deployment)
    watcher = asyncio.create_task(watch_policy_files(deps.authorizer, deps.db, applied_by="worker"))
    log.info("worker started on %s, %s", [worker.task_queue for worker in workers], describe_version(deployment))
    running = [asyncio.create_task(worker.run()) for worker in workers]
    stopped = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopped, *running], return_when=asyncio.FIRST_COMPLETED)
    failed = [task for task in running if task in done]
    for task in failed:
        log.error("a worker stopped unexpectedly: %r", task.exception())
    log.info("draining: finishing in-flight tasks")
    watcher.cancel()
    schedules.cancel()
    if relay is not None:
        relay.cancel()
    await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
    await asyncio.gather(*running, schedules, return_exceptions=True)
    stop_metrics()
    log.info("worker stopped")
    return 1 if failed or refused else 0  # non-zero lets a supervisor restart us (or shows the refusal)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop where it is installed (uvicorn[standard] brings it, as it does for the API): the worker spends much of
    its time in the event loop (a database round trip per statement, a Temporal poll per task), and uvloop costs
    less CPU per wake-up than asyncio's own (docs/benchmarks.md)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def queue_names(value: str) -> tuple[str, ...]:
    """`approvals,reports` -> ("approvals", "reports"); an unknown name is refused with the valid ones."""
    names = tuple(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    unknown = [name for name in names if name not in TaskQueues.NAMES]
    valid = f"choose one or more of {', '.join(TaskQueues.NAMES)}, comma-separated"
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown task queue {', '.join(map(repr, unknown))}: {valid}")
    if not names:
        raise argparse.ArgumentTypeError(f"no task queue named: {valid}")
    return names


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Exits 2 (argparse's usage error) on an unknown queue name, naming the valid ones."""
    parser = argparse.ArgumentParser(prog="worker.py", description="Run the Temporal workers.")
    parser.add_argument(
        "--queues",
        type=queue_names,
        default=TaskQueues.NAMES,
        metavar="NAME[,NAME...]",
        help=f"the task queues to serve, of {', '.join(TaskQueues.NAMES)} (default: all), with what belongs to them "
        "(their schedules and background loops: see worker.py's docstring)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        sys.exit(runner.run(run(arguments.queues)))
