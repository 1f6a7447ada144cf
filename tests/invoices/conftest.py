"""Invoices over the whole stack: the approval tests' organisation (admin <- manager <- employee, a peer manager, an
accountant under the admin) served over HTTP with the project's workers. Accountants make invoices; the admin, the
accountant's manager, approves them."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from activities.deps import ActivityDeps
from tests.approvals.conftest import client, eventually, team  # noqa: F401 - fixtures, used by name
from tests.conftest import TestUser


async def create_customer(http: httpx.AsyncClient, accountant: TestUser, **fields: Any) -> dict[str, Any]:
    body = {"name": "Acme GmbH", "billing_email": "billing@acme.example", "currency": "USD",
            "payment_terms_days": 30, "address": "Hauptstr. 1\n10115 Berlin", **fields}  # fmt: skip
    response = await http.post("/api/v1/customers", json=body, headers=accountant.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def invoice_body(customer_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "issue_date": date.today().isoformat(),
        "lines": [
            {"description": "Consulting", "quantity": "10", "unit_price": "120.00", "tax_rate": "19"},
            {"description": "Travel", "quantity": "1", "unit_price": "80.50", "tax_rate": "0"},
        ],
        **fields,
    }


async def create_invoice(
    http: httpx.AsyncClient, accountant: TestUser, customer_id: int, **fields: Any
) -> dict[str, Any]:
    response = await http.post("/api/v1/invoices", json=invoice_body(customer_id, **fields), headers=accountant.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def invoice_of(http: httpx.AsyncClient, user: TestUser, invoice_id: int) -> dict[str, Any]:
    response = await http.get(f"/api/v1/invoices/{invoice_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def submit(http: httpx.AsyncClient, user: TestUser, invoice_id: int) -> dict[str, Any]:
    response = await http.post(f"/api/v1/invoices/{invoice_id}/submit", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def decide(http: httpx.AsyncClient, user: TestUser, request_id: int, action: str, **body: Any) -> httpx.Response:
    return await http.post(f"/api/v1/approvals/{request_id}/{action}", json=body or None, headers=user.headers)


async def approved_invoice(http: httpx.AsyncClient, accountant: TestUser, approver: TestUser, customer_id: int,
                           **fields: Any) -> dict[str, Any]:  # fmt: skip
    """An invoice created, submitted and approved: numbered, its workflow started."""
    invoice = await create_invoice(http, accountant, customer_id, **fields)
    submitted = await submit(http, accountant, invoice["id"])
    response = await decide(http, approver, submitted["approval_request_id"], "approve")
    assert response.status_code == 200, response.text
    return await invoice_of(http, accountant, invoice["id"])


async def audit_actions(deps: ActivityDeps, invoice_id: int) -> list[str]:
    async with deps.db.transaction() as tx:
        rows = await tx.sql.all(
            "SELECT action FROM audit_log WHERE resource_type = 'invoice' AND resource_id = %s ORDER BY id",
            (str(invoice_id),),
        )
    return [row[0] for row in rows]
