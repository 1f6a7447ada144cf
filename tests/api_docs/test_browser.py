"""/docs and /redoc in a real browser (Debian's chromium, driven by Playwright), as on a machine without internet:
every request the pages make stays on this machine, and Swagger UI's Authorize dialog signs in with a username and
password and calls the API with the token it gets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page, Request, Route, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

from api.docs import PASSWORD_SCHEME
from tests.conftest import PASSWORD, MakeUser

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no browser: Debian's chromium is not at {CHROMIUM} (`make install` as root installs it with apt)",
)
# Headless, and none of chromium's own traffic (updates, sync, field trials): only what the page asks for.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
ME = "/api/v1/users/me"
FIRST_RENDER_MS = 60_000


@dataclass
class Visit:
    page: Page
    left_the_machine: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    async def open(self, url: str, rendered: str) -> None:
        """Go to `url` and wait for the `rendered` element; if it never comes, say what the page was missing."""
        await self.page.goto(url)
        try:
            # The first render lays out the whole OpenAPI document (every operation, 441 links): on a loaded 2-core
            # host it has taken longer than the 15 s each later step gets, so it alone waits up to a minute.
            await self.page.locator(rendered).first.wait_for(timeout=FIRST_RENDER_MS)
        except PlaywrightTimeout:
            raise AssertionError(
                f"{url} did not render {rendered!r}; requests to other hosts: {self.left_the_machine}; "
                f"script errors: {self.page_errors}; console errors: {self.console_errors}"
            ) from None

    def assert_stayed_local(self) -> None:
        assert self.left_the_machine == [], f"requests to other hosts: {self.left_the_machine}"
        assert self.page_errors == [], f"script errors: {self.page_errors}"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def visit(browser: Browser) -> AsyncIterator[Visit]:
    """A fresh page whose requests to any host but this machine are recorded and refused."""
    context = await browser.new_context()
    visit = Visit(await context.new_page())

    async def keep_local(route: Route, request: Request) -> None:
        if urlsplit(request.url).hostname in LOCAL_HOSTS:
            await route.continue_()
        else:
            visit.left_the_machine.append(request.url)
            await route.abort("internetdisconnected")

    await context.route("**/*", keep_local)
    visit.page.on("pageerror", lambda error: visit.page_errors.append(str(error)))
    visit.page.on("console", lambda m: visit.console_errors.append(m.text) if m.type == "error" else None)
    visit.page.set_default_timeout(15_000)
    try:
        yield visit
    finally:
        await context.close()


async def test_swagger_ui_signs_in_with_a_password_and_calls_the_api(
    api_url: str, visit: Visit, make_user: MakeUser
) -> None:
    user = await make_user("employee")
    page = visit.page
    operation_selector = f".opblock-get:has(.opblock-summary-path[data-path='{ME}'])"
    await visit.open(f"{api_url}/docs", operation_selector)
    operation = page.locator(operation_selector)

    await page.locator(".auth-wrapper button.authorize").click()
    password_flow = page.locator(".auth-container").filter(has_text=PASSWORD_SCHEME)
    await password_flow.locator("#oauth_username").fill(user.username)
    await password_flow.locator("#oauth_password").fill(PASSWORD)
    async with page.expect_response(lambda r: urlsplit(r.url).path == "/api/v1/auth/login") as signed_in:
        await password_flow.locator("button.authorize").click()
    login = await signed_in.value
    assert login.status == 200, await login.text()
    token = await login.json()
    assert token["token_type"] == "bearer"
    await password_flow.locator("button", has_text="Logout").wait_for()  # Swagger UI holds the token
    await page.locator(".auth-btn-wrapper button.btn-done").first.click()

    await operation.locator(".opblock-summary").first.click()
    await operation.locator("button.try-out__btn").click()
    async with page.expect_response(lambda r: urlsplit(r.url).path == ME) as answered:
        await operation.locator("button.execute").click()
    me = await answered.value
    assert me.status == 200, await me.text()
    assert (await me.request.all_headers())["authorization"] == f"Bearer {token['access_token']}"
    assert (await me.json())["username"] == user.username
    # and the page shows it
    await operation.locator(".live-responses-table .response-col_status", has_text="200").first.wait_for()
    await operation.locator(".live-responses-table .response-col_description", has_text=user.email).wait_for()
    visit.assert_stayed_local()


async def test_redoc_renders_its_menu_offline(api_url: str, visit: Visit) -> None:
    async with httpx.AsyncClient(base_url=api_url) as http:
        schema = (await http.get("/openapi.json")).json()
    tag = schema["paths"][ME]["get"]["tags"][0]
    summary = schema["paths"][ME]["get"]["summary"]

    page = visit.page
    await visit.open(f"{api_url}/redoc", ".menu-content [role=menuitem]")
    menu = page.locator(".menu-content")
    await menu.get_by_role("menuitem").filter(has_text=tag).first.wait_for()
    await page.get_by_role("heading", name=summary).first.wait_for()
    assert await menu.get_by_role("menuitem").count() > 10
    visit.assert_stayed_local()
