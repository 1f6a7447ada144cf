"""The docs without a browser: what DOCS_ENABLED turns off, the local assets, and the sign-in scheme the Authorize
dialog uses."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import fastapi_offline
import httpx

from api.app import create_app
from api.deps import AppServices
from api.docs import PASSWORD_SCHEME
from core.settings import Settings
from tests.conftest import PASSWORD, MakeUser

ASSETS = Path(fastapi_offline.__file__).parent / "static"


async def test_docs_off_serves_neither_pages_nor_assets(settings: Settings, app_services: AppServices) -> None:
    closed = settings.model_copy(update={"docs_enabled": False})
    app = create_app(services=dataclasses.replace(app_services, settings=closed))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for path in ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"):
            assert (await http.get(path)).status_code == 404, path


async def test_assets_come_from_the_package_and_revalidate(client: httpx.AsyncClient) -> None:
    for name, media_type in [
        ("swagger-ui-bundle.js", "javascript"),
        ("swagger-ui.css", "text/css"),
        ("redoc.standalone.js", "javascript"),
        ("favicon.png", "image/png"),
    ]:
        served = await client.get(f"/docs/assets/{name}")
        assert served.status_code == 200, name
        assert served.content == (ASSETS / name).read_bytes()
        assert media_type in served.headers["content-type"]
        assert served.headers["cache-control"] == "no-cache"  # not the API's no-store: a 304 on the next visit
        again = await client.get(f"/docs/assets/{name}", headers={"If-None-Match": served.headers["etag"]})
        assert again.status_code == 304
    assert (await client.get("/docs/assets/../../api/app.py")).status_code == 404


async def test_every_operation_taking_a_token_offers_the_password_flow(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"][PASSWORD_SCHEME]
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/v1/auth/login"
    assert "/api/v1/auth/login" in schema["paths"]
    protected = public = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            requirements = operation.get("security", [])
            if {"HTTPBearer": []} in requirements:
                assert {PASSWORD_SCHEME: []} in requirements, f"{method} {path}"
                protected += 1
            else:
                assert {PASSWORD_SCHEME: []} not in requirements, f"{method} {path}"
                public += 1
    assert protected > 80 and public > 0


async def test_the_token_url_takes_the_form_swagger_ui_sends(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user("employee")

    # Swagger UI's password flow: the OAuth2 form, and an empty client id and secret in a Basic header.
    signed_in = await client.post(
        "/api/v1/auth/login",
        data={"grant_type": "password", "username": user.username, "password": PASSWORD},
        headers={"Authorization": "Basic Og=="},
    )
    assert signed_in.status_code == 200, signed_in.text
    token = signed_in.json()
    assert token["token_type"] == "bearer"
    me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.status_code == 200 and me.json()["username"] == user.username
