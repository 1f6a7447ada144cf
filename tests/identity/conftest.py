"""An organisation in a manager tree, and helpers to sign in and read emailed codes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from tests.conftest import PASSWORD, MakeUser, TestUser


@dataclass
class Org:
    """superadmin > admin > {manager > employee, other_employee; accountant}; an outsider under the admin."""

    superadmin: TestUser
    admin: TestUser
    manager: TestUser
    accountant: TestUser
    employee: TestUser
    other_employee: TestUser
    other_manager: TestUser
    outsider: TestUser

    def by_role(self, role: str) -> TestUser:
        return {
            "superadmin": self.superadmin,
            "admin": self.admin,
            "manager": self.manager,
            "accountant": self.accountant,
            "employee": self.employee,
        }[role]


@pytest.fixture
async def org(make_user: MakeUser) -> Org:
    superadmin = await make_user("superadmin")
    admin = await make_user("admin", manager=superadmin)
    manager = await make_user("manager", manager=admin)
    accountant = await make_user("accountant", manager=admin)
    employee = await make_user("employee", manager=manager)
    other_employee = await make_user("employee", manager=manager)
    other_manager = await make_user("manager", manager=admin)
    outsider = await make_user("employee", manager=other_manager)
    return Org(superadmin, admin, manager, accountant, employee, other_employee, other_manager, outsider)


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"username": username, "password": password})


async def tokens(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = await login(client, username, password)
    assert response.status_code == 200, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def latest_code(settings: Settings, email: str) -> str:
    """The code in the newest sign-in email to `email` (the FileTransport writes .eml files)."""
    folder: Path = settings.smtp.mail_dir
    mails = sorted(folder.glob("otp-*.eml"), key=lambda path: path.stat().st_mtime_ns, reverse=True)
    for path in mails:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        if message["To"] == email:
            body = message.get_body(("plain",))
            assert body is not None
            match = re.search(r"\b(\d{6})\b", body.get_content())
            assert match, "no code in the mail"
            return match.group(1)
    raise AssertionError(f"no sign-in mail to {email}")
