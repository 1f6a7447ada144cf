"""The Casbin policy files: preview a proposed change, and reload them on demand (they also reload by themselves
when the files change)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from api.app import route_permissions
from api.deps import Authorize, Grant, ServicesDep, TxDep
from domain.errors import ValidationFailed
from domain.policies import preview as policy_preview
from domain.policies.schemas import PolicyPreview, PolicyProposal
from domain.policies.versions import record_reload

router = APIRouter(prefix="/admin/policies", tags=["admin"])


class PolicyReloaded(BaseModel):
    version: str
    changed: bool


@router.post("/reload", summary="Validate and load policies/model.conf and policy.csv (superadmin)")
async def reload_policies(
    tx: TxDep, services: ServicesDep, grant: Annotated[Grant, Depends(Authorize("policy", "reload"))]
) -> PolicyReloaded:
    """A broken file is refused with 422 naming the error (file and line); the policy in force stays. A change is
    audited once, by whichever process applied it first (this one, or another's watcher)."""
    result = services.authorizer.reload()
    await record_reload(tx.sql, result, grant.audit, applied_by="api (POST /admin/policies/reload)")
    if result.error:
        await tx.commit()  # the refusal is on record even though the request fails
        raise ValidationFailed(
            f"policy files refused; version {result.version} stays in force: {result.error}", version=result.version
        )
    return PolicyReloaded(version=result.version, changed=result.changed)


@router.post(
    "/preview",
    summary="What a proposed policy.csv (and model.conf) would change, before it is applied (superadmin)",
    description=(
        "Loads the proposal in a trial enforcer (the reload's validation) and reports the permissions each role "
        "gains and loses, route by route; the approval limits that change; and the requests of the last 90 days "
        "that would route differently. Nothing is applied. A broken file is 422 with `details.file` and "
        "`details.line`."
    ),
)
async def preview_policy(
    request: Request,
    body: PolicyProposal,
    tx: TxDep,
    services: ServicesDep,
    _: Annotated[Grant, Depends(Authorize("policy", "preview"))],
) -> PolicyPreview:
    in_force = services.authorizer
    proposed = policy_preview.proposal(in_force.files, body.policy_csv, body.model_conf)
    return await policy_preview.preview(
        tx.sql,
        in_force,
        proposed,
        route_permissions(request.app),
        services.settings.approvals.base_currency,
        datetime.now(UTC),
    )
