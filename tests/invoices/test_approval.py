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


async def test_changes_requested_returns_the_invoice_to_draft_for_a_new_round(
    client: httpx.AsyncClient, team: Team
) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await create_invoice(client, team.accountant, customer["id"])
    request_id = (await submit(client, team.accountant, invoice["id"]))["approval_request_id"]
    # Not editable while it waits on approval.
    pending = await invoice_of(client, team.accountant, invoice["id"])
    refused = await client.patch(f"/api/v1/invoices/{invoice['id']}", json={"notes": "x"},
                                 headers={**team.accountant.headers, "If-Match": str(pending["version"])})  # fmt: skip
    assert refused.status_code == 409, refused.text
    sent_back = await decide(client, team.admin, request_id, "request-changes", comment="the rate is 7%")
    assert sent_back.status_code == 200, sent_back.text
    draft = await invoice_of(client, team.accountant, invoice["id"])
    assert (draft["status"], draft["number"]) == ("draft", None)
    lines = [{"description": "Consulting", "quantity": "10", "unit_price": "120.00", "tax_rate": "7"}]
    changed = await client.patch(f"/api/v1/invoices/{invoice['id']}", json={"lines": lines},
                                 headers={**team.accountant.headers, "If-Match": str(draft["version"])})  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert changed.json()["total"] == "1284.00"
    again = await submit(client, team.accountant, invoice["id"])
    assert (again["status"], again["approval_request_id"]) == ("pending_approval", request_id)
    request = (await client.get(f"/api/v1/approvals/{request_id}", headers=team.admin.headers)).json()
    assert (request["round"], request["amount"]) == (2, "1284.00")
    assert (await decide(client, team.admin, request_id, "approve")).status_code == 200
    assert (await invoice_of(client, team.accountant, invoice["id"]))["number"] is not None


async def test_a_rejected_invoice_is_void_and_never_numbered(client: httpx.AsyncClient, team: Team) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await create_invoice(client, team.accountant, customer["id"])
    request_id = (await submit(client, team.accountant, invoice["id"]))["approval_request_id"]
    assert (await decide(client, team.admin, request_id, "reject", reason="wrong customer")).status_code == 200
    rejected = await invoice_of(client, team.accountant, invoice["id"])
    assert (rejected["status"], rejected["number"], rejected["void_reason"]) == ("void", None, "rejected in approval")
    again = await client.post(f"/api/v1/invoices/{invoice['id']}/submit", headers=team.accountant.headers)
    assert again.status_code == 409, again.text


async def test_a_withdrawn_invoice_is_a_draft_again_and_can_be_submitted_once_more(
    client: httpx.AsyncClient, team: Team
) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await create_invoice(client, team.accountant, customer["id"])
    await submit(client, team.accountant, invoice["id"])
    withdrawn = await client.post(f"/api/v1/invoices/{invoice['id']}/withdraw", headers=team.accountant.headers)
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "draft"
    again = await submit(client, team.accountant, invoice["id"])
    assert again["status"] == "pending_approval"
    approved = await decide(client, team.admin, again["approval_request_id"], "approve")
    assert approved.status_code == 200, approved.text


async def test_who_sees_an_invoice(client: httpx.AsyncClient, team: Team) -> None:
    """Accountants all; a manager their team's (the accountant is in nobody's team but the admin's); employees
    nothing (403); the approver of its step sees it."""
    customer = await create_customer(client, team.accountant)
    invoice = await create_invoice(client, team.accountant, customer["id"])
    path = f"/api/v1/invoices/{invoice['id']}"
    assert (await client.get(path, headers=team.manager.headers)).status_code == 404
    assert (await client.get(path, headers=team.employee.headers)).status_code == 403
    assert (await client.get(path, headers=team.admin.headers)).status_code == 200
    listed = await client.get("/api/v1/invoices", headers=team.manager.headers)
    assert listed.json()["total"] == 0
