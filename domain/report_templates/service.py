"""Report templates as people keep them: create, revise (each change a new immutable version), archive, read, and
pin a version with its parameters for a run. Services flush; the request commits.

Who may do what (policies/policy.csv): everyone reads and runs templates (`report_template read`, `run`): a run is
scoped to its runner's own visibility, whoever wrote the template. Accountants and up create, revise and archive
them (`create`, `update`); admins may attach an HTML layout for the PDF (`layout`), checked here, whoever calls.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError

from core.authz import Authorizer
from core.db import Tx
from domain.audit.service import AuditContext, diff, record
from domain.budgets.service import scope_for as budget_scope_for
from domain.entries.service import parse_if_match
from domain.errors import Conflict, Forbidden, InvalidState, NotFound, PreconditionFailed, ValidationFailed
from domain.invoices.receivables import scope_for as receivables_scope_for
from domain.models import ReportTemplate, ReportTemplateVersion, User
from domain.pagination import Keyset, Pager
from domain.report_templates.dataset import TEMPLATE_KEY, TemplateRun, sample_chart, template_columns
from domain.report_templates.definition import TemplateDefinition, check, resolve_parameters
from domain.report_templates.layout import check_layout
from domain.report_templates.schemas import (
    ReportTemplateIn,
    ReportTemplateOut,
    ReportTemplatePatch,
    ReportTemplateVersionOut,
)
from domain.report_templates.sources import INVOICE_SOURCES
from domain.reports.datasets import BUDGETS_KEY, budget_scope_dict
from domain.users.visibility import Visibility

RESOURCE = "report_template"
SAMPLE_CURRENCY = "USD"  # the sample a layout is tried on when saved: only the cells' text depends on it


def out(template: ReportTemplate, version: ReportTemplateVersion, *, with_layout: bool = True) -> ReportTemplateOut:
    return ReportTemplateOut(
        id=template.id,
        name=template.name,
        description=template.description,
        dataset=template.dataset,
        version=template.current_version,
        definition=TemplateDefinition.model_validate(version.definition),
        has_layout=version.layout is not None,
        layout=version.layout if with_layout else None,
        archived=template.archived_at is not None,
        created_by_id=template.created_by_id,
        created_at=template.created_at,
        updated_at=template.updated_at,
    )


def version_out(version: ReportTemplateVersion) -> ReportTemplateVersionOut:
    return ReportTemplateVersionOut(
        version=version.version,
        name=version.name,
        definition=TemplateDefinition.model_validate(version.definition),
        layout=version.layout,
        created_by_id=version.created_by_id,
        created_at=version.created_at,
    )


def _check_layout_right(authorizer: Authorizer, user: User) -> None:
    if not authorizer.allows(user.role, RESOURCE, "layout"):
        raise Forbidden("only admins may attach a PDF layout to a template", field="layout")


async def _name_free(tx: Tx, name: str, template_id: int | None = None) -> None:
    statement = select(func.count()).select_from(ReportTemplate).where(ReportTemplate.name == name)
    if template_id is not None:
        statement = statement.where(ReportTemplate.id != template_id)
    if await tx.session.scalar(statement):
        raise Conflict("a report template with this name exists", field="name", name=name)


def _stored(definition: TemplateDefinition) -> dict[str, Any]:
    return definition.model_dump(mode="json", exclude_defaults=True)


async def create(
    tx: Tx, authorizer: Authorizer, user: User, data: ReportTemplateIn, audit: AuditContext
) -> tuple[ReportTemplate, ReportTemplateVersion]:
    """Save version 1, once the definition (and the layout, an admin's) is checked: 422 naming the field."""
    if data.layout is not None:
        _check_layout_right(authorizer, user)
    checked = check(data.definition)
    if data.layout is not None:
        await check_layout(data.layout, template_columns(checked, SAMPLE_CURRENCY), sample_chart(checked))
    await _name_free(tx, data.name)
    template = ReportTemplate(
        name=data.name,
        description=data.description,
        dataset=data.definition.dataset,
        current_version=1,
        created_by_id=user.id,
    )
    tx.session.add(template)
    try:
        await tx.session.flush()
    except IntegrityError as error:  # a concurrent create of the same name
        raise Conflict("a report template with this name exists", field="name", name=data.name) from error
    version = ReportTemplateVersion(
        template_id=template.id,
        version=1,
        name=data.name,
        definition=_stored(data.definition),
        layout=data.layout,
        created_by_id=user.id,
    )
    tx.session.add(version)
    await tx.session.flush()
    await record(
        tx.sql,
        audit,
        "report_template.created",
        RESOURCE,
        template.id,
        {"name": data.name, "dataset": template.dataset, "version": 1, "definition": version.definition,
         "layout": data.layout is not None},
    )  # fmt: skip
    return template, version


async def update(
    tx: Tx,
    authorizer: Authorizer,
    user: User,
    template_id: int,
    patch: ReportTemplatePatch,
    if_match: str | None,
    audit: AuditContext,
) -> tuple[ReportTemplate, ReportTemplateVersion]:
    """Save the next version: the current one with the patch applied. If-Match (the current version), when sent,
    must match (412). Archived templates are not revised (409)."""
    template = await get(tx, template_id, for_update=True)
    if if_match is not None and parse_if_match(if_match) != template.current_version:
        raise PreconditionFailed(
            "the template has changed since you read it", version=template.current_version, field="If-Match"
        )
    if template.archived_at is not None:
        raise InvalidState("the template is archived", id=template_id)
    current = await version_of(tx, template_id, template.current_version)
    changes = patch.model_dump(exclude_unset=True)
    layout = current.layout
    if "layout" in changes:
        _check_layout_right(authorizer, user)
        layout = patch.layout
    definition = patch.definition or TemplateDefinition.model_validate(current.definition)
    checked = check(definition)
    if patch.definition is not None or "layout" in changes:
        if layout is not None:  # a new definition must still suit the layout, a new layout the definition
            await check_layout(layout, template_columns(checked, SAMPLE_CURRENCY), sample_chart(checked))
    if patch.definition is not None:
        if patch.definition.dataset != template.dataset:
            # Reports and schedules of a template read one kind of data: another dataset is another template.
            raise Conflict(
                f"a template keeps its dataset ({template.dataset}): create a new template for {definition.dataset}",
                field="definition.dataset",
            )
    name = patch.name or template.name
    if name != template.name:
        await _name_free(tx, name, template_id)
    before = {"name": template.name, "description": template.description, "definition": current.definition,
              "layout": current.layout is not None}  # fmt: skip
    template.current_version += 1
    template.name = name
    if patch.description is not None:
        template.description = patch.description
    version = ReportTemplateVersion(
        template_id=template.id,
        version=template.current_version,
        name=name,
        definition=_stored(definition),
        layout=layout,
        created_by_id=user.id,
    )
    tx.session.add(version)
    try:
        await tx.session.flush()
    except IntegrityError as error:
        raise Conflict("a report template with this name exists", field="name", name=name) from error
    after = {"name": template.name, "description": template.description, "definition": version.definition,
             "layout": layout is not None}  # fmt: skip
    await record(
        tx.sql,
        audit,
        "report_template.updated",
        RESOURCE,
        template.id,
        {"version": template.current_version, **diff(before, after)},
    )
    return template, version


async def archive(tx: Tx, template_id: int, audit: AuditContext) -> ReportTemplate:
    """Archived: listed no more and not run; readable by id (its reports name it), and its versions kept."""
    template = await get(tx, template_id, for_update=True)
    if template.archived_at is None:
        template.archived_at = func.now()
        await tx.session.flush()
        await tx.session.refresh(template)
        await record(tx.sql, audit, "report_template.archived", RESOURCE, template.id, {"name": template.name})
    return template


async def get(tx: Tx, template_id: int, *, for_update: bool = False) -> ReportTemplate:
    statement = select(ReportTemplate).where(ReportTemplate.id == template_id)
    if for_update:
        statement = statement.with_for_update()
    template = await tx.session.scalar(statement)
    if template is None:
        raise NotFound("report template not found", id=template_id)
    return template


async def version_of(tx: Tx, template_id: int, version: int) -> ReportTemplateVersion:
    found = await tx.session.get(ReportTemplateVersion, (template_id, version))
    if found is None:
        raise NotFound("report template version not found", id=template_id, version=version)
    return found


async def current(tx: Tx, template_id: int) -> tuple[ReportTemplate, ReportTemplateVersion]:
    template = await get(tx, template_id)
    return template, await version_of(tx, template_id, template.current_version)


# By name, then id: a cursor's `(name, id) > (%s, %s)` starts after the last template a page showed.
KEYSET = Keyset("report-templates", ("name", "id"), (str, int), descending=False)


async def list_templates(
    tx: Tx, pager: Pager, *, include_archived: bool = False, dataset: str | None = None
) -> tuple[list[tuple[ReportTemplate, ReportTemplateVersion]], int, str | None]:
    """A page of templates with their current versions, how many match, and the cursor to the next page."""
    conditions: list[ColumnElement[bool]] = [] if include_archived else [ReportTemplate.archived_at.is_(None)]
    if dataset is not None:
        conditions.append(ReportTemplate.dataset == dataset)
    total = await tx.session.scalar(select(func.count()).select_from(ReportTemplate).where(*conditions))
    after = pager.key(KEYSET)
    if after is not None:
        conditions.append(KEYSET.after_clause([ReportTemplate.name, ReportTemplate.id], after))
    rows = await tx.session.execute(
        select(ReportTemplate, ReportTemplateVersion)
        .join(
            ReportTemplateVersion,
            (ReportTemplateVersion.template_id == ReportTemplate.id)
            & (ReportTemplateVersion.version == ReportTemplate.current_version),
        )
        .where(*conditions)
        .order_by(ReportTemplate.name, ReportTemplate.id)
        .limit(pager.fetch)
        .offset(pager.offset)
    )
    page, next_cursor = pager.cut(KEYSET, list(rows.tuples()), lambda row: (row[0].name, row[0].id))
    return [(template, version) for template, version in page], int(total or 0), next_cursor


async def versions(tx: Tx, template_id: int) -> list[ReportTemplateVersion]:
    await get(tx, template_id)
    rows = await tx.session.scalars(
        select(ReportTemplateVersion)
        .where(ReportTemplateVersion.template_id == template_id)
        .order_by(ReportTemplateVersion.version)
    )
    return list(rows)


async def run_of(
    tx: Tx, template_id: int, version: int | None, parameters: dict[str, Any], *, where: str = "parameters"
) -> TemplateRun:
    """The version a run pins (the current one unless named) with its parameters checked (422 naming
    `parameters.<name>`). An archived template is not run (409)."""
    template = await get(tx, template_id)
    if template.archived_at is not None:
        raise InvalidState("the template is archived: it is not run any more", id=template_id)
    pinned = await version_of(tx, template_id, version or template.current_version)
    definition = TemplateDefinition.model_validate(pinned.definition)
    resolve_parameters(definition, parameters, where)
    return TemplateRun(template.id, pinned.version, pinned.name, template.dataset, dict(parameters))


async def scope_for_run(
    tx: Tx, authorizer: Authorizer, user: User, visibility: Visibility, run: TemplateRun
) -> dict[str, Any]:
    """What a run may read, decided for its runner at request time by the fixed reports' rules, whoever wrote the
    template: the invoices they may see for invoices and payments (403 for a role that may not read invoices); their
    visibility of entries otherwise, with the budgets they may see for budgets and a budget comparison."""
    if run.dataset in INVOICE_SOURCES:
        invoices = await receivables_scope_for(tx.sql, authorizer, user)
        if invoices is None:
            raise Forbidden("your role may not read invoices: this template reports on them")
        return invoices.as_scope()
    scope: dict[str, Any] = dict(visibility.as_scope())
    pinned = await version_of(tx, run.template_id, run.version)
    definition = TemplateDefinition.model_validate(pinned.definition)
    if run.dataset == "budgets" or any(comparison.kind == "budget" for comparison in definition.comparisons):
        scope[BUDGETS_KEY] = budget_scope_dict(await budget_scope_for(tx.sql, authorizer, user))
    return scope


async def pin_version(tx: Tx, filters: dict[str, Any]) -> dict[str, Any]:
    """A scheduled run's filters with the template's version pinned: the one the schedule names, else the current
    one. Never refuses (a missing template fails the report itself, with a message, when it is generated)."""
    chosen = filters.get(TEMPLATE_KEY)
    if not isinstance(chosen, dict) or chosen.get("version") is not None:
        return filters
    template = await tx.session.get(ReportTemplate, int(chosen.get("id", 0)))
    if template is None:
        return filters
    return {**filters, TEMPLATE_KEY: {**chosen, "version": template.current_version, "name": template.name}}


async def schedule_choice(
    tx: Tx, template_id: int | None, version: int | None, parameters: dict[str, Any]
) -> dict[str, Any]:
    """What a schedule keeps of its template: the id, the version if it names one (else each run takes the current
    one), the parameters (checked now against that version; 422 naming `parameters.<name>`)."""
    if template_id is None:
        raise ValidationFailed("type template needs template_id", field="template_id")
    run = await run_of(tx, template_id, version, parameters)
    chosen = run.as_dict()
    if version is None:
        del chosen["version"]
    return chosen
