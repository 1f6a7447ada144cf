"""`/report-templates`: reports a finance lead defines without code (domain/report_templates).

Everyone lists, reads and runs templates; a run is a report like the others (`/reports/{id}`), scoped to the
runner's own visibility. Accountants and up create, revise (each PATCH a new version) and archive them; admins may
attach an HTML layout for the PDF.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.deps import Authorize, Grant, ServicesDep, TxDep, read_only
from api.listing import listing_of
from api.routes.reports import accept_report
from domain.json_numbers import MAX_BODY_ID
from domain.pagination import Cursor, Pager
from domain.report_templates import service
from domain.report_templates.schemas import (
    ReportTemplateIn,
    ReportTemplateOut,
    ReportTemplatePage,
    ReportTemplatePatch,
    ReportTemplateRun,
    ReportTemplateVersionOut,
)
from domain.reports.schemas import ReportAccepted, ReportRequest, ReportType

router = APIRouter(prefix="/report-templates", tags=["report templates"])

Read = Annotated[Grant, Depends(Authorize("report_template", "read"))]
Create = Annotated[Grant, Depends(Authorize("report_template", "create"))]
Update = Annotated[Grant, Depends(Authorize("report_template", "update"))]
Run = Annotated[Grant, Depends(Authorize("report_template", "run"))]
# A template's id is also carried in bodies (a report request, a schedule): bounded as a body's ids are.
TemplateId = Annotated[int, Path(ge=1, le=MAX_BODY_ID)]
VersionNumber = Annotated[int, Path(ge=1, le=1_000_000)]
IfMatch = Annotated[
    str | None, Header(alias="If-Match", description="the version you read (its ETag): 412 when it moved on")
]


def _tagged(response: Response, template: ReportTemplateOut) -> ReportTemplateOut:
    response.headers["ETag"] = f'"{template.version}"'
    return template


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a report template (version 1)")
async def create_template(
    body: ReportTemplateIn, response: Response, tx: TxDep, services: ServicesDep, grant: Create
) -> ReportTemplateOut:
    """The definition is checked on save: 422 naming the field that does not make sense (`definition.filters[0].op`,
    a formula outside the language). A layout is for admins (403 otherwise)."""
    template, version = await service.create(tx, services.authorizer, grant.user, body, grant.audit)
    return _tagged(response, service.out(template, version))


@router.get("", summary="The report templates (not archived, unless asked)")
@read_only
async def list_templates(
    tx: TxDep,
    grant: Read,
    cursor: Annotated[Cursor, Depends(listing_of(ReportTemplateOut))],
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    include_archived: bool = False,
    dataset: Annotated[str | None, Query(pattern="^(entries|approvals|budgets|invoices|payments)$")] = None,
) -> ReportTemplatePage:
    pager = Pager(limit, offset, cursor)
    rows, total, next_cursor = await service.list_templates(
        tx, pager, include_archived=include_archived, dataset=dataset
    )
    items = [service.out(template, version, with_layout=False) for template, version in rows]
    return ReportTemplatePage(items=items, total=total, limit=limit, offset=pager.page_offset, next_cursor=next_cursor)


@router.get("/{template_id}", summary="A report template as it stands now")
@read_only
async def get_template(template_id: TemplateId, response: Response, tx: TxDep, grant: Read) -> ReportTemplateOut:
    template, version = await service.current(tx, template_id)
    return _tagged(response, service.out(template, version))


@router.patch("/{template_id}", summary="Revise a report template (saves a new version)")
async def update_template(
    template_id: TemplateId,
    body: ReportTemplatePatch,
    response: Response,
    tx: TxDep,
    services: ServicesDep,
    grant: Update,
    if_match: IfMatch = None,
) -> ReportTemplateOut:
    """The fields sent replace the current version's; the result is the next version, the old ones stay as they
    were (reports that ran them name them). A layout is for admins (403 otherwise)."""
    template, version = await service.update(
        tx, services.authorizer, grant.user, template_id, body, if_match, grant.audit
    )
    return _tagged(response, service.out(template, version))


@router.delete("/{template_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Archive a report template")
async def archive_template(template_id: TemplateId, tx: TxDep, grant: Update) -> Response:
    """Not listed and not run any more (schedules of it fail their runs, saying so); its versions stay readable."""
    await service.archive(tx, template_id, grant.audit)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{template_id}/versions", summary="Every version of a report template, oldest first")
@read_only
async def template_versions(template_id: TemplateId, tx: TxDep, grant: Read) -> list[ReportTemplateVersionOut]:
    return [service.version_out(version) for version in await service.versions(tx, template_id)]


@router.get("/{template_id}/versions/{version}", summary="One version of a report template")
@read_only
async def template_version(
    template_id: TemplateId, version: VersionNumber, tx: TxDep, grant: Read
) -> ReportTemplateVersionOut:
    return service.version_out(await service.version_of(tx, template_id, version))


@router.post(
    "/{template_id}/runs",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Run a report template: a report, generated by its workflow",
    responses={403: {"description": "an invoices or payments template, for a role that may not read invoices"}},
)
async def run_template(
    template_id: TemplateId, body: ReportTemplateRun, tx: TxDep, services: ServicesDep, grant: Run
) -> ReportAccepted:
    """The same as `POST /reports` with type `template`: the run pins the version (the current one unless named)
    and holds only what the runner may see. Follow it at `status_url`."""
    try:
        request = ReportRequest(
            type=ReportType.TEMPLATE,
            format=body.format,
            period=body.period,
            template_id=template_id,
            template_version=body.version,
            parameters=body.parameters,
        )
    except ValidationError as invalid:  # the run's parts checked as one report request: a 422 like any body's
        raise RequestValidationError(invalid.errors()) from invalid
    return await accept_report(request, grant, tx, services)
