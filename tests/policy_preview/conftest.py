"""Proposed policies made from the shipped one, and a small organisation with approval requests to replay."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from core.settings import PROJECT_ROOT
from tests.conftest import MakeUser, TestUser

MANAGER_LIMIT = "p, manager, approval_limit, approve, 10000.00\n"
ACCOUNTANT_CREATES_BUDGETS = "p, accountant, budget, create, *\n"


def shipped_policy() -> str:
    text = (PROJECT_ROOT / "policies" / "policy.csv").read_text()
    assert MANAGER_LIMIT in text and ACCOUNTANT_CREATES_BUDGETS in text, "the tests edit these shipped lines"
    return text


def with_manager_limit(limit: str) -> str:
    return shipped_policy().replace(MANAGER_LIMIT, f"p, manager, approval_limit, approve, {limit}\n")


def without_budget_creation() -> str:
    return shipped_policy().replace(ACCOUNTANT_CREATES_BUDGETS, "")


def with_line_inserted(line: str, before: str = ACCOUNTANT_CREATES_BUDGETS) -> tuple[str, int]:
    """The shipped policy with `line` inserted before the line `before`, and the line number it lands on."""
    text = shipped_policy()
    index = text.index(before)
    return text[:index] + line + text[index:], text[:index].count("\n") + 1


@dataclass
class Org:
    """superadmin > admin > manager > employee."""

    superadmin: TestUser
    admin: TestUser
    manager: TestUser
    employee: TestUser


@pytest.fixture
async def org(make_user: MakeUser) -> Org:
    superadmin = await make_user("superadmin")
    admin = await make_user("admin", manager=superadmin)
    manager = await make_user("manager", manager=admin)
    employee = await make_user("employee", manager=manager)
    return Org(superadmin, admin, manager, employee)


async def ask_approval(client: httpx.AsyncClient, user: TestUser, amount: str) -> int:
    """A generic approval request (the same chain and limits as an entry's), as the requester opens it."""
    body = {"title": f"Purchase of {amount}", "amount": amount, "justification": "needed"}
    created = await client.post("/api/v1/approvals/", json=body, headers=user.headers)
    assert created.status_code == 201, created.text
    return int(created.json()["id"])
