"""What the Temporal UI shows of an approval workflow from its start (its static summary and details): the subject,
its amount and who asked, so an operator reads the workflow list like a ledger. The workflow keeps its current
details itself, as its state moves (workflows/approval.py).

Names only, the ones the app already shows the same operators; never an email address, a comment or a secret. The
search attributes stay ids and amounts (workflows/contracts.py)."""

from __future__ import annotations

from datetime import datetime

from core.engine import UserMetadata
from domain.approvals.notices import GENERIC, link_for, own_amount
from domain.models.rows import EntryRow, RequestRow
from workflows.contracts import ChainLink

_SUBJECTS = {"expense": "Expense", "revenue": "Revenue", "invoice": "Invoice", GENERIC: "Request"}


def subject_label(request: RequestRow) -> str:
    """`Expense #97`, `Invoice #12`, `Request #3`: the subject as the app numbers it."""
    subject_id = request.entry_id or request.invoice_id or request.id
    return f"{_SUBJECTS.get(request.subject_kind, request.subject_kind.title())} #{subject_id}"


def _limit(link: ChainLink) -> str:
    if link.limit is None:
        return "no limit set"
    return "unlimited" if link.limit == "*" else f"up to {link.limit}"


def _utc(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"


def approval_metadata(
    request: RequestRow,
    entry: EntryRow | None,
    chain: list[ChainLink],
    names: dict[int, str],
    *,
    auto_approve_rule: str | None = None,
) -> UserMetadata:
    """`Expense #97, 50.00 USD, travel, requested by Jane Doe`, and the chain it was pinned with."""
    requester = names.get(request.requester_id) or f"user {request.requester_id}"
    amount = own_amount(request)
    parts = [subject_label(request), *([amount] if amount else [])]
    # An entry's category; a generic request's title (the name its requester gave it; an entry's title would
    # carry its free-text description, which the list view has no need of).
    parts.append(entry.category if entry is not None else request.title)
    summary = ", ".join(parts) + f", requested by {requester}"
    lines = [
        f"**{subject_label(request)}**: {request.title}",
        f"Amount: {amount or 'none'}",
        f"Requested by {requester}, submitted {_utc(request.submitted_at)}",
        f"Policy version {request.policy_version}",
    ]
    if auto_approve_rule:
        lines.append(f"Approved at submit by the rule `{auto_approve_rule}`")
    for link in chain:
        approver = names.get(link.approver_id) or f"user {link.approver_id}"
        lines.append(f"Level {link.level + 1} of {len(chain)}: {approver} ({link.role}, {_limit(link)})")
    lines.append(f"In the app: {link_for(request)} (workflow {request.workflow_id})")
    return UserMetadata(summary=summary, details="\n\n".join(lines))
