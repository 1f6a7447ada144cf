"""Report requests and their lifecycle (queued -> running -> completed | failed -> expired). Services flush only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from core.authz import Authorizer
from core.db import Tx
from core.engine import UserMetadata
from core.settings import ReportSettings
from domain.audit.service import AuditContext, record
from domain.auth import rate_limits
from domain.budgets.service import scope_for as budget_scope_for
from domain.errors import Forbidden, NotFound, ValidationFailed
from domain.fx.rates import Terms
from domain.invoices.receivables import scope_for as receivables_scope_for
from domain.models import Report, User
from domain.pagination import Cursor, Keyset, Pager
from domain.report_templates import service as templates
from domain.report_templates.dataset import TEMPLATE_KEY, TemplateRun
from domain.reports.datasets import BUDGETS_KEY, ReportQuery, ReportScope, budget_scope_dict, dataset_for
from domain.reports.schemas import (
    PRESENTATION_KEY,
    TITLES,
    ReportFilters,
    ReportFormat,
    ReportRequest,
    ReportStatus,
    ReportType,
)
from domain.users.visibility import Visibility


def configured_domains(settings: ReportSettings) -> list[str]:
    return [d.strip().lower().lstrip("@") for d in settings.organisation_email_domains.split(",") if d.strip()]


async def organisation_domains(tx: Tx, settings: ReportSettings) -> list[str]:
    """ORGANISATION_EMAIL_DOMAINS when set; otherwise the domains of the active users' addresses, so that an
    address outside the organisation is refused by default rather than mailed the organisation's figures.
    (A user on a public mail domain widens the fallback to that domain: production should set the list.)"""
    configured = configured_domains(settings)
    if configured:
        return configured
    domain = func.lower(func.split_part(User.email, "@", 2))
    rows = await tx.session.scalars(select(domain).where(User.is_active.is_(True)).distinct().order_by(domain))
    return [d for d in rows if d]


async def check_recipients(tx: Tx, settings: ReportSettings, recipients: list[str]) -> None:
    """Scheduled reports go to addresses of the organisation only (422 naming the others)."""
    if not recipients:
        return
    domains = await organisation_domains(tx, settings)
    outside = sorted(r for r in recipients if r.rsplit("@", 1)[-1].lower() not in domains)
    if outside:
        source = "ORGANISATION_EMAIL_DOMAINS" if configured_domains(settings) else "the domains of active users"
        raise ValidationFailed(
            f"recipients must be addresses of the organisation ({source})", outside=outside, allowed_domains=domains
        )


def check_period(settings: ReportSettings, period_from: date, period_to: date) -> None:
    if period_from > period_to:
        raise ValidationFailed(
            "period.from must not be after period.to", **{"from": str(period_from)}, to=str(period_to)
        )
    days = (period_to - period_from).days + 1
    if days > settings.max_period_days:
        raise ValidationFailed(
            f"the period spans {days} days; the maximum is {settings.max_period_days}",
            days=days,
            max_period_days=settings.max_period_days,
        )


def check_filters(visibility: Visibility | ReportScope, report_type: ReportType, filters: ReportFilters) -> None:
    """A report on people outside the requester's visibility may not be made (403)."""
    if report_type == ReportType.TEMPLATE and filters != ReportFilters():
        raise ValidationFailed("filters do not apply to a template: its parameters narrow it", field="filters")
    if filters.kind is not None and report_type != ReportType.LEDGER:
        raise ValidationFailed("filters.kind applies to the ledger only")
    if filters.categories and report_type == ReportType.RECEIVABLES:
        raise ValidationFailed("filters.categories does not apply to receivables", field="filters.categories")
    if filters.owner_ids and report_type == ReportType.BUDGET_VS_ACTUAL:
        raise ValidationFailed(
            "filters.owner_ids does not apply to budget_vs_actual (filters.categories narrows its budgets)",
            field="filters.owner_ids",
        )
    if not filters.owner_ids:
        return
    outside = sorted(
        owner
        for owner in filters.owner_ids
        if not (visibility.can_see(owner) if isinstance(visibility, Visibility) else visibility.allows_all([owner]))
    )
    if outside:
        raise Forbidden("you may not report on entries of people outside your visibility", owner_ids=outside)


# Report types shown in the base currency only, and why.
BASE_ONLY: dict[ReportType, str] = {
    ReportType.BUDGET_VS_ACTUAL: "budgets are kept in it",
    ReportType.RECEIVABLES: "each balance is shown in its invoice's currency and in the base currency",
    ReportType.TEMPLATE: "a template's amounts are the base amounts locked at submit",
}


def workflow_metadata(report: Report, requested_by: User) -> UserMetadata:
    """What the Temporal UI shows of a requested report's workflow: `Report: Profit and loss, 2024-01-01 to
    2024-03-31, PDF, requested by Jane Doe`."""
    title = TITLES[ReportType(report.type)] if report.type in set(ReportType) else report.type
    period = f"{report.period_from.isoformat()} to {report.period_to.isoformat()}"
    return UserMetadata(
        summary=f"Report: {title}, {period}, {report.format.upper()}, requested by {requested_by.full_name}",
        details=f"Report {report.id}. In the app: /api/v1/reports/{report.id}",
    )


def report_request_limit(settings: ReportSettings) -> rate_limits.Limit:
    return rate_limits.Limit("reports:user", "report requests", settings.requests_per_hour, 3600)


async def request_report(
    tx: Tx,
    settings: ReportSettings,
    user: User,
    visibility: Visibility,
    request: ReportRequest,
    audit: AuditContext,
    *,
    fx: Terms | None = None,
    authorizer: Authorizer | None = None,
) -> Report:
    """Validate and record a report request (status queued). The caller starts the workflow after commit.

    With `fx` (the books' terms), a report in another presentation currency is refused here (422 naming the rate
    dates) when a rate it needs is missing, rather than failing later in the workflow.

    A budget report needs the `authorizer`, to decide the budgets the requester may see
    (`domain.budgets.service.scope_for`): they are kept in the report's scope beside the entries' and the report
    shows no other budget. A receivables report needs it too: its scope is the invoices the requester may see
    (`domain.invoices.receivables.scope_for`; 403 for whoever may not read invoices), not their entries. Both are in
    the base currency only (budgets are kept in it; a balance shows in its invoice's currency and in base): another
    presentation currency is refused (422)."""
    check_period(settings, request.period.from_, request.period.to)
    presentation = request.presentation_currency
    run: TemplateRun | None = None
    scope: dict[str, Any] = dict(visibility.as_scope())
    within: Visibility | ReportScope = visibility
    if request.type in BASE_ONLY:
        if authorizer is None:
            raise ValueError(
                f"a {request.type.value} report needs the authorizer, to decide what its requester may see"
            )
        if presentation is not None and (fx is None or presentation != fx.base):
            raise ValidationFailed(
                f"{request.type.value} is in the base currency only: {BASE_ONLY[request.type]}",
                field="presentation_currency",
            )
        presentation = None
    if request.type == ReportType.BUDGET_VS_ACTUAL:
        assert authorizer is not None
        scope[BUDGETS_KEY] = budget_scope_dict(await budget_scope_for(tx.sql, authorizer, user))
    if request.type == ReportType.RECEIVABLES:
        assert authorizer is not None
        invoices = await receivables_scope_for(tx.sql, authorizer, user)
        if invoices is None:
            raise Forbidden("your role may not read invoices")
        scope = invoices.as_scope()
        within = ReportScope.from_dict(scope)
    if request.type == ReportType.TEMPLATE:
        assert authorizer is not None and request.template_id is not None
        if not authorizer.allows(user.role, templates.RESOURCE, "run"):
            raise Forbidden("your role may not run report templates")
        run = await templates.run_of(tx, request.template_id, request.template_version, request.parameters)
        scope = await templates.scope_for_run(tx, authorizer, user, visibility, run)
    check_filters(within, request.type, request.filters)
    if fx is not None and presentation is not None and presentation != fx.base:
        query = ReportQuery(
            request.type,
            request.period.from_,
            request.period.to,
            ReportScope.from_dict(visibility.as_scope()),
            request.filters,
            settings.timezone,
            base_currency=fx.base,
            presentation_currency=presentation,
            max_stale_days=fx.max_stale_days,
        )
        await dataset_for(query).prepare(tx)
    options = request.filters.model_dump(exclude_defaults=True)
    if presentation is not None:
        options[PRESENTATION_KEY] = presentation
    if run is not None:
        options[TEMPLATE_KEY] = run.as_dict()
    # Each report costs a workflow and a render over the whole period: a per-user budget keeps one caller (or a
    # stolen token) from flooding the reports worker. A refused request rolls its own count back.
    await rate_limits.hit(tx, report_request_limit(settings), f"user:{user.id}")
    report_id = uuid.uuid4()
    report = Report(
        id=report_id,
        requested_by_id=user.id,
        type=request.type.value,
        format=request.format.value,
        period_from=request.period.from_,
        period_to=request.period.to,
        filters=options,
        scope=scope,
        status=ReportStatus.QUEUED.value,
        workflow_id=f"report-{report_id}",
    )
    tx.session.add(report)
    await tx.session.flush()
    await record(
        tx.sql,
        audit,
        "report.requested",
        "report",
        str(report_id),
        {
            "type": report.type,
            "format": report.format,
            "period": [str(report.period_from), str(report.period_to)],
            "filters": report.filters,
            "scope": report.scope,
        },
    )
    return report


async def create_scheduled_report(
    tx: Tx,
    *,
    report_id: uuid.UUID,
    schedule_id: int | None,
    report_type: str,
    format: str,
    period_from: date,
    period_to: date,
    filters: dict[str, Any],
    scope: dict[str, Any],
    workflow_id: str,
) -> Report:
    """Record a scheduled run's report once (a retried activity finds the row it made before)."""
    await tx.session.execute(
        insert(Report)
        .values(
            id=report_id,
            requested_by_id=None,
            schedule_id=schedule_id,
            type=report_type,
            format=format,
            period_from=period_from,
            period_to=period_to,
            filters=filters,
            scope=scope,
            status=ReportStatus.QUEUED.value,
            workflow_id=workflow_id,
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )
    report = await tx.session.get(Report, report_id, populate_existing=True)
    assert report is not None
    return report


@dataclass(frozen=True)
class ReportPage:
    items: list[Report]
    total: int
    offset: int = 0
    next_cursor: str | None = None


# Newest first, the id breaking ties in the same direction so that one row comparison is a cursor's condition.
# A requester's reports are few (ix_reports_requested_by_id finds them); the sort is in memory.
KEYSET = Keyset("reports", ("created_at", "id"), (datetime, uuid.UUID))


async def list_reports(
    tx: Tx,
    user: User,
    *,
    see_all: bool,
    limit: int,
    offset: int,
    status: str | None = None,
    cursor: Cursor | None = None,
) -> ReportPage:
    pager = Pager(limit, offset, cursor)
    conditions = [] if see_all else [Report.requested_by_id == user.id]
    if status:
        conditions.append(Report.status == status)
    total = await tx.session.scalar(select(func.count()).select_from(Report).where(*conditions))
    after = pager.key(KEYSET)
    if after is not None:
        conditions.append(KEYSET.after_clause([Report.created_at, Report.id], after))
    rows = await tx.session.scalars(
        select(Report)
        .where(*conditions)
        .order_by(Report.created_at.desc(), Report.id.desc())
        .limit(pager.fetch)
        .offset(offset)
    )
    items, next_cursor = pager.cut(KEYSET, list(rows), lambda row: (row.created_at, row.id))
    return ReportPage(items, int(total or 0), pager.page_offset, next_cursor)


async def get_report(tx: Tx, user: User, report_id: uuid.UUID, *, see_all: bool) -> Report:
    """A report the caller may read; someone else's is indistinguishable from a missing one (404)."""
    report = await tx.session.get(Report, report_id)
    if report is None or (not see_all and report.requested_by_id != user.id):
        raise NotFound("report not found", id=str(report_id))
    return report


# --- lifecycle, used by the activities; every transition is guarded so a retry cannot double anything ----


async def mark_running(tx: Tx, report_id: uuid.UUID) -> Report | None:
    """Move queued -> running (or keep running on a retry). Returns None when the report is already final."""
    await tx.session.execute(
        update(Report)
        .where(Report.id == report_id, Report.status == ReportStatus.QUEUED.value)
        .values(status=ReportStatus.RUNNING.value)
    )
    report = await tx.session.get(Report, report_id, populate_existing=True)
    if report is None:
        raise NotFound("report not found", id=str(report_id))
    return report if report.status == ReportStatus.RUNNING.value else None


async def mark_completed(
    tx: Tx,
    report_id: uuid.UUID,
    *,
    rows: int,
    storage_key: str,
    size_bytes: int,
    content_type: str,
    filename: str,
) -> bool:
    """running -> completed, once. Returns whether this call made the transition."""
    result = await tx.session.execute(
        update(Report)
        .where(Report.id == report_id, Report.status.in_([ReportStatus.QUEUED.value, ReportStatus.RUNNING.value]))
        .values(
            status=ReportStatus.COMPLETED.value,
            rows=rows,
            storage_key=storage_key,
            size_bytes=size_bytes,
            content_type=content_type,
            filename=filename,
            error=None,
            completed_at=datetime.now(UTC),
        )
        .returning(Report.id)
    )
    return result.first() is not None


async def mark_failed(tx: Tx, report_id: uuid.UUID, error: str) -> bool:
    result = await tx.session.execute(
        update(Report)
        .where(Report.id == report_id, Report.status.in_([ReportStatus.QUEUED.value, ReportStatus.RUNNING.value]))
        .values(status=ReportStatus.FAILED.value, error=error[:2000], completed_at=datetime.now(UTC))
        .returning(Report.id)
    )
    return result.first() is not None


async def expired_reports(tx: Tx, retention_days: int, limit: int = 500) -> list[Report]:
    """Reports whose files are due for deletion: completed ones older than the retention period, and expired ones
    whose file an earlier prune marked but did not get to delete."""
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    rows = await tx.session.scalars(
        select(Report)
        .where(
            Report.storage_key.is_not(None),
            or_(
                and_(Report.status == ReportStatus.COMPLETED.value, Report.created_at < cutoff),
                Report.status == ReportStatus.EXPIRED.value,
            ),
        )
        .order_by(Report.created_at)
        .limit(limit)
    )
    return list(rows)


async def mark_expired(tx: Tx, report_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """completed -> expired, keeping the storage key so the file can be deleted after this commits: once a
    report is expired nobody starts a download of a file about to vanish. Returns the ids this call expired."""
    if not report_ids:
        return []
    result = await tx.session.execute(
        update(Report)
        .where(Report.id.in_(report_ids), Report.status == ReportStatus.COMPLETED.value)
        .values(status=ReportStatus.EXPIRED.value)
        .returning(Report.id)
    )
    return list(result.scalars())


async def forget_files(tx: Tx, report_ids: list[uuid.UUID]) -> None:
    """After the files of expired reports are deleted: the rows no longer point at them."""
    if report_ids:
        await tx.session.execute(
            update(Report)
            .where(Report.id.in_(report_ids), Report.status == ReportStatus.EXPIRED.value)
            .values(storage_key=None, size_bytes=None)
        )


def report_query_parts(report: Report) -> tuple[ReportType, ReportFormat, ReportFilters, ReportScope]:
    filters = {
        key: value for key, value in (report.filters or {}).items() if key not in (PRESENTATION_KEY, TEMPLATE_KEY)
    }
    report_type = ReportType(report.type)
    run = template_run_of(report)
    budget_report = report_type == ReportType.BUDGET_VS_ACTUAL or (run is not None and run.dataset == "budgets")
    return (
        report_type,
        ReportFormat(report.format),
        ReportFilters.model_validate(filters),
        ReportScope.from_dict(report.scope or {}, budget_report=budget_report),
    )


def template_run_of(report: Report) -> TemplateRun | None:
    """The template version (and parameters) a template report runs; None for the other report types."""
    return TemplateRun.from_filters(report.filters) if report.type == ReportType.TEMPLATE.value else None


def presentation_of(report: Report) -> str | None:
    """The currency the report was asked in (None: the base currency)."""
    value = (report.filters or {}).get(PRESENTATION_KEY)
    return str(value) if value else None
