"""The policy preview's shapes: a proposal in, what it would change out (docs/api.md, "Policy preview")."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.authz import MAX_POLICY_FILE_BYTES
from domain.approvals.schemas import Priced


class PolicyProposal(BaseModel):
    """Proposed policy files, as text. Without `model_conf`, the model in force is kept."""

    model_config = ConfigDict(extra="forbid")

    policy_csv: str = Field(min_length=1, max_length=MAX_POLICY_FILE_BYTES, description="the proposed policy.csv")
    model_conf: str | None = Field(
        None, min_length=1, max_length=MAX_POLICY_FILE_BYTES, description="a proposed model.conf (default: in force)"
    )


class PermissionChange(BaseModel):
    """A permission a role gains or loses, and the routes that declare it (none: checked inside a service)."""

    resource: str
    action: str
    routes: list[str] = Field(description='"METHOD /path" of each route declaring Authorize(resource, action)')


class RoleChange(BaseModel):
    role: str
    gains: list[PermissionChange]
    loses: list[PermissionChange]


LimitKind = Literal["approve", "auto_approve"]


class LimitChange(BaseModel):
    """An approval limit that changes: None means no limit at all (may not approve), "*" unlimited."""

    role: str
    kind: LimitKind
    before: str | None
    after: str | None
    currency: str = Field(description="the base currency, which limits and request amounts are in")
    direction: Literal["lowered", "raised", "granted", "removed"]


class ApprovalLevel(BaseModel):
    level: int
    role: str
    approver_id: int
    approver_name: str
    limit: str | None


class RoutingOut(BaseModel):
    """Where a request goes: approved at once by `auto_approved_by`, the `levels` of its chain, or `refused` (why)."""

    auto_approved_by: str | None = None
    levels: list[ApprovalLevel] = []
    refused: str | None = None


RoutingChange = Literal[
    "climbs higher", "fewer levels", "other approvers", "auto-approved", "no longer auto-approved", "refused",
    "no longer refused",
]  # fmt: skip


class ReplayedRequest(Priced):
    """A past request that would route differently under the proposal (both routed over today's manager tree), with
    its amount as its approvers saw it."""

    request_id: int
    subject_kind: str
    subject_id: int
    title: str
    status: str
    submitted_at: datetime
    requester_id: int
    requester_name: str
    requester_role: str
    change: RoutingChange
    in_force: RoutingOut = Field(description="under the policy in force")
    proposed: RoutingOut = Field(description="under the proposed policy")


class Replay(BaseModel):
    since: datetime
    days: int
    requests_replayed: int
    truncated: bool = Field(description="more requests were submitted since `since` than the replay reads")
    rerouted_count: int
    rerouted: list[ReplayedRequest] = Field(description="newest first, at most `listed_at_most`")
    listed_at_most: int


class PolicyPreview(BaseModel):
    version_in_force: str
    proposed_version: str
    identical: bool = Field(description="the proposal is the policy in force, byte for byte")
    changes_anything: bool = Field(description="a permission, a limit or a replayed request's routing changes")
    roles: list[RoleChange] = Field(description="the roles whose permissions change, and how")
    limits: list[LimitChange]
    replay: Replay
