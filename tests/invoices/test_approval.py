"""An invoice goes out only after approval: the same chain and inbox as an expense, then a number."""

from __future__ import annotations

import httpx

from activities.deps import ActivityDeps
from tests.approvals.conftest import Team
from tests.invoices.conftest import (
    approved_invoice,
    audit_actions,
    create_customer,
    create_invoice,
    decide,
    invoice_of,
    submit,
)


async def test_approval_numbers_the_invoice(client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await create_invoice(client, team.accountant, customer["id"])
    assert (invoice["status"], invoice["number"], invoice["total"]) == ("draft", None, "1508.50")
    submitted = await submit(client, team.accountant, invoice["id"])
    assert submitted["status"] == "pending_approval"
    # The approver sees it in the inbox, and the accountant cannot approve it themselves.
    inbox = await client.get("/api/v1/approvals/", headers=team.admin.headers)
    waiting = [(item["invoice_id"], item["subject_kind"]) for item in inbox.json()["items"]]
    assert waiting == [(invoice["id"], "invoice")]
    own = await decide(client, team.accountant, submitted["approval_request_id"], "approve")
    assert own.status_code == 403, own.text
    approved = await decide(client, team.admin, submitted["approval_request_id"], "approve")
    assert approved.status_code == 200, approved.text
    now = await invoice_of(client, team.accountant, invoice["id"])
    year = now["issue_date"][:4]
    assert now["number"] == f"INV-{year}-0001"
    assert now["status"] in ("approved", "sent")
    assert "invoice.issued" in await audit_actions(activity_deps, invoice["id"])
    second = await approved_invoice(client, team.accountant, team.admin, customer["id"])
    assert second["number"] == f"INV-{year}-0002"
