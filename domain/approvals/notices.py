"""What an approval transition tells people: an in-app notification each (deduplicated per workflow, event and
step), and the details its email shows. The workflow (or the transition itself) sends the emails."""

from __future__ import annotations

from dataclasses import dataclass

from core.sql import Sql
from domain.models import RequestStatus
from domain.models.rows import EntryRow, RequestRow, StepRow
from domain.money import in_minor_units, money_str
from domain.notifications.service import notify
from domain.users.directory import People
from workflows.contracts import Notice

GENERIC = "generic"
EVENT_FOR_STATUS = {
    RequestStatus.APPROVED: "entry_approved",
    RequestStatus.REJECTED: "entry_rejected",
    RequestStatus.CHANGES_REQUESTED: "changes_requested",
    RequestStatus.EXPIRED: "entry_expired",
}
_OUTCOME_WORDS = {
    RequestStatus.APPROVED: "was approved",
    RequestStatus.REJECTED: "was rejected",
    RequestStatus.CHANGES_REQUESTED: "needs changes",
    RequestStatus.EXPIRED: "expired without a decision",
}


def link_for(request: RequestRow) -> str:
    if request.invoice_id is not None:
        return f"/api/v1/invoices/{request.invoice_id}"
    if request.subject_kind == GENERIC or request.entry_id is None:
        return f"/api/v1/approvals/{request.id}"
    path = "expenses" if request.subject_kind == "expense" else "revenue"
    return f"/api/v1/{path}/{request.entry_id}"


def own_amount(request: RequestRow) -> str:
    """What the request is for as its requester wrote it: an entry's amount in its currency, else the base amount."""
    if request.original_amount is not None and request.currency is not None:
        return f"{in_minor_units(request.original_amount, request.currency)} {request.currency}"
    return money_str(request.amount) if request.amount is not None else ""


def describe(request: RequestRow) -> str:
    amount = f" ({own_amount(request)})" if request.amount is not None else ""
    if request.invoice_id is not None:
        return f"Invoice #{request.invoice_id} \u201c{request.title}\u201d{amount}"
    if request.entry_id is None:
        return f"Approval request #{request.id} \u201c{request.title}\u201d{amount}"
    return f"{request.subject_kind.title()} #{request.entry_id} \u201c{request.title}\u201d{amount}"


def _key(request: RequestRow, event: str, *parts: object) -> str:
    return ":".join([request.workflow_id, event, *(str(part) for part in parts)])


@dataclass
class Notifier:
    """Notices about one request, in the transition's transaction: `entry` and `people` fill in what emails show."""

    sql: Sql
    request: RequestRow
    entry: EntryRow | None
    people: People

    async def notice(self, user_id: int, event_type: str, title: str, body: str, key: str, **details: str) -> Notice:
        request = self.request
        link = link_for(request)
        await notify(
            self.sql,
            user_id=user_id,
            event_type=event_type,
            title=title,
            body=body,
            link=link,
            data={"request_id": request.id, "entry_id": request.entry_id, "workflow_id": request.workflow_id},
            dedup_key=key,
        )
        details = await self._email_details(**details)
        return Notice(
            user_id=user_id, event_type=event_type, title=title[:200], body=body, link=link, key=key, details=details
        )

    async def _email_details(self, **extra: str) -> dict[str, str]:
        """What an approval email shows besides its title and body (templates/emails/*: amount, who submitted ...)."""
        request = self.request
        details = {
            "entry_description": request.title,
            "owner_name": await self.people.name(request.requester_id),
            **self._amounts(),
            **extra,
        }
        return {name: value for name, value in details.items() if value}

    def _amounts(self) -> dict[str, str]:
        """An entry's own amount and currency, and its base amount when the currencies differ (what limits compare);
        a request without an entry has its amount only."""
        request, entry = self.request, self.entry
        if request.amount is None:
            return {}
        if entry is None or request.original_amount is None or request.currency is None:
            return {"amount": money_str(request.amount)}
        shown = {"amount": str(in_minor_units(request.original_amount, request.currency)), "currency": request.currency}
        if entry.base_currency is not None and entry.base_currency != request.currency:
            shown |= {"base_amount": str(in_minor_units(request.amount, entry.base_currency)),
                      "base_currency": entry.base_currency}  # fmt: skip
        return shown

    async def step_waiting(self, step: StepRow, *, rerouted: bool = False) -> list[Notice]:
        """Tell the approver (or their delegate) that a step waits on them. A step re-routed to someone else is news
        to them (its notice is keyed by who it now waits on)."""
        recipient = step.delegate_id or step.approver_id
        on_behalf = " on behalf of your delegator" if step.delegate_id else ""
        parts: tuple[object, ...] = (
            (step.round, step.sequence, "to", recipient) if rerouted else (step.round, step.sequence)
        )
        return [
            await self.notice(
                recipient,
                "entry_submitted",
                f"{describe(self.request)} waits for your approval{on_behalf}",
                f"Round {step.round}, step {step.sequence}. Approve, reject or request changes.",
                _key(self.request, "entry_submitted", *parts),
            )
        ]

    async def outcome(self, comment: str | None, decided_by_id: int | None = None) -> list[Notice]:
        """Tell the requester how their request ended (or that it needs changes)."""
        request = self.request
        event = EVENT_FOR_STATUS.get(RequestStatus(request.status))
        if event is None:
            return []
        return [
            await self.notice(
                request.requester_id,
                event,
                f"{describe(request)} {_OUTCOME_WORDS[RequestStatus(request.status)]}",
                comment or "",
                _key(request, event, request.round),
                approver_name=await self.people.name(decided_by_id),
                comment=comment or "",
            )
        ]

    async def reminder(self, step: StepRow) -> list[Notice]:
        return [
            await self.notice(
                step.delegate_id or step.approver_id,
                "approval_reminder",
                f"Reminder: {describe(self.request)} still waits for your approval",
                f"Waiting since {step.created_at:%Y-%m-%d %H:%M} UTC.",
                _key(self.request, "approval_reminder", step.round, step.sequence),
            )
        ]

    async def escalation(self, old: StepRow, new: StepRow) -> list[Notice]:
        new_recipient = new.delegate_id or new.approver_id
        old_recipient = old.delegate_id or old.approver_id
        title = describe(self.request)
        names = {
            "escalated_to_name": await self.people.name(new_recipient),
            "escalated_from_name": await self.people.name(old_recipient),
        }
        return [
            await self.notice(
                new_recipient,
                "approval_escalated",
                f"{title} was escalated to you",
                "It waited past its deadline on the previous approver.",
                _key(self.request, "approval_escalated", new.round, new.sequence, "to"),
                **names,
            ),
            await self.notice(
                old_recipient,
                "approval_escalated",
                f"{title} was escalated to the next approver",
                "It waited past its deadline on you; the next approver up the hierarchy now decides.",
                _key(self.request, "approval_escalated", new.round, new.sequence, "from"),
                **names,
            ),
        ]

    async def delegated(self, step: StepRow, delegate_id: int) -> list[Notice]:
        approver = await self.people.get(step.approver_id)
        return [
            await self.notice(
                delegate_id,
                "approval_delegated",
                f"{describe(self.request)} waits for your approval on behalf of "
                f"{approver.full_name if approver else 'its approver'}",
                "Approvals were delegated to you while the approver is away.",
                _key(self.request, "approval_delegated", step.round, step.sequence, delegate_id),
                delegator_name=approver.full_name if approver else "",
            )
        ]
