"""Reload the Casbin policy files on demand (they also reload by themselves when the files change)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from api.deps import Authorize, Grant, ServicesDep, TxDep
from domain.audit.service import record
from domain.errors import ValidationFailed

router = APIRouter(prefix="/admin/policies", tags=["admin"])


class PolicyReloaded(BaseModel):
    version: str
    changed: bool


@router.post("/reload", summary="Validate and load policies/model.conf and policy.csv (superadmin)")
async def reload_policies(
    tx: TxDep, services: ServicesDep, grant: Annotated[Grant, Depends(Authorize("policy", "reload"))]
) -> PolicyReloaded:
    """A broken file is refused with 422 naming the error; the policy in force stays."""
    result = services.authorizer.reload()
    if result.error:
        await record(
            tx.sql, grant.audit, "policy.reload_refused", "policy", result.version, {"error": result.error[:1000]}
        )
        await tx.commit()  # the refusal is on record even though the request fails
        raise ValidationFailed(
            f"policy files refused; version {result.version} stays in force: {result.error}", version=result.version
        )
    await record(tx.sql, grant.audit, "policy.reloaded", "policy", result.version, {"changed": result.changed})
    return PolicyReloaded(version=result.version, changed=result.changed)
